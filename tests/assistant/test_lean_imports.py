"""assistant.lean_imports: the parts of Chroma and bm25s the project never runs are not imported (a cold
``assistant ask`` pays for every import), and what the project does run behaves as with them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from overrides import EnforceOverrides, override

from assistant import lean_imports
from assistant.lexical import LexicalIndex, bm25s


@pytest.mark.slow  # a new Python process importing the query path: a second of the fast tier's budget
def test_the_query_path_imports_neither_scipy_nor_the_httpx_command_line():
    code = ("import json, sys\nimport assistant.pipeline, assistant.store\n"
            "print(json.dumps(sorted(m for m in ('scipy', 'scipy.sparse', 'httpx._main') if m in sys.modules)))\n"
            "print(json.dumps(sys.modules['overrides.overrides']._overrides.__name__))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    imported, checker = proc.stdout.strip().splitlines()
    assert json.loads(imported) == []
    assert json.loads(checker) == "_overrides"  # the check is back for everything imported later


def test_bm25s_runs_its_numpy_backend_which_needs_no_scipy(tmp_path):
    """Hiding SciPy changes nothing only while bm25s builds with the numpy backend (serving reads the saved
    index without bm25s: assistant.lexical.Postings)."""
    assert bm25s.BM25().csc_backend == "numpy"
    built = LexicalIndex(["Direktupphandlingsgränsen är 700 000 kronor.", "Föreningen anordnar kurser."])
    assert built.bm25.csc_backend == "numpy"
    built.save(tmp_path)
    loaded = LexicalIndex.load(tmp_path)
    assert loaded.search("Vad är direktupphandlingsgränsen?", 2)[0][0] == 0


def test_a_hidden_module_fails_to_import_only_inside_the_block(tmp_path, monkeypatch):
    (tmp_path / "optional_dependency.py").write_text("VALUE = 1\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    with lean_imports.without("optional_dependency"), pytest.raises(ImportError):
        import optional_dependency
    import optional_dependency

    assert optional_dependency.VALUE == 1
    with lean_imports.without("optional_dependency"):  # already imported: left alone
        import optional_dependency

    assert sys.modules["optional_dependency"] is optional_dependency


def test_unchecked_overrides_only_marks_and_the_check_returns_after_the_block():
    class Base(EnforceOverrides):
        def answer(self, question: str) -> str:
            return question

    with lean_imports.unchecked_overrides():
        class Lenient(Base):
            @override
            def answer(self, question: str, extra: int) -> str:  # an incompatible signature, not checked
                return question * extra

    assert Lenient().answer("ja", 2) == "jaja"  # EnforceOverrides accepted the mark
    with pytest.raises(TypeError):
        class Strict(Base):
            @override
            def answer(self, question: str, extra: int) -> str:
                return question
