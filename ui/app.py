"""The chat people use: Gradio Blocks over `Assistant.ask`, with a sources panel, feedback and an admin tab.

All conversation state is per browser session (gr.State and the chatbot's value), never module globals, so
concurrent visitors neither see nor block each other. Everything the page loads comes from this server.
"""

from __future__ import annotations

import html
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before importing gradio: no phoning home
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gradio as gr
from fastapi import FastAPI

from assistant.pipeline import Assistant, ChromaServerError, CollectionMissingError, IndexBuildError, scan_corpus
from assistant.types import IndexReport
from ui import admin, documents
from ui.api import router as api_router
from ui.exports import ExportFolders
from ui.feedback import FeedbackEntry, FeedbackStore
from ui.security import (
    ADMIN_COOKIE,
    AdminTokens,
    LoginThrottle,
    SecurityHeaders,
    UploadGate,
    blocked_paths,
    client_address,
)
from ui.sources import ChatTurn, full_message, message_words, notice_message, sources_html, turn_from_answer

log = logging.getLogger(__name__)

TITLE = "Samverkansassistenten"
STARTERS: dict[str, list[str]] = {
    "Kommun": [
        "Får kommunen reservera en upphandling för sociala företag?",
        "Vilka beloppsgränser gäller för direktupphandling?",
    ],
    "Socialt företag": [
        "Hur säljer vårt sociala företag till kommunen?",
        "Vilka krav gäller för att delta i en reserverad upphandling?",
    ],
    "Ny i nätverket": [
        "Vilka kommuner var med i utvecklingsnätverket?",
        "Vad är ett arbetsintegrerande socialt företag?",
    ],
}
CHAT_CONCURRENCY = 8  # asks are short and the embedder serialises its own work; more would only queue inside
STREAM_STEPS = 30  # an answer appears in about this many pieces
STREAM_PAUSE = 0.03  # seconds between pieces: reads as streaming, costs under a second
SEARCHING = '<span class="searching" role="status">Söker i underlaget …</span>'

# Bundled fonts first, then system fonts: nothing is fetched from Google Fonts or any CDN.
THEME = gr.themes.Default(
    font=[gr.themes.LocalFont("Source Sans Pro"), "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
    font_mono=[gr.themes.LocalFont("IBM Plex Mono"), "ui-monospace", "SFMono-Regular", "Menlo", "monospace"],
)

# A thumb drawn as a CSS mask (inline SVG): no icon file, no emoji font needed, follows the text colour.
_THUMB = (
    "url('data:image/svg+xml,%3Csvg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 24 24\" fill=\"none\" "
    "stroke=\"black\" stroke-width=\"2\" stroke-linecap=\"round\" stroke-linejoin=\"round\"%3E"
    "%3Cpath d=\"M7 10v11H3V10z\"/%3E%3Cpath d=\"M7 10l4-8a3 3 0 0 1 3 3v4h5.5a2 2 0 0 1 2 2.4l-1.6 8A2 2 0 0 1 "
    "18 21H7\"/%3E%3C/svg%3E')"
)

CSS = """
#feedback-up::before, #feedback-down::before { content: ""; display: inline-block; width: 1.15em; height: 1.15em;
  margin-right: .4em; vertical-align: -0.2em; background-color: currentColor;
  -webkit-mask: THUMB center / contain no-repeat; mask: THUMB center / contain no-repeat; }
#feedback-down::before { transform: rotate(180deg); }
.visually-hidden { position: absolute !important; width: 1px; height: 1px; padding: 0; margin: -1px;
  overflow: hidden; clip: rect(0, 0, 0, 0); white-space: nowrap; border: 0; }
.skip-link { position: absolute; left: -9999px; }
.skip-link:focus { position: static; display: inline-block; padding: .4rem .6rem; background: #1e3a8a;
  color: #fff !important; border-radius: 4px; }
#app-header h1 { margin: 0 0 .25rem 0; font-size: 1.6rem; }
#app-header p { margin: 0; }
.refusal, .stale, .stale-note, #sources .where { display: block; }
.refusal { border-left: 5px solid #b45309; background: #fffbeb; color: #713f12 !important; padding: .6rem .8rem;
  border-radius: 6px; }
.refusal * { color: #713f12 !important; }
.refusal p { margin: .3rem 0; }
.stale, .stale-note { border-left: 5px solid #b91c1c; background: #fef2f2; color: #7f1d1d !important;
  padding: .35rem .6rem; border-radius: 4px; margin: .4rem 0; }
.msg-sources { font-size: .9em; margin-top: .4rem; }
.cite-ref { font-weight: 600; text-decoration: none; white-space: nowrap; }
#sources .source-list { list-style: none; padding: 0; margin: 0; }
#sources .source { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: .6rem .8rem;
  margin: .5rem 0; overflow-wrap: anywhere; }
#sources .source:focus { outline: 3px solid #2563eb; outline-offset: 2px; }
#sources .source h4 { margin: 0 0 .2rem 0; font-size: 1rem; }
#sources .where { margin: 0 0 .3rem 0; font-size: .9em; opacity: .85; }
#sources blockquote.context { margin: .3rem 0; padding: .3rem .6rem; border-left: 3px solid #94a3b8;
  font-size: .95em; }
#sources mark { background: #fde68a; color: #111827; padding: 0 .1em; }
#sources details.turn > summary { cursor: pointer; font-weight: 600; padding: .3rem 0; }
#sources .open-doc { font-weight: 600; }
.starter-group h4 { font-size: 1rem; margin: .2rem 0; }
@media (max-width: 480px) {
  #app-header h1 { font-size: 1.3rem; }
  #chat { height: 420px !important; }
}
""".replace("THUMB", _THUMB)

# Document-level: links to a source ([n] in the chat, the source list under an answer) open its folded
# answer group, scroll to it and move keyboard focus there, wherever the link sits.
HEAD = """
<script>
document.addEventListener('click', function (event) {
  var link = event.target.closest && event.target.closest('a[href^="#kalla-"], a[href="#question"]');
  if (!link) return;
  var id = link.getAttribute('href').slice(1);
  var target = document.getElementById(id);
  if (!target) return;
  event.preventDefault();
  if (id === 'question') { var box = target.querySelector('textarea, input'); if (box) box.focus(); return; }
  var group = target.closest('details');
  if (group) group.open = true;
  target.scrollIntoView({behavior: 'smooth', block: 'center'});
  target.focus({preventScroll: true});
}, true);
</script>
"""
JS = "() => { document.documentElement.lang = 'sv'; }"  # screen readers then speak Swedish
# After a login or logout: the admin token as a cookie for Gradio's upload route (see ui.security.UploadGate).
# A session cookie for this app's path only; SameSite=Strict so no other site can upload with it.
SET_ADMIN_COOKIE = """(token) => {
  const path = window.location.pathname.replace(/[^/]*$/, '') || '/';
  const secure = window.location.protocol === 'https:' ? '; Secure' : '';
  document.cookie = 'NAME=' + (token || '') + '; Path=' + path + '; SameSite=Strict' + secure
    + (token ? '' : '; Max-Age=0');
}""".replace("NAME", ADMIN_COOKIE)

HEADER = f"""
<a class="skip-link" href="#question">Hoppa till frågerutan</a>
<h1>{TITLE}</h1>
<p>Frågor och svar om kommuners samverkan med sociala företag. Varje svar bygger på underlaget och visar
sina källor; när underlaget inte svarar säger assistenten det. <span lang="en">Swedish chat assistant –
answers cite their sources.</span></p>
"""
PRIVACY = ("Omdömen sparas med fråga, svar och källor men utan IP-adress, webbläsaruppgifter eller "
           "sessions-id. Skriv inga personuppgifter i kommentaren.")

ABOUT = f"""
## Om Samverkansassistenten

Assistenten svarar på frågor om hur kommuner kan samverka med och köpa från sociala företag. Svaren
består av meningar ur underlaget, och varje mening har en källhänvisning [n] som leder till det citerade
stycket under **Källor**. Därifrån kan du öppna hela dokumentet.

- **Underlaget svarar inte?** Då säger assistenten det och visar de närmaste avsnitten i stället för att gissa.
- **Följdfrågor** som "och om det är en ideell förening?" tolkas utifrån samtalet. **Ny konversation** börjar om.
- **Inaktuella källor** markeras när ett dokument passerat sin giltighetstid eller inte kontrollerats på
  länge.
- **Integritet:** {PRIVACY} Samtalet sparas inte i någon databas; bara omdömen du själv skickar sparas.

*Tangentbord:* Tabb flyttar mellan fält och knappar, Enter skickar frågan, och länken "Hoppa till frågerutan"
överst leder direkt till frågefältet.

<span lang="en">*In English:* ask in Swedish (or English) about municipalities' collaboration with social
enterprises; every answer cites the passages it comes from, and the assistant says so when the sources do
not answer.</span>
"""


def _status(text: str) -> str:
    """A polite live region, so screen readers hear the outcome of an action."""
    import html

    return f'<p role="status">{html.escape(text)}</p>' if text else '<p role="status"></p>'


def text_chatbot(**kwargs: Any) -> gr.Chatbot:
    """The chat's Chatbot: messages are text only, and the text is shown as (sanitised) HTML, never as
    Markdown, so corpus text the app has escaped stays inert (no images, no links, no LaTeX).

    A client can send any message content to the server, including file parts naming a server path or
    URL (Gradio would copy or download it into its cache and serve it) and components (Gradio would build
    them, copying their files). Such a message is refused before Gradio copies or fetches anything: this
    chatbot never moves a file into the cache. The methods are replaced on the instance, not in a
    subclass: Gradio writes a .pyi file beside the module of every Component subclass."""
    chatbot = gr.Chatbot(render_markdown=False, latex_delimiters=[], sanitize_html=True, **kwargs)
    preprocess = chatbot.preprocess

    def refuse_files(_url_or_file_path: Any) -> str | None:
        raise gr.Error(TEXT_ONLY)

    async def refuse_files_async(_url_or_file_path: Any) -> str | None:
        raise gr.Error(TEXT_ONLY)

    def text_only(payload: Any) -> Any:
        for message in getattr(payload, "root", None) or []:
            if any(getattr(part, "type", "text") != "text" for part in message.content):
                raise gr.Error(TEXT_ONLY)
        return preprocess(payload)

    chatbot.move_resource_to_block_cache = refuse_files
    chatbot.async_move_resource_to_block_cache = refuse_files_async
    chatbot.preprocess = text_only
    return chatbot


TEXT_ONLY = "Chatten tar bara emot text."


def text_messages(messages: list[dict] | None) -> list[dict]:
    """Only role and text of each message: whatever else a client put into the history (file parts,
    components, metadata) is never handed back to Gradio to process."""
    return [{"role": m.get("role"), "content": message_text(m.get("content"))}
            for m in messages or [] if isinstance(m, dict) and m.get("role") in ("user", "assistant")]


def message_text(content: Any) -> str:
    """The text of a chat message: Gradio 6 hands messages back with content as a list of typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or "")
    if isinstance(content, list):
        return " ".join(message_text(part) for part in content if not isinstance(part, dict)
                        or part.get("type", "text") == "text").strip()
    return ""


class ChatApp:
    """The event handlers; one instance per server, holding only shared, read-mostly things."""

    def __init__(self, assistant: Assistant):
        self.assistant = assistant
        self.settings = assistant.settings
        self.feedback = FeedbackStore(self.settings.feedback_path)
        self.exports = ExportFolders()  # folders only when exporting; old ones pruned, ours removed at shutdown
        self.exports.prune()  # left by earlier runs that could not clean up (kill -9)
        self.tokens = AdminTokens(ttl=self.settings.admin_session_minutes * 60)
        self.throttle = LoginThrottle()
        self.upload_dir = Path(gr.utils.get_upload_folder())  # Gradio's upload cache: where uploads land

    def close(self) -> None:
        self.exports.close()

    # --- chat ----------------------------------------------------------------------------------

    def add_question(self, text: str, messages: list[dict]) -> tuple[Any, list[dict]]:
        text = (text or "").strip()
        messages = text_messages(messages)
        if not text:
            return gr.update(value=""), messages
        limit = self.settings.max_question_chars
        if len(text) > limit:  # the textbox stops typing at the limit; this catches pasted or API text
            gr.Warning(f"Frågan är för lång ({len(text)} tecken; högst {limit}). Korta ner den.")
            return gr.update(), messages
        # escaped: the chat shows messages as HTML, and the question is shown as typed
        return gr.update(value=""), [*messages, {"role": "user", "content": html.escape(text, quote=False)}]

    def answer(self, messages: list[dict], turns: list[ChatTurn]) -> Iterator[tuple]:
        """Stream the answer to the last user message: (chatbot, turns, sources panel, status)."""
        messages = text_messages(messages)
        done = len(turns)
        if not messages or messages[-1].get("role") != "user" or len([
            m for m in messages if m.get("role") == "user"
        ]) <= done:
            yield messages, turns, gr.update(), gr.update()
            return
        question = html.unescape(message_text(messages[-1]["content"]))
        history = [t.question for t in turns]  # earlier user questions: the core rewrites follow-ups
        pending = [*messages, {"role": "assistant", "content": SEARCHING}]
        yield pending, turns, gr.update(), _status("Söker i underlaget …")
        try:
            result = self.assistant.ask(question, history=history)
        # the index's server went away, or came back without the index: say what is wrong, as the API does
        except (ChromaServerError, CollectionMissingError) as exc:
            log.warning("Indexets Chroma-server kan inte användas: %s", exc)
            unavailable = [*messages, {"role": "assistant", "content": notice_message(str(exc))}]
            status = "Sökindexet kan inte nås just nu." if isinstance(exc, ChromaServerError) else "Sökindexet saknas."
            yield unavailable, turns, gr.update(), _status(status)
            return
        except Exception:
            log.exception("answering failed")
            failed = [*messages, {"role": "assistant", "content": (
                '<div class="refusal" role="note"><strong>Något gick fel när svaret togs fram.</strong> '
                "Försök igen om en stund.</div>")}]
            yield failed, turns, gr.update(), _status("Något gick fel.")
            return
        turn = turn_from_answer(done + 1, result, self.settings)
        turns = [*turns, turn]
        panel = sources_html(turns)
        if not turn.abstained:
            words = message_words(turn)
            step = max(1, -(-len(words) // STREAM_STEPS))
            for end in range(step, len(words), step):
                partial = [*messages, {"role": "assistant", "content": " ".join(words[:end])}]
                yield partial, turns, panel, gr.update()
                time.sleep(STREAM_PAUSE)
            count = len(turn.citations)
            status = f"Svaret är klart, med {count} {'källhänvisning' if count == 1 else 'källhänvisningar'}."
        elif turn.nearest:
            status = "Underlaget svarar inte på frågan. De närmaste avsnitten visas under Källor."
        else:
            status = turn.reason or "Underlaget svarar inte på frågan."
        final = [*messages, {"role": "assistant", "content": full_message(turn)}]
        yield final, turns, panel, _status(status)

    @staticmethod
    def new_conversation() -> tuple:
        return [], [], sources_html([]), _status("Ny konversation påbörjad."), "", _status("")

    # --- feedback ------------------------------------------------------------------------------

    def rate_up(self, comment: str, turns: list[ChatTurn]) -> tuple[list[ChatTurn], str, str]:
        return self.rate("up", comment, turns)

    def rate_down(self, comment: str, turns: list[ChatTurn]) -> tuple[list[ChatTurn], str, str]:
        return self.rate("down", comment, turns)

    def rate(self, rating: str, comment: str, turns: list[ChatTurn]) -> tuple[list[ChatTurn], str, str]:
        if not turns:
            return turns, comment, _status("Ställ en fråga först; omdömet gäller det senaste svaret.")
        turn = turns[-1]
        entry = FeedbackEntry(
            rating=rating, question=turn.question, answer=turn.answer, sources=turn.feedback_sources(),
            mode=turn.mode, abstained=turn.abstained, comment=comment or "",
        )
        if turn.feedback_id:
            self.feedback.update(turn.feedback_id, entry)  # a changed mind replaces, never duplicates
            said = "Ditt omdöme är uppdaterat."
        else:
            turn = replace(turn, feedback_id=self.feedback.add(entry))
            said = "Tack! Ditt omdöme är sparat."
        return [*turns[:-1], turn], "", _status(f"{said} (svar {turn.number})")

    # --- admin ---------------------------------------------------------------------------------
    # User mistakes (no file chosen, not confirmed) get a toast and a status line, never an exception:
    # a failed Gradio event covers its output fields with an error overlay.

    def login(self, password: str, old_token: str = "", request: gr.Request = None) -> tuple:
        """Check the password; on success issue an admin token (state, and a cookie for uploads).

        A client that keeps failing must wait (LoginThrottle): its tries are refused at once, unchecked,
        without holding a worker, and other clients are not affected."""
        self.tokens.revoke(old_token)
        client = client_address(request)
        wait = self.throttle.wait(client)
        if wait > 0:
            return self._login_refused(f"För många misslyckade försök. Försök igen om {math.ceil(wait)} s.")
        if admin.password_ok(self.settings, password):
            self.throttle.succeeded(client)
            token = self.tokens.issue()
            shown = gr.update(visible=True)
            return (True, token, token, "", gr.update(visible=False), shown, shown, _status("Inloggad."),
                    *self._admin_view())
        delay = self.throttle.failed(client)
        return self._login_refused("Fel lösenord." + (f" Nästa försök tidigast om {math.ceil(delay)} s." if delay
                                                       else ""))

    @staticmethod
    def _login_refused(message: str) -> tuple:
        hidden = gr.update(visible=False)
        return (False, "", "", "", gr.update(visible=True), hidden, hidden, _status(message), *[gr.update()] * 4)

    def logout(self, token: str = "") -> tuple:
        self.tokens.revoke(token)
        hidden = gr.update(visible=False)
        return False, "", "", gr.update(visible=True), hidden, hidden, _status("Utloggad.")

    def _require(self, ok: bool, token: str | None = None) -> None:
        # the flag and the token live in server-side session state: a visitor cannot set them without the
        # password; the token also lapses after settings.admin_session_minutes without use
        if not ok or not self.settings.admin_password:
            raise gr.Error("Logga in som administratör först.")
        if token is not None and not self.tokens.valid(token, touch=True):
            raise gr.Error("Inloggningen har gått ut. Logga in igen.")

    def _admin_view(self, report: IndexReport | None = None) -> tuple:
        """Indexed documents, removal choices, skipped files (from a build, or recomputed) and a summary.

        A folder that cannot be read (OSError: permissions, a vanished mount) is said in the summary; any
        other failure is a bug: logged with its traceback, and the admin is told so, never a silent blank."""
        folders = ", ".join(str(d) for d in self.settings.corpus_dirs)
        try:
            documents = self.assistant.documents()
            rows = sorted([d.source, d.title, Path(d.corpus_dir).name] for d in documents)
            scanned = scan_corpus(self.settings)  # one walk for the removal choices and the unindexed files
            choices = [(d.label(self.settings), d.key) for d in admin.corpus_documents(self.settings, scanned)]
            if report is not None:
                skipped = [[s.source, s.reason] for s in report.skipped]
            else:
                skipped = [list(item) for item in admin.unindexed(self.settings, documents, scanned)]
        except OSError as exc:
            log.warning("admin view: a corpus or index folder could not be read: %s", exc)
            return [], gr.update(choices=[], value=None), [], (
                f"Underlaget kunde inte läsas ({exc.strerror or exc}). Kontrollera korpusmapparna `{folders}` "
                "och indexmappen.")
        except Exception:
            log.exception("admin view failed")
            return [], gr.update(choices=[], value=None), [], (
                "Listan över dokument kunde inte tas fram på grund av ett fel. Se serverloggen.")
        summary = f"{len(rows)} dokument i indexet. Korpusmappar: `{folders}`."
        return rows, gr.update(choices=choices, value=None), skipped, summary

    def _reindex(self, progress: gr.Progress) -> tuple[tuple, str]:
        def report_progress(stage: str, done: int, total: int) -> None:
            if total:
                progress((done, total), desc=stage.capitalize(), unit="st")

        try:
            report = self.assistant.index(progress=report_progress)
        except IndexBuildError as exc:
            gr.Warning(str(exc))
            return self._admin_view(), f"Indexeringen misslyckades: {exc}"
        return self._admin_view(report), f"Klart: {report.summary()}."

    def upload(self, ok: bool, files: list[str] | None, token: str | None = None,
               progress=gr.Progress()) -> tuple:  # noqa: B008
        self._require(ok, token)
        if not files:
            gr.Warning("Välj minst en fil att ladda upp.")
            return gr.update(), *[gr.update()] * 4, "Ingen fil vald."
        lines = admin.save_uploads(self.settings, files, self.upload_dir)
        view, summary = self._reindex(progress)
        return None, *view, "\n".join(f"- {line}" for line in lines) + f"\n\n{summary}"

    def reindex(self, ok: bool, token: str | None = None, progress=gr.Progress()) -> tuple:  # noqa: B008
        self._require(ok, token)
        view, summary = self._reindex(progress)
        return *view, summary

    def remove(self, ok: bool, key: str | None, confirmed: bool, token: str | None = None,
               progress=gr.Progress()) -> tuple:  # noqa: B008
        self._require(ok, token)
        problem = "Välj ett dokument att ta bort." if not key else (
            "Kryssa i rutan för att bekräfta borttagningen." if not confirmed else "")
        if not problem:
            try:
                removed = admin.remove_document(self.settings, key)
            except admin.AdminError as exc:
                problem = str(exc)
        if problem:
            gr.Warning(problem)
            return *[gr.update()] * 4, problem, gr.update()
        view, summary = self._reindex(progress)
        return *view, f"{removed.source} togs bort. {summary}", False

    def export_feedback(self, ok: bool, token: str | None = None) -> str:
        self._require(ok, token)
        out = self.exports.new() / f"omdomen-{time.strftime('%Y%m%d-%H%M%S')}.csv"
        return str(self.feedback.export_csv(out))


def build(assistant: Assistant, chat: ChatApp | None = None) -> gr.Blocks:
    chat = chat or ChatApp(assistant)
    limit = assistant.settings.max_question_chars
    # delete_cache: Gradio's copies of uploads and exports are removed after an hour, and all at shutdown
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(600, 3600)) as demo:
        gr.HTML(HEADER, elem_id="app-header")
        turns = gr.State([])  # this session's answers (ui.sources.ChatTurn); never shared
        with gr.Tabs():
            with gr.Tab("Chatt", id="chat-tab"), gr.Row(equal_height=False):
                with gr.Column(scale=3, min_width=320):
                    chatbot = text_chatbot(
                        label="Samtal", elem_id="chat", height=460, feedback_options=None,
                        buttons=["copy"], autoscroll=True,
                        placeholder="Ställ en fråga nedan eller välj en exempelfråga.",
                    )
                    question = gr.Textbox(
                        label="Din fråga", placeholder="Skriv din fråga och tryck Enter …",
                        elem_id="question", submit_btn="Skicka", lines=1, max_lines=5, max_length=limit,
                        info=f"Högst {limit} tecken.",
                    )
                    chat_status = gr.HTML(_status(""), elem_id="chat-status", elem_classes="visually-hidden")
                    new_btn = gr.Button("Ny konversation", elem_id="new-conversation", variant="secondary",
                                        size="sm")
                    gr.Markdown("### Exempelfrågor")
                    starter_buttons: list[tuple[gr.Button, str]] = []
                    with gr.Row():
                        for audience, questions in STARTERS.items():
                            with gr.Column(min_width=200, elem_classes="starter-group"):
                                gr.Markdown(f"#### {audience}")
                                for i, text in enumerate(questions):
                                    btn = gr.Button(text, size="sm", elem_id=f"starter-{audience_id(audience)}-{i}")
                                    starter_buttons.append((btn, text))
                    with gr.Group(elem_id="feedback"):
                        gr.Markdown("### Var det senaste svaret till hjälp?", padding=True)
                        comment = gr.Textbox(label="Kommentar (valfritt)", elem_id="feedback-comment", lines=2,
                                             max_lines=6, max_length=2000, info=PRIVACY)
                        with gr.Row():
                            up_btn = gr.Button("Bra svar", elem_id="feedback-up", size="sm")
                            down_btn = gr.Button("Dåligt svar", elem_id="feedback-down", size="sm")
                        feedback_status = gr.HTML(_status(""), elem_id="feedback-status", padding=True)
                with gr.Column(scale=2, min_width=300, elem_id="sources-column"):
                    gr.Markdown("## Källor")
                    sources = gr.HTML(sources_html([]), elem_id="sources", container=False)

            if assistant.settings.admin_password:
                _admin_tab(chat)
            with gr.Tab("Om tjänsten", id="about-tab"):
                gr.Markdown(ABOUT)

        # Chat flow: show the question at once (no queue), lock the inputs so a session never has two
        # answers in flight, stream the answer (many sessions at a time), then unlock.
        locked = [question, new_btn, *[b for b, _ in starter_buttons]]

        def chain(event, add, inputs, api: dict):
            event(add, inputs, [question, chatbot], queue=False, api_visibility="private").then(
                _set_interactive(False, len(locked)), None, locked, queue=False, api_visibility="private",
            ).then(
                chat.answer, [chatbot, turns], [chatbot, turns, sources, chat_status], **api,
                concurrency_limit=CHAT_CONCURRENCY, concurrency_id="chat", show_progress="minimal",
            ).then(
                _set_interactive(True, len(locked)), None, locked, queue=False, api_visibility="private",
            )

        chain(question.submit, chat.add_question, [question, chatbot], {"api_name": "chat"})
        for btn, text in starter_buttons:
            chain(btn.click, _starter(chat, text), [chatbot], {"api_visibility": "private"})
        reset = [chatbot, turns, sources, chat_status, comment, feedback_status]
        new_btn.click(ChatApp.new_conversation, None, reset, queue=False, api_visibility="private")
        chatbot.clear(ChatApp.new_conversation, None, reset, queue=False, api_visibility="private")  # its bin icon
        up_btn.click(chat.rate_up, [comment, turns], [turns, comment, feedback_status], api_visibility="private")
        down_btn.click(chat.rate_down, [comment, turns], [turns, comment, feedback_status],
                       api_visibility="private")
        demo.load(None, js=JS)
    return demo


def _set_interactive(value: bool, count: int):
    def update() -> list[Any]:
        return [gr.update(interactive=value)] * count

    return update


def audience_id(audience: str) -> str:
    return {"Kommun": "kommun", "Socialt företag": "foretag", "Ny i nätverket": "ny"}.get(audience, "annan")


def _starter(chat: ChatApp, text: str):
    def add(messages: list[dict]) -> tuple[Any, list[dict]]:
        return chat.add_question(text, messages)

    return add


def _admin_tab(chat: ChatApp) -> None:
    with gr.Tab("Administration", id="admin-tab"):
        admin_ok = gr.State(False)  # per session; set only by a correct password
        admin_token = gr.State("")  # this session's admin token (ui.security.AdminTokens), for logout and expiry
        gr.Markdown("## Administration av underlaget")
        with gr.Row(elem_id="admin-login-row") as login_row:
            password = gr.Textbox(label="Administratörslösenord", type="password", elem_id="admin-password",
                                  scale=3)
            login_btn = gr.Button("Logga in", elem_id="admin-login", scale=1)
        login_status = gr.HTML(_status(""), elem_id="admin-login-status")
        cookie_token = gr.Textbox(visible=False, elem_id="admin-cookie")  # hands the token to SET_ADMIN_COOKIE
        logout_btn = gr.Button("Logga ut", size="sm", elem_id="admin-logout", visible=False)
        with gr.Column(visible=False, elem_id="admin-panel") as panel:
            summary = gr.Markdown(elem_id="admin-summary")
            docs = gr.Dataframe(headers=["Fil", "Titel", "Mapp"], label="Indexerade dokument", interactive=False,
                                elem_id="admin-documents", wrap=True)
            gr.Markdown("### Ladda upp dokument\nFilerna sparas i den första korpusmappen och indexeras direkt.")
            files = gr.File(label="Dokument (PDF, DOCX, MD, TXT, HTML)", file_count="multiple",
                            file_types=list(admin.UPLOAD_TYPES), elem_id="admin-upload", height=150)
            upload_btn = gr.Button("Spara och indexera om", variant="primary", elem_id="admin-upload-button")
            gr.Markdown("### Indexera om\nLäser korpusmapparna igen; bara nya och ändrade filer bäddas in.")
            reindex_btn = gr.Button("Indexera om", elem_id="admin-reindex")
            index_status = gr.Markdown(elem_id="admin-index-status")
            skipped = gr.Dataframe(headers=["Fil", "Orsak"], label="Överhoppade filer (inte i indexet)",
                                   interactive=False, elem_id="admin-skipped", wrap=True)
            gr.Markdown("### Ta bort dokument")
            choice = gr.Dropdown(label="Dokument att ta bort", choices=[], elem_id="admin-remove-choice")
            confirm = gr.Checkbox(label="Ja, ta bort filen från korpusmappen", elem_id="admin-remove-confirm")
            remove_btn = gr.Button("Ta bort och indexera om", variant="stop", elem_id="admin-remove")
            gr.Markdown("### Omdömen\nAlla omdömen som CSV för redaktörerna (öppnas i t.ex. Excel).")
            export_btn = gr.Button("Exportera omdömen (CSV)", elem_id="admin-export")
            export_file = gr.File(label="Omdömen (CSV)", interactive=False, elem_id="admin-export-file", height=80)

        view = [docs, choice, skipped, summary]
        private = {"api_visibility": "private"}
        index_queue = {"concurrency_limit": 1, "concurrency_id": "index", **private}  # one build at a time
        # Login answers at once, off the queue: a guesser waiting out its back-off holds no worker and
        # never queues ahead of the real admin. Then the browser stores the token as a cookie.
        login_outputs = [admin_ok, admin_token, cookie_token, password, login_row, panel, logout_btn, login_status,
                         *view]
        for trigger in (login_btn.click, password.submit):
            trigger(chat.login, [password, admin_token], login_outputs, queue=False, **private).then(
                None, [cookie_token], None, js=SET_ADMIN_COOKIE, queue=False, **private)
        logout_btn.click(chat.logout, [admin_token], [admin_ok, admin_token, cookie_token, login_row, panel,
                                                      logout_btn, login_status], queue=False, **private).then(
            None, [cookie_token], None, js=SET_ADMIN_COOKIE, queue=False, **private)
        upload_btn.click(chat.upload, [admin_ok, files, admin_token], [files, *view, index_status], **index_queue)
        reindex_btn.click(chat.reindex, [admin_ok, admin_token], [*view, index_status], **index_queue)
        remove_btn.click(chat.remove, [admin_ok, choice, confirm, admin_token], [*view, index_status, confirm],
                         **index_queue)
        export_btn.click(chat.export_feedback, [admin_ok, admin_token], [export_file], **private)


def create_app(assistant: Assistant) -> FastAPI:
    """The FastAPI app: /doc/... for the indexed documents, the HTTP API at /api/v1, the chat at /, and
    security around all three."""
    s = assistant.settings
    chat = ChatApp(assistant)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        chat.close()  # export folders; Gradio's delete_cache removes its own copies

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.include_router(documents.router(s, assistant.documents))
    app.include_router(api_router(assistant, s, concurrency=CHAT_CONCURRENCY))  # /api/v1, its own docs
    demo = build(assistant, chat)
    sensitive = [*s.corpus_dirs, s.index_dir, s.home, s.feedback_path.parent, Path.cwd(), Path.home(),
                 Path(__file__).resolve().parent.parent]
    gr.mount_gradio_app(
        app, demo, path="/", server_name=s.host, server_port=s.port,
        footer_links=["api", "settings"], run_history=False,  # run history would keep questions in the browser
        theme=THEME, css=CSS, head=HEAD, max_file_size=f"{s.max_upload_mb}mb",
        show_error=False,  # unexpected errors stay in the server log; gr.Error messages are still shown
        ssr_mode=False, enable_monitoring=False,  # None would leave /monitoring/summary open to anyone
        # Nothing beyond Gradio's own upload cache (which it always allows) may be read or served.
        allowed_paths=[], blocked_paths=blocked_paths(sensitive, keep_open=[chat.upload_dir, chat.exports.root]),
    )
    # mount_gradio_app never sets what Blocks.launch() sets here, and without it Gradio's path checks
    # (processing_utils._check_allowed) return early and accept any path a client names in an event:
    # with it, event inputs may only name files in the upload cache, and outputs only the app's own files.
    demo.has_launched = True
    app.add_middleware(UploadGate, tokens=chat.tokens if s.admin_password else None)
    app.add_middleware(SecurityHeaders)  # outermost: also on the gate's refusals
    return app


def launch(assistant: Assistant) -> None:
    import uvicorn

    s = assistant.settings
    uvicorn.run(create_app(assistant), host=s.host, port=s.port, log_level="warning")
