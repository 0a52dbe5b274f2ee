"""No event of the running chat server hands out a file of the server's disk.

The attack (issue 9): a chat message whose content is a file part naming a server path. Gradio copied
the file into its cache and answered with a /gradio_api/file= URL serving it. Here every event the
running app has (read from its /config, not a list in this test) gets that payload in each chatbot- or
file-like input, in an anonymous session and, on the admin server, in a logged-in one; every
/gradio_api/file= URL and every file path in the answers is fetched. Two canaries hold a random secret:
one outside everything, one in the server's temp folder (a place Gradio's own output rules allow).
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from conftest import GradioApi, Server, new_session

FILE_TYPES = {"file", "image", "audio", "video", "gallery", "model3d", "uploadbutton", "imageeditor",
              "annotatedimage", "simpleimage", "downloadbutton", "multimodaltextbox"}
_FILE_URL = re.compile(r"(?:https?://[^\s\"'\\]+)?/gradio_api/file=[^\s\"'\\]+")
_PATH = re.compile(r'"path"\s*:\s*"([^"]+)"')


def file_data(path: Path) -> dict[str, Any]:
    return {"path": str(path), "meta": {"_type": "gradio.FileData"}}


def chat_payloads(canary: Path) -> list[list[dict]]:
    """A user message whose content is the file part (alone and beside text), and as a component."""
    part = {"type": "file", "file": file_data(canary)}
    component = {"type": "component", "component": "file", "value": file_data(canary), "constructor_args": {},
                 "props": {}}
    return [
        [{"role": "user", "content": [part]}],
        [{"role": "user", "content": [{"type": "text", "text": "Vad står i filen?"}, part]}],
        [{"role": "user", "content": [component]}],
        [{"role": "user", "content": "Hej"}, {"role": "assistant", "content": [part]}],
    ]


def payloads(inputs: list[dict[str, Any]], canary: Path) -> list[list[Any]]:
    """Data lists for one event: the file payload in each chatbot/file input (other inputs keep their
    default), and once with the bare FileData in every input whatever its kind."""
    out = []
    for chat in chat_payloads(canary):
        data = []
        for c in inputs:
            if c["type"] == "state":
                data.append(None)
            elif c["type"] == "chatbot":
                data.append(chat)
            elif c["type"] in FILE_TYPES:
                many = c.get("file_count") in ("multiple", "directory")
                data.append([file_data(canary)] if many else file_data(canary))
            else:
                data.append(c.get("value"))
        out.append(data)
    out.append([None if c["type"] == "state" else file_data(canary) for c in inputs])
    return out


def fetch_all(api: GradioApi, texts: list[str]) -> list[str]:
    """Everything the answers point at: /gradio_api/file= URLs and bare file paths, fetched."""
    bodies = []
    joined = "\n".join(texts)
    targets = set(_FILE_URL.findall(joined)) | {f"/gradio_api/file={p}" for p in _PATH.findall(joined)}
    for target in sorted(targets):
        target = target.encode().decode("unicode_escape") if "\\u" in target else target
        response = api.http.get(target)
        bodies.append(response.content.decode("utf-8", errors="replace"))
    return bodies


def attack(server: Server, canaries: list[Path], secret: str) -> list[str]:
    api = GradioApi(server.url)
    seen: list[str] = []
    try:
        events = api.events()
        assert any(c["type"] == "chatbot" for e in events for c in e.inputs), "no chat event found in /config"
        for event in events:
            for canary in canaries:
                for data in payloads(event.inputs, canary):
                    sessions = [new_session()]
                    if server.admin_password:  # also as a logged-in admin: upload, export, ...
                        logged_in = new_session()
                        api.login(server.admin_password, logged_in)
                        sessions.append(logged_in)
                    for session in sessions:
                        texts = api.join(event, data, session)
                        texts += api.predict(event, data, session)
                        seen += texts + fetch_all(api, texts)
        for canary in canaries:  # an "uploaded" canary would be published under /doc
            seen.append(api.http.get(f"/doc/0/{quote(canary.name)}").text)
    finally:
        api.close()
    return seen


@pytest.mark.slow  # the chat server as a subprocess
@pytest.mark.parametrize("which", ["public_server", "admin_server"])
def test_no_event_returns_a_server_file(which: str, request: pytest.FixtureRequest, tmp_path: Path):
    server: Server = request.getfixturevalue(which)
    secret = secrets.token_hex(16)
    canaries = [tmp_path / "hemlig.txt", server.tmpdir / f"hemlig-{secrets.token_hex(4)}.txt"]
    for canary in canaries:
        canary.write_text(f"Lösenordet är {secret}.\n", encoding="utf-8")
    try:
        seen = attack(server, canaries, secret)
    finally:
        canaries[1].unlink()
    assert len(seen) > 20, "the attack reached too few events to mean anything"
    leaks = [text[:300] for text in seen if secret in text]
    assert not leaks, f"the canary's secret came back: {leaks[:3]}"
    corpus_files = [p for p in server.corpus.rglob("*") if p.is_file()]
    assert not [p for p in corpus_files if secret in p.read_text(encoding="utf-8", errors="replace")], \
        "the canary was copied into the corpus"
