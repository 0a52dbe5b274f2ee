"""Fixtures for the security tests: the real chat server and a client for Gradio's event API.

Every server here is `python -m assistant serve` as a subprocess on 127.0.0.1 (a free port), over a
small corpus the fixture writes, with its own index, feedback database and temp folder (TMPDIR, so
Gradio's cache and the export folders of that server are visible to the tests and nobody else's).

* ``trap``: an HTTP server on 127.0.0.1 that records every request; the corpus points images and links
  at it, so a browser that fetches corpus URLs shows up there.
* ``public_server``: default settings (no admin password), shared by the session.
* ``admin_server``: the same with an admin password, so the admin events exist.
* ``start_server(root, ...)``: a server of a test's own (context manager), for tests that stop it.
* ``GradioApi``: discovers the running app's events from /config and calls them through
  /gradio_api/queue/join + /gradio_api/queue/data (queued events) or /gradio_api/run/predict.

Other modules in tests/security may use these; the corpus helpers live in ``sec_corpus``.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from processes import stop
from sec_corpus import write_security_corpus

REPO = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "sak-hemligt-lösen"
ADMIN_COOKIE = "samverkan_admin"  # the cookie the page sets after login (ui.security.ADMIN_COOKIE)
EVENT_TIMEOUT = 90.0  # seconds for one event (an admin re-index included)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str  # http://127.0.0.1:<port>/
    root: Path
    corpus: Path
    tmpdir: Path  # the server's TMPDIR: Gradio's cache and export folders live under it
    log: Path
    admin_password: str | None
    proc: subprocess.Popen = field(repr=False)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (a normal shutdown, so cleanup runs), then wait; kill only if it hangs."""
        return stop(self.proc, timeout)


@contextlib.contextmanager
def start_server(root: Path, corpus: Path | None = None, admin_password: str | None = None,
                 env: dict[str, str] | None = None) -> Iterator[Server]:
    """Run ``assistant serve`` on a free port of 127.0.0.1 until the block ends."""
    root.mkdir(parents=True, exist_ok=True)
    corpus = corpus or write_security_corpus(root / "corpus")
    tmpdir = root / "tmp"
    tmpdir.mkdir(exist_ok=True)
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSISTANT_", "GRADIO_TEMP_DIR"))}
    full_env.update({
        "ASSISTANT_FEEDBACK_DB": str(root / "feedback.sqlite3"),
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
        "TMPDIR": str(tmpdir), "PYTHONPATH": str(REPO),
    })
    if admin_password:
        full_env["ASSISTANT_ADMIN_PASSWORD"] = admin_password
    full_env.update(env or {})
    log = root / "server.log"
    cmd = [sys.executable, "-m", "assistant", "serve", "--port", str(port), "--corpus", str(corpus),
           "--index", str(root / "index")]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}/", root, corpus, tmpdir, log, admin_password, proc)
    try:
        deadline = time.monotonic() + 180  # model load and the first index build come first
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
            try:
                with urllib.request.urlopen(server.url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)
        yield server
    finally:
        server.stop()


@dataclass
class Trap:
    port: int
    paths: list[str]  # every path requested, in order


@pytest.fixture(scope="session")
def trap() -> Iterator[Trap]:
    paths: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            paths.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Trap(httpd.server_address[1], paths)
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="session")
def public_server(tmp_path_factory: pytest.TempPathFactory, trap: Trap) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("public")
    with start_server(root, write_security_corpus(root / "corpus", trap.port)) as server:
        yield server


@pytest.fixture(scope="session")
def admin_server(tmp_path_factory: pytest.TempPathFactory, trap: Trap) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("admin")
    with start_server(root, write_security_corpus(root / "corpus", trap.port),
                      admin_password=ADMIN_PASSWORD) as server:
        yield server


# --- Gradio's event API -------------------------------------------------------------------------


@dataclass
class Event:
    id: int
    inputs: list[dict[str, Any]]  # component configs
    outputs: list[dict[str, Any]]
    queued: bool
    trigger: int | None


class GradioApi:
    """A client of the running app's event API, discovered from its /config (nothing hard-coded)."""

    def __init__(self, base_url: str, cookies: dict[str, str] | None = None,
                 local_address: str | None = None):
        transport = httpx.HTTPTransport(local_address=local_address) if local_address else None
        self.http = httpx.Client(base_url=base_url, timeout=EVENT_TIMEOUT, cookies=cookies, transport=transport)
        self.config = self.http.get("/config").raise_for_status().json()
        self.components = {c["id"]: {**c["props"], "id": c["id"], "type": c["type"]}
                           for c in self.config["components"]}

    def close(self) -> None:
        self.http.close()

    def events(self) -> list[Event]:
        """Every dependency with a server function (js-only steps run in the browser only)."""
        out = []
        for dep in self.config["dependencies"]:
            if not dep.get("backend_fn"):
                continue
            targets = dep.get("targets") or []
            out.append(Event(dep["id"], [self.components[i] for i in dep["inputs"]],
                             [self.components[i] for i in dep["outputs"]], bool(dep.get("queue", True)),
                             targets[0][0] if targets else None))
        return out

    def find(self, elem_id: str, kind: str | None = None) -> list[Event]:
        """Events with an input of this elem_id (and, given ``kind``, triggered by that event name)."""
        found = []
        for dep, event in zip([d for d in self.config["dependencies"] if d.get("backend_fn")], self.events(),
                              strict=True):
            kinds = {t[1] for t in dep.get("targets") or []}
            if any(c.get("elem_id") == elem_id for c in event.inputs) and (kind is None or kind in kinds):
                found.append(event)
        return found

    def triggered_by(self, elem_id: str) -> list[Event]:
        """Server events a component of this elem_id triggers (clicks, submits, ...)."""
        return [e for e in self.events() if e.trigger is not None
                and self.components[e.trigger].get("elem_id") == elem_id]

    @staticmethod
    def value_of(event: Event, outputs: list[Any] | None, elem_id: str) -> Any:
        """The output of the component with this elem_id (an update's "value", or the value itself)."""
        for component, value in zip(event.outputs, outputs or [], strict=False):
            if component.get("elem_id") == elem_id:
                return value.get("value") if isinstance(value, dict) and "__type__" in value else value
        return None

    # calling ---------------------------------------------------------------------------------

    def join(self, event: Event, data: list[Any], session: str) -> list[str]:
        """POST /gradio_api/queue/join, then read /gradio_api/queue/data until the event completes.
        Returns every response text seen (join response and each SSE line)."""
        body = {"data": data, "fn_index": event.id, "trigger_id": event.trigger, "session_hash": session,
                "event_data": None}
        r = self.http.post("/gradio_api/queue/join", json=body)
        texts = [r.text]
        if r.status_code != 200:
            return texts
        event_id = r.json().get("event_id")
        deadline = time.monotonic() + EVENT_TIMEOUT
        with self.http.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                texts.append(line)
                if line.startswith("data:"):
                    msg = json.loads(line[5:])
                    if msg.get("msg") == "close_stream" or (
                            msg.get("msg") == "process_completed" and msg.get("event_id") == event_id):
                        break
                if time.monotonic() > deadline:
                    break
        return texts

    def predict(self, event: Event, data: list[Any], session: str) -> list[str]:
        """POST /gradio_api/run/predict (how the page calls events that skip the queue)."""
        body = {"data": data, "fn_index": event.id, "trigger_id": event.trigger, "session_hash": session,
                "event_data": None}
        return [self.http.post("/gradio_api/run/predict", json=body).text]

    def call(self, event: Event, data: list[Any], session: str) -> list[str]:
        return self.join(event, data, session) if event.queued else self.predict(event, data, session)

    @staticmethod
    def outputs(texts: list[str]) -> list[Any] | None:
        """The output data of a completed call, from the texts ``call`` returned."""
        for text in reversed(texts):
            text = text[5:] if text.startswith("data:") else text
            try:
                msg = json.loads(text)
            except ValueError:
                continue
            if isinstance(msg, dict) and msg.get("msg") == "process_completed":
                return (msg.get("output") or {}).get("data")
            if isinstance(msg, dict) and "data" in msg and "msg" not in msg:
                return msg["data"]
        return None

    def login(self, password: str, session: str) -> tuple[list[Any] | None, str | None]:
        """Log in through the app's own login event; returns its outputs and the admin token if the app
        hands one out (the value of the hidden component the page turns into the upload cookie)."""
        event = self.login_event()
        data = [password if c.get("elem_id") == "admin-password" else None for c in event.inputs]
        outputs = self.outputs(self.call(event, data, session))
        return outputs, self.value_of(event, outputs, "admin-cookie") or None

    def login_event(self) -> Event:
        return self.triggered_by("admin-login")[0]

    def login_status(self, outputs: list[Any] | None) -> str:
        return str(self.value_of(self.login_event(), outputs, "admin-login-status") or "")

    def upload(self, path: Path, cookies: dict[str, str] | None = None) -> httpx.Response:
        with open(path, "rb") as f:
            return self.http.post("/gradio_api/upload", files={"files": (path.name, f)}, cookies=cookies)


def new_session() -> str:
    return uuid.uuid4().hex[:11]
