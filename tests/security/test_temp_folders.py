"""Temp folders: no samverkan-export-* folder per start; export folders only when exporting, removed at
shutdown; leftovers of earlier runs pruned. Gradio's copy of the export goes at shutdown too."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from conftest import ADMIN_PASSWORD, GradioApi, new_session, start_server


def exports(tmpdir: Path) -> list[Path]:
    return sorted(tmpdir.glob("samverkan-export-*"))


@pytest.mark.slow  # the chat server as a subprocess
def test_export_folders_only_while_needed(tmp_path: Path):
    root = tmp_path / "server"
    stale = root / "tmp" / "samverkan-export-gammal"  # left by a run that was killed two hours ago
    stale.mkdir(parents=True)
    (stale / "omdomen.csv").write_text("id\n", encoding="utf-8")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))

    with start_server(root, admin_password=ADMIN_PASSWORD) as server:
        assert exports(server.tmpdir) == [], "an export folder was made (or left) without any export"
        api = GradioApi(server.url)
        try:
            session = new_session()
            api.login(ADMIN_PASSWORD, session)
            event = api.triggered_by("admin-export")[0]
            outputs = api.outputs(api.call(event, [None] * len(event.inputs), session))
            exported = api.value_of(event, outputs, "admin-export-file")
            assert exported and exported["path"].endswith(".csv"), outputs
            assert api.http.get(exported["url"]).text.lstrip("\ufeff").startswith("id,")
        finally:
            api.close()
        assert len(exports(server.tmpdir)) <= 1
        returncode = server.stop()
    # uvicorn shuts down cleanly on SIGTERM and then re-raises it: -15 is a clean stop, -9 a kill
    assert returncode in (0, -15), server.log.read_text(errors="replace")[-2000:]
    assert exports(server.tmpdir) == [], "export folders were left behind"
    assert not list(server.tmpdir.rglob("*.csv")), "a copy of the export was left in Gradio's cache"
