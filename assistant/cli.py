"""`assistant` command line: index, search, ask, serve, eval. Thin: all work happens in the core."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from assistant.settings import Settings
from assistant.types import search_json

corpus_option = click.option(
    "--corpus", "corpus_dirs", multiple=True, type=click.Path(path_type=Path),
    help="Korpusmapp (kan anges flera gånger). Standard: den medföljande corpus/.",
)
index_option = click.option("--index", "index_dir", type=click.Path(path_type=Path), help="Indexmapp.")
json_option = click.option("--json", "as_json", is_flag=True, help="Skriv JSON (ett objekt per rad).")
batch_option = click.option(
    "--batch", type=click.File("rb"),  # bytes: each line is decoded on its own, so one bad byte costs one line
    help='JSON Lines-fil med {"id", "question", "history"?}; en JSON-rad ut per rad in, i samma ordning.',
)


def _settings(**overrides) -> Settings:
    try:
        return Settings.from_env(**overrides)
    except ValueError as exc:  # a malformed ASSISTANT_* variable: say which, no traceback
        raise click.ClickException(str(exc)) from exc


def _progress_bar():
    """A tqdm bar per stage on stderr, so stdout stays clean for --json."""
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}
    interactive = sys.stderr.isatty()  # a log (CI, a service) gets the summary, not redrawn bars

    def update(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=stage, unit="fil" if stage == "läser" else "st",
                                     file=sys.stderr, leave=False, disable=total == 0 or not interactive)
        bar.total = total
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    return update


def _assistant(settings: Settings, build_if_missing: bool = True):
    from assistant import relevance
    from assistant.embeddings import embedder

    # The tokenizer and the two ONNX sessions load in C++ without the GIL: on the other core, while the
    # imports below (Chroma, bm25s: Python, one core) run on this one.
    if settings.chroma_url:  # an unusable server is named now: not "building the index", no model loaded
        from assistant.indexer import IndexBuildError, check_server

        try:
            check_server(settings)
        except IndexBuildError as exc:
            raise click.ClickException(str(exc)) from exc
    embedder.prefetch_tokenizer(settings)
    embedder.prefetch(settings)
    relevance.prefetch(settings)
    from assistant.pipeline import Assistant

    assistant = Assistant(settings)
    if build_if_missing and assistant.needs_index():
        click.echo("Bygger indexet först (första körningen) …", err=True)
        _run_index(assistant)
    return assistant


@contextlib.contextmanager
def _served_index() -> Iterator[None]:
    """An index that cannot be used partway (its Chroma server stopped answering, or came back without it;
    another build switched it): its Swedish message and exit 1, as for any CLI error, not a traceback. The
    answers printed before stay, so a --batch run shows how far it got."""
    from assistant.pipeline import ChromaServerError, IndexMismatchError, NoIndexError

    try:
        yield
    except (ChromaServerError, NoIndexError, IndexMismatchError) as exc:
        raise click.ClickException(str(exc)) from exc


def _run_index(assistant) -> None:
    from assistant.indexer import IndexBuildError

    try:
        report = assistant.index(progress=_progress_bar())
    except IndexBuildError as exc:
        raise click.ClickException(str(exc)) from exc
    for skipped in report.skipped:
        click.echo(f"Överhoppad: {skipped.source}: {skipped.reason}", err=True)
    click.echo(f"Klart: {report.summary()}", err=True)


@click.group()
@click.version_option(package_name="samverkansassistenten")
def cli() -> None:
    """Samverkansassistenten: frågor och svar om kommuners samverkan med sociala företag, med källor."""


@cli.command()
@corpus_option
@index_option
@json_option
def index(corpus_dirs, index_dir, as_json) -> None:
    """Bygg eller uppdatera indexet (bara nya och ändrade filer bäddas in)."""
    from assistant.indexer import IndexBuildError
    from assistant.pipeline import Assistant

    assistant = Assistant(_settings(corpus_dirs=tuple(corpus_dirs), index_dir=index_dir))
    try:
        report = assistant.index(progress=_progress_bar())
    except IndexBuildError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(report.to_json(), ensure_ascii=False))
    else:
        for skipped in report.skipped:
            click.echo(f"Överhoppad: {skipped.source}: {skipped.reason}")
        click.echo(
            f"Tillagda: {len(report.added)}  Uppdaterade: {len(report.updated)}  "
            f"Oförändrade: {len(report.unchanged)}  Borttagna: {len(report.removed)}  "
            f"Överhoppade: {len(report.skipped)}  Avsnitt: {report.chunks}  "
            f"Tid: {report.seconds:.1f} s" + ("  (helt ombyggt)" if report.rebuilt else "")
        )


def _requests(question: str | None, history: tuple[str, ...], batch):
    if batch is not None:
        for line_no, raw in enumerate(batch, start=1):
            if line_no == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")  # a BOM from Windows editors
            if not raw.strip():
                continue
            yield _batch_request(line_no, raw)
    elif question:
        yield None, question, list(history), None
    else:
        raise click.UsageError("Ange en FRÅGA eller --batch FIL.")


def _batch_request(line_no: int, raw: bytes) -> tuple[object, str, list[str], str | None]:
    """(id, question, history, error) of one --batch line; a bad line gives an error, never an exception."""
    item = None
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        with contextlib.suppress(ValueError, RecursionError):  # keep the line's own id when it is readable
            item = json.loads(raw.decode("utf-8", errors="replace"))
        id_ = item.get("id", line_no) if isinstance(item, dict) else line_no
        if isinstance(id_, str) and "\ufffd" in id_:
            id_ = line_no  # the bad byte is in the id itself: a changed id would be worse than the line number
        return id_, "", [], f"rad {line_no}: inte giltig UTF-8 (byte 0x{raw[exc.start]:02x} vid position {exc.start})"
    try:
        item = json.loads(line)
        question = item["question"]
        if not isinstance(question, str):
            raise TypeError(f"question ska vara text, inte {json.dumps(question)}")
        history = item.get("history")
        if history is None:
            history = []
        if not isinstance(history, list) or not all(isinstance(h, str) for h in history):
            raise TypeError(f"history ska vara en lista med texter, inte {json.dumps(history, ensure_ascii=False)}")
        return item.get("id", line_no), question, history, None
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        id_ = item.get("id", line_no) if isinstance(item, dict) else line_no  # keep a given id
        return id_, "", [], f"rad {line_no}: ogiltig JSON-rad ({exc})"


@cli.command()
@click.argument("question", required=False)
@click.option("-k", "top_k", type=click.IntRange(1, 100), help="Antal träffar (standard 5).")
@click.option("--history", multiple=True, help="Tidigare fråga i samtalet (kan upprepas).")
@click.option("--mode", type=click.Choice(["hybrid", "dense", "lexical"]), help="Sökmetod.")
@corpus_option
@index_option
@json_option
@batch_option
def search(question, top_k, history, mode, corpus_dirs, index_dir, as_json, batch) -> None:
    """Visa de avsnitt som bäst matchar FRÅGA."""
    settings = _settings(corpus_dirs=tuple(corpus_dirs), index_dir=index_dir, top_k=top_k, retrieval=mode)
    assistant = _assistant(settings)
    for id_, q, hist, error in _requests(question, history, batch):
        if error:
            click.echo(json.dumps({"id": id_, "question": q, "error": error}, ensure_ascii=False))
            continue
        with _served_index():
            hits, timings = assistant.search(q, k=settings.top_k, history=hist)
        if as_json or batch is not None:
            click.echo(json.dumps(search_json(id_, q, hits, timings), ensure_ascii=False))
        else:
            for h in hits:
                click.echo(f"{h.rank}. [{h.score:.4f}] {h.chunk.location()}")
                click.echo("   " + h.chunk.text[:300].replace("\n", " "))


@cli.command()
@click.argument("question", required=False)
@click.option("--history", multiple=True, help="Tidigare fråga i samtalet (kan upprepas, äldst först).")
@corpus_option
@index_option
@json_option
@batch_option
def ask(question, history, corpus_dirs, index_dir, as_json, batch) -> None:
    """Besvara FRÅGA med citerade källor (eller säg att underlaget inte svarar)."""
    settings = _settings(corpus_dirs=tuple(corpus_dirs), index_dir=index_dir)
    assistant = _assistant(settings)
    for id_, q, hist, error in _requests(question, history, batch):
        if error:
            click.echo(json.dumps({"id": id_, "question": q, "error": error}, ensure_ascii=False))
            continue
        with _served_index():
            answer = assistant.ask(q, history=hist)
        if as_json or batch is not None:
            click.echo(json.dumps(answer.to_json(id_), ensure_ascii=False))
            continue
        click.echo(answer.answer)
        if answer.notice:  # e.g. the LLM could not be reached and quotes are shown instead
            click.echo(f"\nObs: {answer.notice}")
        if answer.citations:
            click.echo("\nKällor:")
            for c in answer.citations:
                click.echo(f"[{c.n}] {c.location()}")
                click.echo(f"    ”{c.quote}”")


@cli.command()
@click.option("--host", help="Adress att lyssna på (standard 127.0.0.1).")
@click.option("--port", type=int, help="Port (standard 7860).")
@corpus_option
@index_option
def serve(host, port, corpus_dirs, index_dir) -> None:
    """Starta chatten i webbläsaren (bygger indexet först om det saknas)."""
    settings = _settings(host=host, port=port, corpus_dirs=tuple(corpus_dirs), index_dir=index_dir)
    assistant = _assistant(settings, build_if_missing=False)
    click.echo("Uppdaterar indexet (bara nya och ändrade filer) …", err=True)
    try:
        _run_index(assistant)  # incremental: seconds when nothing changed; the chat never serves stale files
    except click.ClickException as exc:
        if assistant.needs_index():
            raise
        click.echo(f"Indexet kunde inte uppdateras ({exc.message}); det befintliga indexet används.", err=True)
    # the relevance model is merged and exported to ONNX once (a few minutes on the first run): do it now,
    # not in the first visitor's request
    click.echo("Laddar relevansmodellen …", err=True)
    _ = assistant.relevance
    from ui.app import launch

    click.echo(f"Chatten körs på http://{settings.host}:{settings.port}", err=True)
    launch(assistant)


def _set_names() -> list[str]:
    from assistant.evalsets import SETS

    return list(SETS)


@cli.command(name="eval")
@click.option("--set", "set_names", multiple=True, type=click.Choice(_set_names()),
              help="Frågeset (kan anges flera gånger; ett block per set). Standard: eval. De externa seten "
                   "läses från ../shared/bench (ASSISTANT_BENCH_DIR), urvalen (*-slice) från eval/external.")
@click.option("--limit", type=click.IntRange(1), help="Högst N besvarbara och N obesvarbara frågor per set "
              "(ett seedat urval). squad-dev: 150 om inget anges.")
@click.option("--all", "all_questions", is_flag=True, help="Alla frågor (även squad-dev).")
@click.option("--questions", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Frågefil (JSON Lines) för --set eval. Standard: eval/questions.jsonl.")
@click.option("--thresholds", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSON med lägsta godkända värden ({mått: tal} eller {mått: {\"max\": tal}}); avslutar "
                   "med felkod om något mått hamnar utanför. En fil per --set, i samma ordning.")
@click.option("--per-question", is_flag=True, help="Visa utfallet för varje fråga.")
@corpus_option
@index_option
@json_option
def eval_command(set_names, limit, all_questions, questions, thresholds, per_question, corpus_dirs, index_dir,
                 as_json) -> None:
    """Mät återvinning, nyckelfakta, citat, avböjanden, svarslängd och svarstid på ett eller flera frågeset."""
    import time

    from assistant import evalsets
    from assistant.evaluation import check_thresholds, evaluate, validate_thresholds
    from assistant.pipeline import Assistant

    names = list(set_names) or ["eval"]
    if limit is not None and all_questions:
        raise click.UsageError("Ange antingen --limit eller --all.")
    if (questions or corpus_dirs or index_dir) and "eval" not in names:
        raise click.UsageError("--questions, --corpus och --index gäller bara --set eval.")
    if thresholds and len(thresholds) != len(names):
        raise click.UsageError(f"Ange en --thresholds per --set ({len(names)} set, {len(thresholds)} filer).")
    gates = []
    for path in thresholds:  # before any work: a misspelt metric must not cost a whole run
        try:
            gate = json.loads(path.read_text(encoding="utf-8"))
            validate_thresholds(gate)
        except ValueError as exc:
            raise click.ClickException(f"{path}: {exc}") from exc
        gates.append(gate)
    settings = _settings(corpus_dirs=tuple(corpus_dirs), index_dir=index_dir)
    embedder = None
    failed = False
    for i, name in enumerate(names):
        try:
            evalset = evalsets.prepare(name, settings.evalsets_path, limit, all_questions, questions)
        except evalsets.EvalSetError as exc:
            raise click.ClickException(str(exc)) from exc
        assistant = Assistant(evalset.settings_for(settings), embedder)
        t = time.perf_counter()
        _run_index(assistant)  # build or update: eval always measures the corpus as it is now
        index_s = time.perf_counter() - t
        embedder = assistant.embedder  # one model for all sets
        t = time.perf_counter()
        report = evaluate(assistant, evalset.questions, _question_progress(name), name=name)
        report.seconds = {"indexering": index_s, "frågor": time.perf_counter() - t}
        failures = check_thresholds(report, gates[i]) if gates else []
        failed = failed or bool(failures)
        if as_json:
            data = {"set": name, **report.to_json(), "threshold_failures": failures}
            if not per_question:
                data.pop("per_question")
            click.echo(json.dumps(data, ensure_ascii=False))
        else:
            click.echo(f"== {name}: {evalset.description} ==")
            for line in report.lines():
                click.echo(line)
            if per_question:
                for row in report.per_question:
                    click.echo(json.dumps(row, ensure_ascii=False))
            click.echo("")
        for failure in failures:
            click.echo(f"Klarar inte tröskeln ({name}): {failure}", err=True)
    if failed:
        sys.exit(1)


def _question_progress(name: str):
    update = _progress_bar()
    return lambda done, total: update(f"frågor ({name})", done, total)


def main() -> None:  # console-script entry point
    cli()


if __name__ == "__main__":
    main()
