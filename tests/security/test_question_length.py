"""Question length: capped in the core (a clear Swedish refusal, never a crash) and in the UI (the
textbox's max_length, which the page states)."""

from __future__ import annotations

from conftest import GradioApi, Server, new_session

LONG = "Får kommunen reservera en upphandling för sociala företag? " * 100  # ~5 900 characters


def test_long_questions_are_refused_clearly(public_server: Server):
    api = GradioApi(public_server.url)
    try:
        box = next(c for c in api.components.values() if c.get("elem_id") == "question")
        limit = box.get("max_length")
        assert limit and 200 <= limit < len(LONG), f"the question box has no sensible max_length: {limit}"
        assert str(limit) in str(box.get("info") or ""), "the page does not say how long a question may be"

        # the page's own path: the question goes into the chat first
        add = api.triggered_by("question")[0]
        outputs = api.outputs(api.call(add, [LONG.strip(), []], new_session()))
        chat = api.value_of(add, outputs, "chat") or []
        assert not any(LONG.strip()[:100] in str(m) for m in chat), "an over-long question entered the chat"

        # the answering event itself (reachable as the API's /chat): a refusal that says why
        answer = next(e for e in api.events() if e.queued and any(c["type"] == "chatbot" for c in e.inputs))
        message = {"role": "user", "content": [{"type": "text", "text": LONG}]}
        texts = api.call(answer, [[message] if c["type"] == "chatbot" else None for c in answer.inputs],
                         new_session())
        final = api.outputs(texts)
        assert final is not None, texts[-3:]
        reply = str(api.value_of(answer, final, "chat"))
        assert "Frågan är för lång" in reply and str(limit) in reply, reply[:500]
    finally:
        api.close()
