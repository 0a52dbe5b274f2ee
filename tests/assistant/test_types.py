"""assistant.types: what the models read of a chunk."""

from __future__ import annotations

from assistant.types import Chunk


def test_embedding_text_has_title_and_section_but_no_source_notes():
    chunk = Chunk(id="x", text="Minst 30 procent ska tillhöra målgruppen (källa: Upphandlingsmyndigheten, "
                  "reserverad upphandling).", source="a.md", corpus_dir="/c", title="Reserverade kontrakt",
                  section="Kravet", page=None, position=0)
    # the note names a source, not content: left in, it pulls in every passage citing the same source
    assert chunk.embedding_text() == "Reserverade kontrakt > Kravet\nMinst 30 procent ska tillhöra målgruppen."
