"""Minimal chat over `Assistant.ask` (the chat-UI issue turns this into the product)."""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before importing gradio: no phoning home

import gradio as gr

from assistant.pipeline import Assistant


def format_answer(answer) -> str:
    lines = [answer.answer]
    if answer.citations:
        lines.append("\n**Källor**")
        for c in answer.citations:
            page = f", s. {c.page}" if c.page else ""
            lines.append(f"{c.n}. *{c.title}* – {c.section}{page} (`{c.source}`)\n   > {c.quote}")
    return "\n".join(lines)


def build(assistant: Assistant) -> gr.Blocks:
    def respond(message: str, history: list[dict]):
        earlier = [m["content"] for m in history if m.get("role") == "user" and isinstance(m.get("content"), str)]
        return format_answer(assistant.ask(message, history=earlier))

    return gr.ChatInterface(
        fn=respond,
        title="Samverkansassistenten",
        description="Frågor om kommuners samverkan med sociala företag – svar med källor.",
        textbox=gr.Textbox(placeholder="Ställ en fråga …", submit_btn=True),
        api_name="chat",
    )


def launch(assistant: Assistant) -> None:
    s = assistant.settings
    build(assistant).queue().launch(server_name=s.host, server_port=s.port, share=False, ssr_mode=False)
