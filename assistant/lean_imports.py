"""Importing Chroma and bm25s without the parts of them the project never runs.

A cold ``assistant ask`` pays for every import, and two libraries spend most of theirs on things unused
here (CPU time of a cold ``ask`` on the shared 2-core machine, measured in isolation):

* bm25s imports SciPy only to offer its optional ``csc_backend="scipy"``; the project builds and loads
  with the ``numpy`` backend (bm25s' default, also what a saved index loads with), and SciPy's import
  (array-API shims that pull in ``numpy.f2py``) costs ~0.1 s;
* httpx, which Chroma's embedding functions import, imports its command-line client (rich, pygments)
  when they are installed, and falls back to a stub when they are not;
* Chroma marks ~200 methods with ``overrides``' ``@override``, which at class creation disassembles the
  class body to find its bases and compares every signature with the base's: a developer's check of
  Chroma's own code, ~0.25 s. ``EnforceOverrides`` (which Chroma's bases use) only needs the mark.

The results are the same: the hidden modules are optional for the code that imports them, and nothing
checked at class creation changes a class.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def without(*names: str) -> Iterator[None]:
    """Make ``import name`` fail for these not yet imported modules while the block runs, so a library
    takes its documented path for a missing optional dependency. Imports in other threads meanwhile see
    them missing too: use it around imports at start-up only."""
    hidden = [name for name in names if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # the import system's "not importable"
    try:
        yield
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


def _mark_only(method, check_signature: bool, check_at_runtime: bool):
    method.__override__ = True  # what EnforceOverrides looks for
    return method


@contextlib.contextmanager
def unchecked_overrides() -> Iterator[None]:
    """``@override`` only marks the method while the block runs (see the module docstring)."""
    try:
        import overrides  # noqa: F401  # the package binds the function over its submodule's name
    except ImportError:
        yield
        return
    module = sys.modules["overrides.overrides"]
    checked = module._overrides
    module._overrides = _mark_only
    try:
        yield
    finally:
        module._overrides = checked


@contextlib.contextmanager
def chroma() -> Iterator[None]:
    """Around the first import of chromadb and the creation of its first client (which imports the client's
    implementation)."""
    with unchecked_overrides(), without("httpx._main"):
        yield
