"""Temporary folders for the feedback CSV export: made only when an admin exports, removed again.

Gradio copies a returned file into its own cache (cleaned by the Blocks' delete_cache) at once, so an
export folder is needed for seconds. Folders of this server are removed at shutdown; folders left by
earlier runs (a crash, kill -9) are removed once they are older than ``max_age``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

PREFIX = "samverkan-export-"


class ExportFolders:
    def __init__(self, root: str | Path | None = None, max_age: float = 3600.0):
        self.root = Path(root or tempfile.gettempdir())
        self.max_age = max_age
        self._made: list[Path] = []
        self._lock = threading.Lock()

    def new(self) -> Path:
        """A fresh private folder (0700) for one export; old ones are pruned first."""
        self.prune()
        folder = Path(tempfile.mkdtemp(prefix=PREFIX, dir=self.root))
        with self._lock:
            self._made.append(folder)
        return folder

    def prune(self) -> int:
        """Remove this user's export folders older than ``max_age``; returns how many."""
        removed = 0
        cutoff = time.time() - self.max_age
        for folder in self.root.glob(f"{PREFIX}*"):
            try:
                info = folder.lstat()
            except OSError:
                continue
            if folder.is_symlink() or not folder.is_dir() or info.st_uid != os.getuid() or info.st_mtime > cutoff:
                continue
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
        return removed

    def close(self) -> None:
        """Remove every folder this instance made (at server shutdown)."""
        with self._lock:
            made, self._made = self._made, []
        for folder in made:
            shutil.rmtree(folder, ignore_errors=True)
