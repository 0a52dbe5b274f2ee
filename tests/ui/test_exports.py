"""Export folders: made on demand, pruned when old, removed at shutdown; never another user's or a link."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ui.exports import PREFIX, ExportFolders


def test_folders_on_demand_pruned_and_closed(tmp_path: Path):
    folders = ExportFolders(tmp_path, max_age=3600)
    assert list(tmp_path.iterdir()) == []  # nothing until an export
    old = tmp_path / f"{PREFIX}gammal"
    old.mkdir()
    past = time.time() - 7200
    os.utime(old, (past, past))
    recent = tmp_path / f"{PREFIX}annan-server"  # another running server's fresh export: kept
    recent.mkdir()
    outside = tmp_path / "annat"
    outside.mkdir()
    (tmp_path / f"{PREFIX}lank").symlink_to(outside)
    os.utime(tmp_path / f"{PREFIX}lank", (past, past), follow_symlinks=False)

    made = folders.new()
    assert made.is_dir() and made.name.startswith(PREFIX) and (made.stat().st_mode & 0o777) == 0o700
    assert not old.exists() and recent.exists() and outside.exists()
    second = folders.new()
    folders.close()
    assert not made.exists() and not second.exists() and recent.exists()
