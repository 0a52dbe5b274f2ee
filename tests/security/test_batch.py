"""`assistant ask --batch` and `search --batch` on real files: a line that is not UTF-8 or has a malformed
history costs that line only (an {"id", "question", "error"} line), never the whole run."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from assistant.cli import cli

QUESTION = "Hur stor andel av de anställda ska ha funktionsnedsättning vid reserverade kontrakt?"


def _line(**item) -> bytes:
    return json.dumps(item, ensure_ascii=False).encode("utf-8")


def _run(command: str, served, tmp_path, lines: list[bytes]) -> list[dict]:
    batch = tmp_path / "frågor.jsonl"
    batch.write_bytes(b"\n".join(lines) + b"\n")
    result = CliRunner().invoke(cli, [command, "--batch", str(batch), "--corpus", str(served.corpus.dir),
                                      "--index", str(served.settings.index_dir)])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


@pytest.mark.parametrize("command", ["ask", "search"])
def test_a_line_that_is_not_utf8_gives_an_error_line_and_the_rest_are_answered(served, tmp_path, command):
    lines = [
        _line(id="först", question=QUESTION),
        _line(id="latin1", question="Får kommunen köpa?").replace("ö".encode(), b"\xf6"),  # one cp1252 byte
        b'{"id": "tr\xe4sig-id", "question": "x"}',  # the bad byte in the id itself
        "\ufeff".encode() + _line(id="bom", question=QUESTION),  # a BOM that is not at the start: bad JSON
        _line(id="sist", question=QUESTION),
    ]
    records = _run(command, served, tmp_path, lines)
    assert [r["id"] for r in records] == ["först", "latin1", 3, 4, "sist"]
    assert records[1] == {"id": "latin1", "question": "",
                          "error": "rad 2: inte giltig UTF-8 (byte 0xf6 vid position 45)"}
    assert records[2]["error"].startswith("rad 3: inte giltig UTF-8")
    assert records[3]["error"].startswith("rad 4: ogiltig JSON-rad")
    for record in (records[0], records[-1]):
        assert "error" not in record and record["question"] == QUESTION
        assert (record["citations"] if command == "ask" else record["hits"])


def test_a_bom_at_the_start_of_the_file_is_fine(served, tmp_path):
    records = _run("search", served, tmp_path, ["\ufeff".encode() + _line(id=1, question=QUESTION)])
    assert [r["id"] for r in records] == [1] and records[0]["hits"]


@pytest.mark.parametrize("history, shown", [
    ("en sträng", '"en sträng"'),
    (["en fråga", 3], '["en fråga", 3]'),
    ({"fråga": "x"}, '{"fråga": "x"}'),
])
def test_history_must_be_a_list_of_strings(served, tmp_path, history, shown):
    records = _run("ask", served, tmp_path, [
        _line(id="fel", question=QUESTION, history=history),
        _line(id="rätt", question="Och i praktiken?", history=["Vad gäller för reserverade kontrakt?"]),
        _line(id="null", question=QUESTION, history=None),
    ])
    assert records[0] == {"id": "fel", "question": "",
                          "error": f"rad 1: ogiltig JSON-rad (history ska vara en lista med texter, inte {shown})"}
    assert records[1]["citations"][0]["page"] == 2  # the valid history was used
    assert not records[2]["abstained"]


def test_deeply_nested_json_is_an_error_line(served, tmp_path):
    records = _run("search", served, tmp_path, [b"[" * 100_000, _line(id="ok", question=QUESTION)])
    assert records[0]["id"] == 1 and records[0]["error"].startswith("rad 1: ogiltig JSON-rad")
    assert records[1]["id"] == "ok" and records[1]["hits"]
