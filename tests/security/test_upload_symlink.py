"""An admin upload whose name is a symbolic link in the corpus folder is refused; nothing is written
through the link to where it points."""

from __future__ import annotations

from pathlib import Path

from conftest import ADMIN_COOKIE, ADMIN_PASSWORD, GradioApi, Server, new_session


def test_upload_onto_a_symlink_is_refused(admin_server: Server, tmp_path: Path):
    outside = tmp_path / "utanfor-korpus.md"
    outside.write_text("Orört innehåll.", encoding="utf-8")
    link = admin_server.corpus / "lank.md"
    link.symlink_to(outside)
    sample = tmp_path / "lank.md"
    sample.write_text("# Genom länken\n\nDen här texten får inte hamna utanför korpusen.", encoding="utf-8")
    api = GradioApi(admin_server.url)
    try:
        session = new_session()
        _, token = api.login(ADMIN_PASSWORD, session)
        uploaded = api.upload(sample, cookies={ADMIN_COOKIE: token} if token else None)
        assert uploaded.status_code == 200, uploaded.text
        files = [{"path": p, "orig_name": "lank.md", "meta": {"_type": "gradio.FileData"}} for p in uploaded.json()]
        event = api.triggered_by("admin-upload-button")[0]
        data = [files if c["type"] == "file" else None for c in event.inputs]
        outputs = api.outputs(api.call(event, data, session))
        status = str(api.value_of(event, outputs, "admin-index-status") or "")
        assert outside.read_text(encoding="utf-8") == "Orört innehåll.", "the upload was written through the link"
        assert link.is_symlink()
        assert "Inte sparad: lank.md" in status and "symbolisk länk" in status, status
    finally:
        api.close()
        link.unlink(missing_ok=True)
