"""Fixtures for the chat UI tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from ui_corpus import write_ui_corpus


@pytest.fixture
def ui_corpus(tmp_path: Path) -> Path:
    return write_ui_corpus(tmp_path / "corpus")
