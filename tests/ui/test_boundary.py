"""The UI's boundary with the core: ui/ imports only assistant.pipeline, assistant.types and
assistant.settings, so retrieval, indexing and loading can change without breaking the chat or the API."""

from __future__ import annotations

import ast
from pathlib import Path

import ui

ALLOWED = {"assistant.pipeline", "assistant.types", "assistant.settings"}


def assistant_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every assistant module a file imports, at any depth (function-level too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "assistant")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "assistant":  # from assistant import pipeline
                found.extend((node.lineno, f"assistant.{a.name}") for a in node.names)
            elif node.module.split(".")[0] == "assistant":
                found.append((node.lineno, node.module))
    return found


def test_ui_imports_only_the_core_api():
    files = sorted(Path(ui.__file__).parent.glob("*.py"))
    assert len(files) > 5  # the package itself, not an empty folder
    outside = [f"{f.name}:{line}: {module}" for f in files for line, module in assistant_imports(f)
               if module not in ALLOWED]
    assert outside == [], "ui/ reaches past the core API:\n" + "\n".join(outside)


def test_the_check_sees_every_import_form(tmp_path: Path):
    sample = tmp_path / "sample.py"
    sample.write_text("import assistant.loaders\nfrom assistant import indexer, pipeline\n"
                      "def f():\n    from assistant.retrieval import Retriever\n", encoding="utf-8")
    assert assistant_imports(sample) == [(1, "assistant.loaders"), (2, "assistant.indexer"),
                                         (2, "assistant.pipeline"), (4, "assistant.retrieval")]
