"""assistant.settings: defaults < ASSISTANT_* environment < explicit overrides (CLI flags); a value outside
a setting's choices or range stops the program at start with the variable's name and what it allows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Literal, get_args, get_origin

import pytest
from click.testing import CliRunner

from assistant.cli import cli
from assistant.settings import PROJECT_ROOT, Settings, SettingsError


def _other_value(name: str, annotation, default, tmp_path: Path):
    """A valid value of the field that differs from its default, and how to write it in the environment."""
    if get_origin(annotation) is Literal:
        value = next(v for v in get_args(annotation) if v != default)
        return value, value
    hint = str(annotation)
    if "tuple" in hint:
        value = (tmp_path / "a", tmp_path / "b")
        return value, os.pathsep.join(map(str, value))
    if "Path" in hint:
        value = tmp_path / name
        return value, str(value)
    if annotation is int:
        return default + 3, str(default + 3)
    if annotation is float:
        return default + 0.25, str(default + 0.25)
    value = f"värde-{name}"
    return value, value


def test_every_field_can_be_set_from_the_environment(tmp_path):
    env, expected = {}, {}
    defaults = Settings.from_env({})
    for name, field in Settings.model_fields.items():
        default = getattr(defaults, name)
        value, raw = _other_value(name, field.annotation, default, tmp_path)
        assert value != default
        env[f"ASSISTANT_{name.upper()}"] = raw
        expected[name] = value
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
    settings = Settings.from_env({"ASSISTANT_TOP_K": "", "ASSISTANT_FUSION": "", "ASSISTANT_NO_SUCH_THING": "1",
                                  "TOP_K": "9"})
    assert settings == Settings.from_env({})
    assert settings.top_k == 5 and settings.fusion == "zscore"


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
    settings = Settings.from_env({})
    assert settings.home == tmp_path / "cache" / "samverkansassistenten"
    assert settings.model_cache == settings.home / "models"
    assert settings.feedback_path == settings.home / "feedback.sqlite3"
    assert Settings.from_env({"ASSISTANT_HOME": str(tmp_path / "h")}).model_cache == tmp_path / "h" / "models"


def test_with_returns_a_changed_copy_checked_like_the_environment(monkeypatch):
    base = Settings()
    changed = base.with_(top_k=9)
    assert changed.top_k == 9 and base.top_k != 9
    with pytest.raises(ValueError, match="frozen"):
        base.top_k = 1
    with pytest.raises(SettingsError, match=r"ASSISTANT_TOP_K=0 .*från 1 till 100"):
        base.with_(top_k=0)
    monkeypatch.setenv("ASSISTANT_TOP_K", "3")
    assert base.with_(port=8000).top_k == base.top_k  # a copy keeps its values: the environment is not read again


def test_settings_read_the_environment_and_explicit_values_win(monkeypatch):
    monkeypatch.setenv("ASSISTANT_TOP_K", "3")
    monkeypatch.setenv("ASSISTANT_FUSION", "rrf")
    assert (Settings().top_k, Settings().fusion) == (3, "rrf")
    assert Settings(top_k=4).top_k == 4


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


# --- values a setting cannot have: an error at start, naming the variable and what it allows ---------------


@pytest.mark.parametrize(("variable", "value", "allowed"), [
    ("ASSISTANT_FUSION", "RRF", "välj zscore eller rrf"),  # ran z-score fusion without a word
    ("ASSISTANT_LLM_PROVIDER", "opnai", 'välj "" (tomt), openai eller ollama'),  # gave extractive answers forever
    ("ASSISTANT_RETRIEVAL", "bm25", "välj hybrid, dense eller lexical"),
    ("ASSISTANT_ENGINE", "tpu", "välj onnx, onnx-int8 eller torch"),
    ("ASSISTANT_RELEVANCE_ENGINE", "int8", "välj onnx eller onnx-int8"),
    # numbers out of range name the range
    ("ASSISTANT_TOP_K", "0", "ett heltal från 1 till 100"),
    ("ASSISTANT_LEXICAL_WEIGHT", "1.5", "ett tal från 0 till 1"),
    ("ASSISTANT_PORT", "70000", "ett heltal från 1 till 65535"),
    ("ASSISTANT_CHUNK_TOKENS", "1000", "ett heltal från 16 till 512"),
    ("ASSISTANT_LLM_TIMEOUT", "0", "ett tal, större än 0"),
    ("ASSISTANT_MAX_CHARS", "-1", "ett heltal, minst 1"),
])
def test_a_bad_value_names_the_variable_and_what_it_allows(variable, value, allowed):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({variable: value})
    assert str(caught.value) == f"{variable}={value!r} är inte ett giltigt värde ({allowed})"


def test_every_choice_of_every_setting_is_accepted_and_each_bad_variable_is_named():
    choices = {name: get_args(f.annotation) for name, f in Settings.model_fields.items()
               if get_origin(f.annotation) is Literal}
    assert set(choices) == {"engine", "relevance_engine", "retrieval", "fusion", "llm_provider"}
    for name, values in choices.items():
        for value in values:
            assert getattr(Settings.from_env({f"ASSISTANT_{name.upper()}": value}), name) == value
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"ASSISTANT_FUSION": "RRF", "ASSISTANT_TOP_K": "0", "ASSISTANT_PORT": "7860"})
    assert [line.split("=")[0] for line in str(caught.value).splitlines()] == ["ASSISTANT_TOP_K", "ASSISTANT_FUSION"]


def test_a_misspelt_setting_in_code_is_an_error():
    with pytest.raises(SettingsError, match="okänd inställning 'topk'"):
        Settings(topk=3)


def test_secrets_stay_out_of_the_repr():
    settings = Settings(llm_api_key="nyckel-llm", admin_password="lösen-admin", api_keys="nyckel-api",
                        chroma_token="nyckel-chroma")
    shown = repr(settings) + str(settings)
    assert "top_k=5" in shown
    for secret in ("nyckel-llm", "lösen-admin", "nyckel-api", "nyckel-chroma"):
        assert secret not in shown
    with pytest.raises(SettingsError) as caught:
        Settings(llm_api_key=987654)  # not even a wrong secret is echoed
    assert str(caught.value) == "ASSISTANT_LLM_API_KEY=*** är inte ett giltigt värde (en text)"


@pytest.mark.parametrize("command", ["ask", "serve"])
def test_the_cli_stops_at_start_on_a_bad_value(command, tmp_path):
    """As a user runs it: a short message naming the variable and its choices on stderr, no traceback, exit 1.
    (Corpus and index do not exist: without the check the command would fail later, for another reason.)"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    env.update({"ASSISTANT_FUSION": "RRF", "ASSISTANT_FEEDBACK_DB": str(tmp_path / "fb.sqlite3"),
                "PYTHONPATH": str(PROJECT_ROOT)})
    args = ["Vad är direktupphandlingsgränsen?"] if command == "ask" else []
    proc = subprocess.run(
        [sys.executable, "-m", "assistant", command, *args, "--corpus", str(tmp_path / "saknas"),
         "--index", str(tmp_path / "index")],
        env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.strip() == "Error: ASSISTANT_FUSION='RRF' är inte ett giltigt värde (välj zscore eller rrf)"
    assert proc.stdout == ""
