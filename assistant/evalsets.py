"""External dev sets (public Swedish QA data in ../shared/bench) and how they are split.

The split is fixed here, once, so that training (benchmarks/train_*.py) and evaluation (`assistant eval`)
can never disagree about what was trained on:

* SQuAD-sv (machine-translated SQuAD 2.0): whole articles. Six of the 25 articles that come with
  adversarial unanswerable questions are the reported dev split (their answerable and unanswerable
  questions); three more are a validation split for model selection during training; everything else
  may be trained on.
* SweQUAD-MC: the dev file is reported and never trained on. One passage in five of the training file
  (by a hash of its passage id) is a held-out "unseen split" that is reported too.
* SweFAQ dev is reported and never trained on.

Only benchmarks, training scripts and `assistant eval --set` read the bench folder; the product never does.

Each set is materialised the same way (``prepare``): its passages become .txt files of a corpus folder and
its questions take the eval question format (see assistant.evaluation), so that `assistant eval` indexes
and asks them with exactly the product's code and settings; only the corpus and index folders differ.
Small slices of the dev sets are committed in eval/external (benchmarks/make_eval_slices.py makes them)
so that CI can gate them without ../shared.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from assistant.settings import PROJECT_ROOT, Settings

BENCH_ENV = "ASSISTANT_BENCH_DIR"

# Chosen as the six (and next three) articles with the smallest SHA-1 of their name among the 25 SQuAD-sv
# articles that have unanswerable questions; spelled out so that a changed file cannot move the split.
SQUAD_DEV_ARTICLES = frozenset({
    "Sky_(United_Kingdom)", "Rhine", "Fresno, Kalifornien", "Scottish_Parlament", "Victoria_(Australia)", "Tvinga",
})
SQUAD_VAL_ARTICLES = frozenset({"Amazonas regnskog", "Pharmacy", "Islamism"})
SWEQUAD_HOLDOUT_MODULUS = 5  # passages whose id hashes to 0 modulo this are held out of training


def bench_dir() -> Path:
    return Path(os.environ.get(BENCH_ENV) or PROJECT_ROOT.parent / "shared" / "bench")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def squad_split(article: str) -> str:
    """"dev" (reported), "val" (model selection) or "train" for a SQuAD-sv article (its ``category``)."""
    if article in SQUAD_DEV_ARTICLES:
        return "dev"
    return "val" if article in SQUAD_VAL_ARTICLES else "train"


def swequad_train_split(passage_id: str) -> str:
    """"holdout" (reported, never trained on) or "train" for a passage of swequad_mc_train.jsonl."""
    digest = int(hashlib.sha1(passage_id.encode()).hexdigest(), 16)
    return "holdout" if digest % SWEQUAD_HOLDOUT_MODULUS == 0 else "train"


# --- the sets `assistant eval --set` measures ----------------------------------------------------

class EvalSetError(Exception):
    """A set that cannot be prepared; the message (Swedish) says why and what to do."""


SETS: dict[str, str] = {  # name -> what it is (Swedish, shown in the report and in --help)
    "eval": "projektets frågeset över den medföljande korpusen",
    "swequad-dev": "SweQUAD-MC dev (126 frågor) över alla SweQUAD-MC-passager (dev + träning)",
    "swequad-holdout": "SweQUAD-MC:s utelämnade träningspassager (frågorna) över alla SweQUAD-MC-passager",
    "squad-dev": "SQuAD-sv dev-artiklar: besvarbara och obesvarbara frågor över artiklarnas stycken",
    "swefaq-dev": "SweFAQ dev: svaren som dokument, frågorna ska hitta sitt svar",
    "swequad-dev-slice": "incheckat urval av SweQUAD-MC dev (eval/external)",
    "squad-dev-slice": "incheckat urval av två SQuAD-sv dev-artiklar (eval/external)",
    "swefaq-dev-slice": "incheckat urval av SweFAQ dev (eval/external)",
}
SLICES_DIR = PROJECT_ROOT / "eval" / "external"
DEFAULT_LIMITS = {"squad-dev": 150}  # answerable and unanswerable questions each, as in issue 10's table
SAMPLE_SEED = 10
# Sets over the same passages share one work folder: the ~500 SweQUAD-MC passages are indexed once.
WORK_FOLDERS = {"swequad-dev": "swequad-mc", "swequad-holdout": "swequad-mc"}


@dataclass
class Collection:
    """Passages to index (file name -> text) and questions over them in the eval question format."""

    passages: dict[str, str]
    questions: list[dict]


@dataclass(frozen=True)
class EvalSet:
    name: str
    description: str
    questions: list[dict]
    corpus_dir: Path | None = None  # None: the product's own corpus and index (the "eval" set)
    index_dir: Path | None = None

    def settings_for(self, settings: Settings) -> Settings:
        """The product's settings, with only the corpus and index folders swapped for the set's."""
        if self.corpus_dir is None:
            return settings
        return settings.with_(corpus_dirs=(self.corpus_dir,), index_dir=self.index_dir)


def passage_text(record: dict) -> str:
    return record["answer"].replace("\r\n", "\n")


def passages_by_text(records: Iterable[dict], key: str | None = None) -> dict[str, str]:
    """Each unique passage text -> its file name: ``<record[key]>.txt``, else p0000.txt by first appearance."""
    files: dict[str, str] = {}
    for r in records:
        text = passage_text(r)
        if text not in files:
            files[text] = f"{r[key] if key else f'p{len(files):04d}'}.txt"
    return files


def span_question(record: dict, source: str) -> dict:
    """An answerable question whose key fact is the annotated span: the relevant chunk comes from the
    passage's file and contains the span (whitespace-normalised)."""
    return {"id": record["id"], "question": record["question"], "category": record.get("category", ""),
            "answerable": True, "gold": [{"source": source, "contains": record["short_answer"]}],
            "key_facts": [record["short_answer"]]}


def unanswerable_question(record: dict) -> dict:
    return {"id": record["id"], "question": record["question"], "category": record.get("category", ""),
            "answerable": False, "gold": [], "key_facts": []}


def span_collection(question_records: list[dict], passage_records: list[dict] | None = None) -> Collection:
    """Passages (named by passage_id) and span questions: SweQUAD-MC and SQuAD-sv."""
    files = passages_by_text(passage_records or question_records, "passage_id")
    return Collection({name: text for text, name in files.items()},
                      [span_question(r, files[passage_text(r)]) for r in question_records])


def swequad_dev(bench: Path) -> Collection:
    dev, train = _read(bench, "swequad_mc_dev.jsonl"), _read(bench, "swequad_mc_train.jsonl")
    return span_collection(dev, dev + train)


def swequad_holdout(bench: Path) -> Collection:
    dev, train = _read(bench, "swequad_mc_dev.jsonl"), _read(bench, "swequad_mc_train.jsonl")
    held = [r for r in train if swequad_train_split(r["passage_id"]) == "holdout"]
    return span_collection(held, dev + train)


def squad_dev(bench: Path) -> Collection:
    """The dev articles' paragraphs (both files, de-duplicated), answerable then unanswerable questions."""
    answerable = [r for r in _read(bench, "squad_v2_sv_dev.jsonl") if squad_split(r["category"]) == "dev"]
    unanswerable = [r for r in _read(bench, "squad_v2_sv_dev_unanswerable.jsonl")
                    if squad_split(r["category"]) == "dev"]
    files = passages_by_text(answerable, "passage_id")
    for r in unanswerable:  # a paragraph with only unanswerable questions: named by its text
        files.setdefault(passage_text(r), f"squadsv-dev-u{hashlib.sha1(passage_text(r).encode()).hexdigest()[:10]}.txt")
    questions = [span_question(r, files[passage_text(r)]) for r in answerable]
    questions += [unanswerable_question(r) for r in unanswerable]
    return Collection({name: text for text, name in files.items()}, questions)


def swefaq_dev(bench: Path) -> Collection:
    """Answers as documents (p0000.txt … by first appearance); the relevant file is the question's answer."""
    records = _read(bench, "swefaq_dev.jsonl")
    files = passages_by_text(records)
    questions = [{"id": r["id"], "question": r["question"], "category": r.get("category", ""),
                  "answerable": True, "gold": [{"source": files[passage_text(r)]}], "key_facts": []}
                 for r in records]
    return Collection({name: text for text, name in files.items()}, questions)


BENCH_SETS: dict[str, Callable[[Path], Collection]] = {
    "swequad-dev": swequad_dev, "swequad-holdout": swequad_holdout, "squad-dev": squad_dev,
    "swefaq-dev": swefaq_dev,
}


def read_slice(name: str, root: Path = SLICES_DIR) -> Collection:
    """A committed slice: <root>/<name>/corpus/*.txt and questions.jsonl."""
    folder = root / name
    if not (folder / "questions.jsonl").is_file():
        raise EvalSetError(f"Urvalet {name} saknas: {folder} (skapa det med benchmarks/make_eval_slices.py).")
    passages = {p.name: p.read_text(encoding="utf-8") for p in sorted((folder / "corpus").glob("*.txt"))}
    return Collection(passages, read_jsonl(folder / "questions.jsonl"))


def write_corpus(passages: dict[str, str], folder: Path) -> Path:
    """Write the passages as .txt files (unchanged files are left alone, so the index stays incremental)
    and remove .txt files of an earlier version of the set."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in passages.items():
        path = folder / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    for stale in set(p.name for p in folder.glob("*.txt")) - set(passages):
        (folder / stale).unlink()
    return folder


def sample(questions: list[dict], limit: int | None, seed: int = SAMPLE_SEED) -> list[dict]:
    """At most ``limit`` answerable and ``limit`` unanswerable questions: a seeded sample, in file order."""
    keep: list[int] = []
    for answerable in (True, False):
        group = [i for i, q in enumerate(questions) if bool(q.get("answerable", True)) == answerable]
        if limit is not None and len(group) > limit:
            group = random.Random(seed).sample(group, limit)
        keep += group
    return [questions[i] for i in sorted(keep)]


def prepare(name: str, work_root: Path, limit: int | None = None, all_questions: bool = False,
            questions_file: Path | None = None) -> EvalSet:
    """The set ready to measure: external sets written to <work_root>/<folder>/corpus with the index beside
    it in <work_root>/<folder>/index (both reused between runs; the folder is the set's name, or the name of
    the passages it shares with another set); "eval" reads the project's question file.

    ``limit`` caps answerable and unanswerable questions each (default: DEFAULT_LIMITS); ``all_questions``
    lifts the default cap."""
    from assistant.evaluation import load_questions

    if name not in SETS:
        raise EvalSetError(f"Okänt frågeset: {name} (finns: {', '.join(SETS)}).")
    if limit is None and not all_questions:
        limit = DEFAULT_LIMITS.get(name)
    if name == "eval":
        path = questions_file or PROJECT_ROOT / "eval" / "questions.jsonl"
        if not path.is_file():
            raise EvalSetError(f"Frågefilen finns inte: {path}")
        return EvalSet(name, SETS[name], sample(load_questions(path), limit))
    if name in BENCH_SETS:
        collection = BENCH_SETS[name](require_bench())
    else:
        collection = read_slice(name)
    work = work_root / WORK_FOLDERS.get(name, name)
    corpus = write_corpus(collection.passages, work / "corpus")
    return EvalSet(name, SETS[name], sample(collection.questions, limit), corpus, work / "index")


def require_bench() -> Path:
    bench = bench_dir()
    if not bench.is_dir():
        raise EvalSetError(
            f"Testdata saknas: {bench} finns inte. De externa frågeseten läses från ../shared/bench "
            f"(SweQUAD-MC, SQuAD-sv, SweFAQ); ange en annan mapp med {BENCH_ENV}, eller kör de incheckade "
            f"urvalen ({', '.join(n for n in SETS if n.endswith('-slice'))})."
        )
    return bench


def _read(bench: Path, file: str) -> list[dict]:
    path = bench / file
    if not path.is_file():
        raise EvalSetError(f"Testdata saknas: {path} finns inte (ange mappen med {BENCH_ENV}).")
    return read_jsonl(path)
