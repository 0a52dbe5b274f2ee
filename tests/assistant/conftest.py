"""Fixtures shared by the core tests (the session-wide ones are in tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def tiny(tmp_path):
    """Two short documents: for the tests where the formats do not matter, only the bookkeeping."""
    folder = tmp_path / "liten"
    folder.mkdir()
    (folder / "reserverade.md").write_text(
        "# Reserverade kontrakt\n\nMinst 30 procent av de anställda ska ha funktionsnedsättning.\n",
        encoding="utf-8")
    (folder / "iop.txt").write_text("Idéburet offentligt partnerskap är en samverkansform.\n", encoding="utf-8")
    return folder
