"""benchmarks/lean.py's summary table: each engine against torch, one reading for every measure."""

from __future__ import annotations

from benchmarks import lean


def row(table: str, label: str) -> list[str]:
    line = next(line for line in table.splitlines() if line.startswith(f"| {label} |"))
    return [cell.strip() for cell in line.strip("|").split("|")][1:]


def test_a_time_and_a_throughput_are_both_better_when_the_ratio_is_above_one():
    table = lean.summary({
        "torch": {"cold_ask_s": 12.0, "encode_chunks_per_s": 10.0, "serve_rss_mb": 1500.0},
        "onnx": {"cold_ask_s": 1.5, "encode_chunks_per_s": 25.0, "serve_rss_mb": 600.0},
    })
    assert row(table, "cold `ask`, s") == ["12", "1.5 (8.0× better)"]
    assert row(table, "passage embedding, chunks/s") == ["10", "25 (2.5× better)"]
    assert row(table, "serving RSS, MB") == ["1,500", "600 (2.5× better)"]


def test_an_engine_alone_or_a_missing_figure_has_no_ratio():
    table = lean.summary({"onnx": {"cold_ask_s": 1.5}, "onnx-int8": {},
                          "relevance": {"ask_p50_ms": 400.0}})
    assert table.splitlines()[0] == "| measure | onnx | onnx-int8 |"
    assert row(table, "cold `ask`, s") == ["1.5", "–"]
    assert "query embedding" not in table  # no engine measured it
