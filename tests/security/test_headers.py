"""Security headers on every page and response of the app: the chat, its API, static files, errors,
refusals and the documents (which keep their stricter sandbox policy). Gradio's monitoring summary,
open to anyone when the monitoring setting is left unset, stays shut."""

from __future__ import annotations

import re
from urllib.parse import quote

from conftest import GradioApi, Server
from sec_corpus import ODD_NAME


def test_every_response_carries_security_headers(public_server: Server):
    api = GradioApi(public_server.url)
    try:
        page = api.http.get("/")
        script = re.search(r'src="\./(assets/index-[^"]+\.js)"', page.text)
        assert script, "no script found on the page"
        responses = {
            "/": page,
            "/config": api.http.get("/config"),
            "/gradio_api/info": api.http.get("/gradio_api/info"),
            "/theme.css": api.http.get("/theme.css"),
            "asset": api.http.get("/" + script.group(1)),
            "404": api.http.get("/finns-inte"),
            "file=": api.http.get("/gradio_api/file=/etc/hostname"),
            "upload": api.http.post("/gradio_api/upload", files={"files": ("x.txt", b"x")}),
            "doc": api.http.get(f"/doc/0/{quote(ODD_NAME)}"),
            "monitoring": api.http.get("/monitoring/summary"),
        }
    finally:
        api.close()
    for name, response in responses.items():
        headers = response.headers
        assert headers.get("x-content-type-options") == "nosniff", name
        assert headers.get("referrer-policy") in ("no-referrer", "same-origin"), name
        assert headers.get("x-frame-options") == "DENY", name
        csp = headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in csp, (name, csp)
    csp = responses["/"].headers["content-security-policy"]
    for directive in ("default-src 'self'", "img-src 'self' data: blob:", "connect-src 'self'", "object-src 'none'"):
        assert directive in csp, directive
    assert responses["monitoring"].status_code == 403, "Gradio's monitoring summary is open"
    assert responses["doc"].status_code == 200
    assert responses["doc"].headers["content-security-policy"].startswith("sandbox"), "the /doc sandbox was lost"
