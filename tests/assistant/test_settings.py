"""assistant.settings: defaults < ASSISTANT_* environment < explicit overrides (CLI flags)."""

from __future__ import annotations

import json
import os
from dataclasses import fields
from pathlib import Path
from typing import get_type_hints

import pytest
from click.testing import CliRunner

from assistant.cli import cli
from assistant.settings import Settings


def _other_value(name: str, hint: str, default, tmp_path: Path):
    """A value of the field's type that differs from its default, and how to write it in the environment."""
    if "tuple" in hint:
        value = (tmp_path / "a", tmp_path / "b")
        return value, os.pathsep.join(map(str, value))
    if "Path" in hint:
        value = tmp_path / name
        return value, str(value)
    if hint == str(bool):
        return not default, "ja" if not default else "nej"
    if hint == str(int):
        return default + 3, str(default + 3)
    if hint == str(float):
        return default + 0.25, str(default + 0.25)
    value = f"värde-{name}"
    return value, value


def test_every_field_can_be_set_from_the_environment(tmp_path):
    hints = get_type_hints(Settings)
    env, expected = {}, {}
    for f in fields(Settings):
        default = getattr(Settings(), f.name)
        value, raw = _other_value(f.name, str(hints[f.name]), default, tmp_path)
        assert value != default
        env[f"ASSISTANT_{f.name.upper()}"] = raw
        expected[f.name] = value
    settings = Settings.from_env(env)
    for name, value in expected.items():
        got = getattr(settings, name)
        assert got == value, name
        assert type(got) is type(value), name


def test_environment_values_are_parsed_to_their_types(tmp_path):
    settings = Settings.from_env({
        "ASSISTANT_TOP_K": "7",
        "ASSISTANT_LEXICAL_WEIGHT": "0.5",
        "ASSISTANT_LLM_TIMEOUT": "2",
        "ASSISTANT_CORPUS_DIRS": f"{tmp_path / 'a'}{os.pathsep}{os.pathsep}{tmp_path / 'b'}",
        "ASSISTANT_INDEX_DIR": str(tmp_path / "idx"),
        "ASSISTANT_QUERY_PREFIX": "fråga: ",
        "ASSISTANT_FEEDBACK_DB": str(tmp_path / "fb.sqlite3"),
    })
    assert settings.top_k == 7
    assert settings.lexical_weight == 0.5
    assert settings.llm_timeout == 2.0 and isinstance(settings.llm_timeout, float)
    assert settings.corpus_dirs == (tmp_path / "a", tmp_path / "b")  # empty entries are skipped, like PATH
    assert settings.index_dir == tmp_path / "idx"
    assert settings.query_prefix == "fråga: "
    assert settings.feedback_path == tmp_path / "fb.sqlite3"


def test_empty_and_unknown_variables_are_ignored():
    settings = Settings.from_env({"ASSISTANT_TOP_K": "", "ASSISTANT_NO_SUCH_THING": "1", "TOP_K": "9"})
    assert settings == Settings()


def test_a_malformed_number_is_an_error():
    with pytest.raises(ValueError):
        Settings.from_env({"ASSISTANT_TOP_K": "fem"})


def test_overrides_win_over_the_environment_and_none_means_not_given(tmp_path):
    env = {"ASSISTANT_TOP_K": "7", "ASSISTANT_INDEX_DIR": str(tmp_path / "env"),
           "ASSISTANT_CORPUS_DIRS": str(tmp_path / "envkorpus")}
    given = Settings.from_env(env, top_k=2, index_dir=str(tmp_path / "flag"), corpus_dirs=[str(tmp_path / "k")])
    assert given.top_k == 2
    assert given.index_dir == tmp_path / "flag"  # strings from flags become paths
    assert given.corpus_dirs == (tmp_path / "k",)
    absent = Settings.from_env(env, top_k=None, index_dir=None, corpus_dirs=())
    assert absent.top_k == 7
    assert absent.index_dir == tmp_path / "env"
    assert absent.corpus_dirs == (tmp_path / "envkorpus",)


def test_from_env_reads_the_process_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ASSISTANT_TOP_K", "4")
    assert Settings.from_env().top_k == 4
    assert Settings.from_env().feedback_path == tmp_path / "feedback.sqlite3"  # set by the autouse fixture


def test_home_follows_xdg_cache_home_and_holds_model_cache_and_feedback(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    settings = Settings()
    assert settings.home == tmp_path / "cache" / "samverkansassistenten"
    assert settings.model_cache == settings.home / "models"
    assert settings.feedback_path == settings.home / "feedback.sqlite3"
    assert Settings.from_env({"ASSISTANT_HOME": str(tmp_path / "h")}).model_cache == tmp_path / "h" / "models"


def test_with_returns_a_changed_copy():
    base = Settings()
    changed = base.with_(top_k=9)
    assert changed.top_k == 9 and base.top_k != 9
    with pytest.raises(AttributeError):
        base.top_k = 1  # frozen


def _hits(result) -> int:
    assert result.exit_code == 0, result.output
    return len(json.loads(result.stdout)["hits"])


def test_cli_flags_override_environment(served, monkeypatch, tmp_path):
    """Precedence end to end through the real CLI: flag > ASSISTANT_* > default."""
    runner = CliRunner()
    where = ["--corpus", str(served.corpus.dir), "--index", str(served.settings.index_dir)]
    question = "Vem samordnar de regionala nätverken?"
    default_k = Settings().top_k

    assert _hits(runner.invoke(cli, ["search", "--json", *where, question])) == default_k
    monkeypatch.setenv("ASSISTANT_TOP_K", "2")
    assert _hits(runner.invoke(cli, ["search", "--json", *where, question])) == 2
    assert _hits(runner.invoke(cli, ["search", "--json", "-k", "3", *where, question])) == 3

    # the index folder: the environment is used when no flag is given, the flag wins when it is
    monkeypatch.setenv("ASSISTANT_INDEX_DIR", str(served.settings.index_dir))
    monkeypatch.setenv("ASSISTANT_CORPUS_DIRS", str(served.corpus.dir))
    assert _hits(runner.invoke(cli, ["search", "--json", question])) == 2
    missing = tmp_path / "saknas"
    result = runner.invoke(cli, ["search", "--json", "--corpus", str(missing), question])
    assert result.exit_code == 0  # the env index serves; the corpus is only needed to build one
    result = runner.invoke(cli, ["search", "--json", "--index", str(tmp_path / "nytt-index"), "--corpus",
                                 str(missing), question])
    assert result.exit_code != 0 and "finns inte" in result.output


def test_an_empty_prefix_is_a_value_but_an_empty_path_is_not():
    settings = Settings.from_env({"ASSISTANT_QUERY_PREFIX": "", "ASSISTANT_INDEX_DIR": ""})
    assert settings.query_prefix == ""
    assert settings.index_dir == Settings().index_dir


def test_a_malformed_number_names_its_variable():
    with pytest.raises(ValueError, match="ASSISTANT_TOP_K='fem'"):
        Settings.from_env({"ASSISTANT_TOP_K": "fem"})


def test_the_cli_reports_a_malformed_variable_without_a_traceback(monkeypatch):
    monkeypatch.setenv("ASSISTANT_TOP_K", "fem")
    result = CliRunner().invoke(cli, ["search", "fråga"])
    assert result.exit_code != 0
    assert "ASSISTANT_TOP_K" in result.output
    assert "Traceback" not in result.output
