"""Gradio's upload route stores files for anyone who asks; here it takes files from a logged-in admin only.

The route is refused before the body is read, so an anonymous client cannot make the server store or
even receive a large upload. The admin's page carries a token cookie it gets at login (SameSite=Strict);
logging out revokes it.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from conftest import ADMIN_COOKIE, ADMIN_PASSWORD, GradioApi, Server, new_session

BIG = 20 * 1024 * 1024  # bytes; under the 50 MB upload limit, far more than an anonymous client should store


def cached_names(server: Server) -> set[str]:
    return {p.name for p in server.tmpdir.rglob("*") if p.is_file()}


def big_body(boundary: str):
    yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"stor.txt\"\r\n"
           "Content-Type: text/plain\r\n\r\n").encode()
    chunk = b"x" * (1024 * 1024)
    for _ in range(BIG // len(chunk)):
        yield chunk
    yield f"\r\n--{boundary}--\r\n".encode()


def test_no_uploads_without_an_admin_password(public_server: Server, tmp_path: Path):
    sample = tmp_path / "anonym.txt"
    sample.write_text("Uppladdat av vem som helst.", encoding="utf-8")
    api = GradioApi(public_server.url)
    try:
        response = api.upload(sample)
        assert response.status_code == 403, response.text
        boundary = "gransen"
        try:
            big = api.http.post("/gradio_api/upload", content=big_body(boundary),
                                headers={"content-type": f"multipart/form-data; boundary={boundary}"})
            assert big.status_code == 403
        except (httpx.WriteError, httpx.RemoteProtocolError):
            pass  # refused and closed before the client had sent it all: also a refusal
    finally:
        api.close()
    assert not {"anonym.txt", "stor.txt"} & cached_names(public_server), "the upload was stored"


def test_uploads_only_from_a_logged_in_admin(admin_server: Server, tmp_path: Path):
    sample = tmp_path / "underlag.txt"
    sample.write_text("Ett dokument från administratören.", encoding="utf-8")
    api = GradioApi(admin_server.url)
    try:
        assert api.upload(sample).status_code == 403  # anonymous
        assert api.upload(sample, cookies={ADMIN_COOKIE: "gissad-token"}).status_code == 403

        _, token = api.login("fel lösenord", new_session())
        assert token is None

        session = new_session()
        outputs, token = api.login(ADMIN_PASSWORD, session)
        assert "Inloggad" in api.login_status(outputs)
        assert token, "a successful login hands the page an upload token"
        accepted = api.upload(sample, cookies={ADMIN_COOKIE: token})
        assert accepted.status_code == 200, accepted.text
        assert Path(accepted.json()[0]).name == "underlag.txt"

        logout = api.triggered_by("admin-logout")[0]
        api.call(logout, [None] * len(logout.inputs), session)
        assert api.upload(sample, cookies={ADMIN_COOKIE: token}).status_code == 403  # revoked at logout
    finally:
        api.close()
