"""What the chat server adds around Gradio to keep it safe on a network.

* ``SecurityHeaders``: CSP, nosniff, referrer and frame options on every response.
* ``UploadGate``: Gradio's upload route (anonymous by design) accepts files only from a logged-in admin.
* ``AdminTokens``: random, short-lived admin session tokens, kept server-side; the browser carries one as
  a SameSite=Strict cookie so that the upload route can tell an admin's upload from anyone else's.
* ``LoginThrottle``: exponential back-off per client address after failed admin logins. It refuses at
  once instead of sleeping, so a guesser holds no worker and never queues ahead of the real admin.
* ``blocked_paths``: folders Gradio must never read from or serve, handed to it explicitly.

Plain ASGI middleware and plain classes: no Gradio import, so they are tested directly.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Gradio's page needs inline scripts (its config is an inline <script>), eval (custom js and gr.HTML
# templates run through Function()) and inline styles. Everything else is this origin only: no remote
# images, fonts, scripts or connections, no plugins, no framing, no foreign form targets.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    "media-src 'self' blob:",
    "connect-src 'self'",
    "worker-src 'self' blob:",
    "frame-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}

ADMIN_COOKIE = "samverkan_admin"
UPLOAD_ROUTE = "/gradio_api/upload"


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every HTTP response; a header a route sets itself (the stricter sandbox
    CSP of /doc) is kept, except that frame-ancestors 'none' is added to any CSP that lacks it.

    PDFs get no CSP: Chromium's PDF viewer is a plugin the page's object-src/sandbox rules would block
    (documents.py serves them without one for the same reason)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.decode("latin-1").lower(): i for i, (name, _) in enumerate(headers)}
                media = headers[present["content-type"]][1] if "content-type" in present else b""
                for name, value in SECURITY_HEADERS.items():
                    if name == "content-security-policy" and media.startswith(b"application/pdf"):
                        continue
                    if name not in present:
                        headers.append((name.encode("latin-1"), value.encode("latin-1")))
                csp = present.get("content-security-policy")
                if csp is not None and b"frame-ancestors" not in headers[csp][1]:
                    headers[csp] = (headers[csp][0], headers[csp][1] + b"; frame-ancestors 'none'")
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class AdminTokens:
    """Admin session tokens: random, stored here only, valid for ``ttl`` seconds after their last use."""

    def __init__(self, ttl: float = 3600.0, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self._clock = clock
        self._expires: dict[str, float] = {}
        self._lock = threading.Lock()

    def issue(self) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._prune()
            self._expires[token] = self._clock() + self.ttl
        return token

    def valid(self, token: str | None, touch: bool = False) -> bool:
        if not token:
            return False
        with self._lock:
            expires = self._expires.get(token)
            now = self._clock()
            if expires is None or expires <= now:
                self._expires.pop(token, None)
                return False
            if touch:
                self._expires[token] = now + self.ttl
            return True

    def revoke(self, token: str | None) -> None:
        with self._lock:
            self._expires.pop(token or "", None)

    def _prune(self) -> None:
        now = self._clock()
        for token in [t for t, expires in self._expires.items() if expires <= now]:
            del self._expires[token]


class UploadGate:
    """Refuses POST to Gradio's upload route unless the request carries a valid admin token cookie.

    Refused before the body is read, so an anonymous client cannot make the server store anything.
    ``tokens`` is None when no admin password is configured: then every upload is refused."""

    def __init__(self, app: ASGIApp, tokens: AdminTokens | None):
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope.get("method") == "POST"
                and scope.get("path", "").rstrip("/").endswith(UPLOAD_ROUTE)
                and not (self.tokens and self.tokens.valid(_cookie(scope, ADMIN_COOKIE), touch=True))):
            body = "Uppladdning kräver inloggning som administratör.".encode()
            await send({"type": "http.response.start", "status": 403, "headers": [
                (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
                (b"connection", b"close")]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def _cookie(scope: Scope, name: str) -> str | None:
    for key, value in scope.get("headers", []):
        if key == b"cookie":
            try:
                jar = SimpleCookie(value.decode("latin-1"))
            except CookieError:
                continue
            if name in jar:
                return jar[name].value
    return None


class LoginThrottle:
    """Exponential back-off per client after failed logins, without sleeping.

    The first ``free`` failures cost nothing (typos); after that a client must wait ``base · 2^k`` seconds
    (k = failures beyond ``free`` − 1, at most ``cap``) before its next try is even checked. A client
    that has not failed for ``forget_after`` seconds starts over; success resets it."""

    def __init__(self, free: int = 2, base: float = 1.0, cap: float = 300.0, forget_after: float = 3600.0,
                 max_clients: int = 10_000, clock: Callable[[], float] = time.monotonic):
        self.free, self.base, self.cap, self.forget_after = free, base, cap, forget_after
        self.max_clients = max_clients
        self._clock = clock
        self._state: dict[str, tuple[int, float, float]] = {}  # client -> (failures, last failure, next try)
        self._lock = threading.Lock()

    def wait(self, client: str) -> float:
        """Seconds until this client may try again (0: now)."""
        with self._lock:
            entry = self._current(client)
            return max(0.0, entry[2] - self._clock()) if entry else 0.0

    def failed(self, client: str) -> float:
        """Record a failed try; returns the wait before the next one."""
        with self._lock:
            now = self._clock()
            failures = (self._current(client) or (0, now, now))[0] + 1
            beyond = failures - self.free
            delay = min(self.cap, self.base * 2 ** (beyond - 1)) if beyond > 0 else 0.0
            if len(self._state) >= self.max_clients and client not in self._state:
                self._forget_oldest()
            self._state[client] = (failures, now, now + delay)
            return delay

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._state.pop(client, None)

    def _current(self, client: str) -> tuple[int, float, float] | None:
        entry = self._state.get(client)
        if entry and self._clock() - entry[1] > max(self.forget_after, entry[2] - entry[1]):
            del self._state[client]
            return None
        return entry

    def _forget_oldest(self) -> None:
        # bounded memory under a spray of addresses: drop the entries that failed longest ago
        for client, _ in sorted(self._state.items(), key=lambda item: item[1][1])[: max(1, self.max_clients // 10)]:
            del self._state[client]


def client_address(request: Any) -> str:
    """The client's address as Gradio's request gives it (uvicorn puts a trusted proxy's
    X-Forwarded-For there; see README, Security)."""
    client = getattr(request, "client", None)
    return str(getattr(client, "host", None) or "okänd")


SYSTEM_PATHS = ("/etc", "/proc", "/sys", "/dev", "/root", "/home", "/boot", "/run", "/srv", "/var")


def blocked_paths(sensitive: Iterable[str | Path], keep_open: Iterable[str | Path]) -> list[str]:
    """Folders Gradio must never read or serve: the given ones plus system folders, except any that
    contains a folder in ``keep_open`` (Gradio's own upload cache, the export folder), which would
    otherwise be shut too since a block wins over every allow."""
    keep = [Path(p).resolve() for p in keep_open]
    out: list[str] = []
    for raw in [*sensitive, *SYSTEM_PATHS]:
        path = Path(os.path.abspath(raw)).resolve()
        if path == Path(path.anchor) or any(k.is_relative_to(path) for k in keep) or str(path) in out:
            continue
        out.append(str(path))
    return out
