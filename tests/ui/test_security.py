"""ui.security: headers, the upload gate, admin tokens, login back-off and the blocked paths."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, Response
from fastapi.testclient import TestClient

from ui.security import (
    ADMIN_COOKIE,
    CONTENT_SECURITY_POLICY,
    AdminTokens,
    LoginThrottle,
    SecurityHeaders,
    UploadGate,
    blocked_paths,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _app(tokens: AdminTokens | None) -> TestClient:
    app = FastAPI()

    @app.get("/")
    def page() -> PlainTextResponse:
        return PlainTextResponse("sida")

    @app.get("/doc")
    def doc() -> PlainTextResponse:
        return PlainTextResponse("doc", headers={"Content-Security-Policy": "sandbox; default-src 'none'"})

    @app.get("/pdf")
    def pdf() -> Response:
        return Response(b"%PDF", media_type="application/pdf")

    @app.post("/gradio_api/upload")
    def upload() -> PlainTextResponse:
        return PlainTextResponse("sparad")

    app.add_middleware(UploadGate, tokens=tokens)
    app.add_middleware(SecurityHeaders)
    return TestClient(app)


def test_headers_on_every_response_and_route_policies_kept():
    client = _app(None)
    page = client.get("/")
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert (page.headers["x-content-type-options"], page.headers["referrer-policy"], page.headers["x-frame-options"]) \
        == ("nosniff", "no-referrer", "DENY")
    doc_policy = client.get("/doc").headers["content-security-policy"]
    assert doc_policy == "sandbox; default-src 'none'; frame-ancestors 'none'"
    assert "content-security-policy" not in client.get("/pdf").headers  # Chromium's PDF viewer needs none
    assert client.get("/finns-inte").headers["x-frame-options"] == "DENY"
    assert client.post("/gradio_api/upload").headers["x-content-type-options"] == "nosniff"  # on refusals too


def test_upload_gate():
    assert _app(None).post("/gradio_api/upload", cookies={ADMIN_COOKIE: "x"}).status_code == 403  # no admin at all
    tokens = AdminTokens()
    client = _app(tokens)
    token = tokens.issue()
    assert client.post("/gradio_api/upload").status_code == 403
    assert client.post("/gradio_api/upload", cookies={ADMIN_COOKIE: "gissad"}).status_code == 403
    assert client.post("/gradio_api/upload", cookies={ADMIN_COOKIE: token}).text == "sparad"
    assert client.get("/", cookies={ADMIN_COOKIE: "gissad"}).status_code == 200  # only the upload is gated
    tokens.revoke(token)
    assert client.post("/gradio_api/upload", cookies={ADMIN_COOKIE: token}).status_code == 403


def test_admin_tokens_lapse_unless_used():
    clock = Clock()
    tokens = AdminTokens(ttl=60, clock=clock)
    first, second = tokens.issue(), tokens.issue()
    assert first != second and len(first) >= 40
    clock.now += 50
    assert tokens.valid(first, touch=True)
    clock.now += 50
    assert tokens.valid(first) and not tokens.valid(second)  # used 50 s ago vs issued 100 s ago
    assert not tokens.valid("") and not tokens.valid(None)


def test_login_back_off_grows_per_client_and_resets():
    clock = Clock()
    throttle = LoginThrottle(free=2, base=1.0, cap=8.0, forget_after=3600, clock=clock)
    waits = [throttle.failed("a") for _ in range(7)]
    assert waits == [0, 0, 1, 2, 4, 8, 8]
    assert throttle.wait("a") == 8 and throttle.wait("b") == 0  # another client is not affected
    clock.now += 8
    assert throttle.wait("a") == 0
    throttle.succeeded("a")
    assert throttle.failed("a") == 0  # success starts over
    throttle.failed("c")
    clock.now += 3601
    assert throttle.failed("c") == 0  # forgotten after an hour without failures


def test_login_back_off_memory_is_bounded():
    throttle = LoginThrottle(max_clients=100)
    for i in range(1000):
        throttle.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(throttle._state) <= 100


def test_blocked_paths_keep_the_upload_cache_open(tmp_path: Path):
    cache, exports = tmp_path / "tmp" / "gradio", tmp_path / "tmp"
    blocked = blocked_paths([tmp_path / "corpus", tmp_path, "/", "/etc"], keep_open=[cache, exports])
    assert str((tmp_path / "corpus").resolve()) in blocked and "/etc" in blocked and "/proc" in blocked
    assert str(tmp_path.resolve()) not in blocked  # it holds the cache: blocking it would block uploads
    assert "/" not in blocked and len(blocked) == len(set(blocked))
