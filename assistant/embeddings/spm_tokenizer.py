"""The e5 tokenizer as a SentencePiece model: the same token ids as ``tokenizer.json``, a fifth of the cost.

Why by hand: e5 (XLM-R) tokenises with a 250 k-piece Unigram model. ``tokenizers`` builds a trie of
hash maps for it: ~280 MB and ~1 s per load, with the GIL held, and the embedder and the relevance model
each loaded their own copy (measured: 560 MB of a 1.1 GB serving process). SentencePiece, which XLM-R's
tokenizer came from, runs the same model from a double array: ~55 MB, ~0.6 s, and encodes 7× faster.
So the export writes ``tokenizer.model`` beside ``tokenizer.json`` (pieces, scores and the precompiled
normaliser copied over), keeps it only if it gives the same ids as ``tokenizers`` on a fixed sample, and
every model of a process whose tokenizer has the same bytes shares one loaded copy (:func:`shared`).

Same ids, measured: 14 188 texts (the shipped corpus, SQuAD-sv, SweQUAD-MC, SweFAQ), raw and
whitespace-normalised, 0 differences in natural language; the only differences are ties between two
splits of equal score in runs of a repeated letter inside hex ids ("ccc" → "c"+"cc" or "cc"+"c").
Anything that is not this kind of tokenizer (BPE, WordPiece, other normalisers) keeps ``tokenizers``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FILE = "tokenizer.model"
RECORD = "tokenizer.model.json"  # the tokenizer.json it was made from, and the check it passed
FORMAT = 1
log = logging.getLogger(__name__)

# Checked at conversion, beside the calibration texts the export uses: Swedish with compounds, numbers,
# dates, paragraphs signs, quotes, odd whitespace, other scripts and characters the normaliser rewrites.
SAMPLE = (
    "Får kommunen reservera en upphandling för arbetsintegrerande sociala företag enligt 4 kap. 18 § LOU?",
    "Direktupphandlingsgränsen är 700 000 kronor (2022-02-01–2024-01-31); därefter 19 procent av tröskelvärdet.",
    "  Idéburet offentligt partnerskap (IOP)\n\n– processen steg för steg\tÅsbacka kommun  ",
    "Hälso- och sjukvårdsnämnden, social- och arbetsmarknadsförvaltningen samt kultur-/fritidsnämnden.",
    "”Citat” «guillemets» 'enkla' \"raka\" … ½ ﬁ ① Ⅻ ＡＢＣ ｶﾀｶﾅ",
    "Ζητήματα, вопросы, 問題, مسائل, 문제 — 😀 e-post: info@skr.se, https://skr.se/a/b?c=d.",
    "query: vad är LOV?", "passage: ", "", " ", "\n", "<s>a</s> <pad> <mask>b <unk>",
)


@dataclass
class Encoding:
    """What the engine reads of a ``tokenizers.Encoding``."""

    ids: list[int]
    type_ids: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.type_ids:
            self.type_ids = [0] * len(self.ids)


class SpmTokenizer:
    """The subset of ``tokenizers.Tokenizer`` the engine uses, for single texts (pairs: use ``tokenizers``).

    The SentencePiece processor is shared and stateless; truncation is this wrapper's own state."""

    def __init__(self, processor: Any, bos: int, eos: int, max_length: int | None = None,
                 added: dict[str, int] | None = None):
        self.processor, self.bos, self.eos, self.max_length = processor, bos, eos, max_length
        # A literal "<s>" or "<mask>" in a text is one token in tokenizers, and the text around it is
        # tokenised as separate words: done the same way here (hostile documents contain such strings).
        self.added = dict(added or {})
        literals = sorted(self.added, key=len, reverse=True)
        self._added_re = re.compile("|".join(map(re.escape, literals))) if literals else None

    def enable_truncation(self, max_length: int) -> None:
        self.max_length = max_length

    def no_truncation(self) -> None:
        self.max_length = None

    def no_padding(self) -> None:
        """Never pads (the engine pads per batch)."""

    def _wrap(self, ids: list[int], add_special_tokens: bool) -> Encoding:
        room = None if self.max_length is None else self.max_length - (2 if add_special_tokens else 0)
        if room is not None:
            ids = ids[: max(room, 0)]
        return Encoding([self.bos, *ids, self.eos] if add_special_tokens else list(ids))

    def encode(self, text: str, add_special_tokens: bool = True) -> Encoding:
        return self.encode_batch([text], add_special_tokens)[0]

    def encode_batch(self, texts: Sequence[str], add_special_tokens: bool = True) -> list[Encoding]:
        if any(not isinstance(t, str) for t in texts):
            raise TypeError("SpmTokenizer encodes single texts; pairs go through tokenizers")
        texts = list(texts)
        ids = self.processor.encode(texts)
        if self._added_re is not None:
            for i, text in enumerate(texts):
                if self._added_re.search(text):
                    ids[i] = self._with_added(text)
        return [self._wrap(row, add_special_tokens) for row in ids]

    def _with_added(self, text: str) -> list[int]:
        out: list[int] = []
        start = 0
        for match in self._added_re.finditer(text):  # type: ignore[union-attr]
            out += self.processor.encode(text[start : match.start()])
            out.append(self.added[match.group()])
            start = match.end()
        return out + self.processor.encode(text[start:])


# --- conversion ------------------------------------------------------------------------------------


def _specials(data: dict) -> tuple[int, int] | None:
    """(bos, eos) when the single-text template is ``<s> A </s>`` (XLM-R), else None."""
    post = data.get("post_processor") or {}
    single = post.get("single") or []
    shape = [next(iter(part)) for part in single]
    if post.get("type") != "TemplateProcessing" or shape != ["SpecialToken", "Sequence", "SpecialToken"]:
        return None
    tokens = post.get("special_tokens", {})
    try:
        return tokens[single[0]["SpecialToken"]["id"]]["ids"][0], tokens[single[2]["SpecialToken"]["id"]]["ids"][0]
    except (KeyError, IndexError):
        return None


def _charsmap(normalizer: dict | None) -> bytes | None:
    """The precompiled normaliser of a tokenizer.json that has only that (and collapsing of spaces, which
    SentencePiece does as well), else None."""
    if not normalizer:
        return None
    parts = normalizer.get("normalizers", [normalizer]) if normalizer.get("type") == "Sequence" else [normalizer]
    maps = [p["precompiled_charsmap"] for p in parts if p.get("type") == "Precompiled"]
    others = [p for p in parts if p.get("type") != "Precompiled"]
    collapse = {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}
    if len(maps) != 1 or any(p != collapse for p in others):
        return None
    return base64.b64decode(maps[0])


def convert(data: dict) -> bytes | None:
    """A serialized SentencePiece model with the pieces, scores and normaliser of a Unigram tokenizer.json,
    or None when the tokenizer is of another kind."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    model = data.get("model") or {}
    pre = data.get("pre_tokenizer") or {}
    if pre.get("type") == "Sequence" and [p.get("type") for p in pre.get("pretokenizers", [])] == [
            "WhitespaceSplit", "Metaspace"]:
        pre = pre["pretokenizers"][1]  # transformers' own pipeline: split on whitespace, then "▁" per word
    charsmap = _charsmap(data.get("normalizer"))
    specials = _specials(data)
    if (model.get("type") != "Unigram" or model.get("byte_fallback") or charsmap is None or specials is None
            or pre.get("type") != "Metaspace" or pre.get("replacement") != "▁"):
        return None
    proto = pb.ModelProto()
    trainer = proto.trainer_spec
    trainer.model_type = pb.TrainerSpec.UNIGRAM
    trainer.vocab_size = len(model["vocab"])
    trainer.unk_id = int(model.get("unk_id", 0))
    trainer.bos_id = trainer.eos_id = trainer.pad_id = -1  # SpmTokenizer adds <s> and </s> itself
    norm = proto.normalizer_spec
    norm.name = "tokenizer.json"
    norm.precompiled_charsmap = charsmap
    norm.add_dummy_prefix = norm.remove_extra_whitespaces = norm.escape_whitespaces = True
    added = {t["content"]: t for t in data.get("added_tokens", [])}
    piece_type = pb.ModelProto.SentencePiece
    for i, (piece, score) in enumerate(model["vocab"]):
        entry = proto.pieces.add()
        entry.piece, entry.score = piece, score
        if i == trainer.unk_id:
            entry.type = piece_type.UNKNOWN
        elif piece in added:
            entry.type = piece_type.CONTROL  # never inside a text's pieces: SpmTokenizer splits them out
        else:
            entry.type = piece_type.NORMAL
    return proto.SerializeToString()


def _added(data: dict) -> dict[str, int]:
    return {t["content"]: int(t["id"]) for t in data.get("added_tokens", [])}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _same_ids(source: Path, processor: Any, bos: int, eos: int, texts: Sequence[str]) -> bool:
    from tokenizers import Tokenizer

    reference = Tokenizer.from_file(str(source))
    reference.no_truncation()
    reference.no_padding()
    ours = SpmTokenizer(processor, bos, eos, added=_added(json.loads(source.read_bytes())))
    return all(a.ids == b.ids for a, b in zip(reference.encode_batch(list(texts)), ours.encode_batch(list(texts)),
                                               strict=True))


def ensure(folder: Path, extra_texts: Sequence[str] = ()) -> Path | None:
    """``folder/tokenizer.model`` made from ``folder/tokenizer.json`` (once; checked against it), or None
    when it cannot be made or would give other ids: the caller then uses ``tokenizers``."""
    source, target, record = folder / "tokenizer.json", folder / FILE, folder / RECORD
    try:
        stat = source.stat()
        seen = {"source_size": stat.st_size, "source_mtime_ns": stat.st_mtime_ns}
        recorded = json.loads(record.read_text(encoding="utf-8")) if record.is_file() else {}
        if recorded.get("format") == FORMAT:
            unchanged = all(recorded.get(k) == v for k, v in seen.items())  # no reading at every start
            if not unchanged and recorded.get("source_sha256") == _sha256(source.read_bytes()):
                unchanged = True  # touched or copied, same content: remember its size and time
                _write_atomic(record, json.dumps({**recorded, **seen}).encode())
            if unchanged:
                return target if recorded.get("same_ids") and target.is_file() else None
        raw = source.read_bytes()
        data = json.loads(raw)
        model = convert(data)
        same = False
        if model is not None:
            import sentencepiece

            processor = sentencepiece.SentencePieceProcessor(model_proto=model)
            same = _same_ids(source, processor, *(_specials(data) or (0, 2)), [*SAMPLE, *extra_texts])
            if same:
                _write_atomic(target, model)
            else:
                log.warning("SentencePiece-kopian av %s ger andra token-id:n; tokenizers används", source)
        _write_atomic(record, json.dumps({"format": FORMAT, "source_sha256": _sha256(raw), **seen, "same_ids": same,
                                          "bos_eos": list(_specials(data) or ()), "added": _added(data)}).encode())
        return target if same else None
    except (OSError, ValueError, ImportError) as exc:  # read-only folder, odd file: tokenizers still works
        log.debug("no SentencePiece tokenizer for %s: %s", folder, exc)
        return None


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    tmp.write_bytes(data)
    tmp.replace(path)


_SHARED: dict[str, Future] = {}  # the tokenizer.json it was made from (format, SHA-256) → the processor
_SHARED_LOCK = threading.Lock()


def _key(folder: Path) -> str:
    """The conversion is deterministic: the same tokenizer.json makes the same model, so the recorded
    checksum of the source names it, with no hashing of the model at every start."""
    record = json.loads((folder / RECORD).read_text(encoding="utf-8"))
    return f"{record['format']}:{record['source_sha256']}"


def _processor(folder: Path) -> Any:
    """The process-wide processor for ``folder/tokenizer.model``: loaded once per distinct tokenizer,
    whoever asks first (two models opening at once, or a prefetch and a model) loads it, the rest wait."""
    key = _key(folder)
    with _SHARED_LOCK:
        future = _SHARED.get(key)
        owner = future is None
        if owner:
            future = _SHARED[key] = Future()
    if owner:
        try:
            import sentencepiece

            data = (folder / FILE).read_bytes()
            future.set_result(sentencepiece.SentencePieceProcessor(model_proto=data))  # no GIL held while loading
        except BaseException as exc:
            with _SHARED_LOCK:
                _SHARED.pop(key, None)
            future.set_exception(exc)
    return future.result()


def prefetch(folder: Path) -> None:
    """Start loading ``folder``'s tokenizer in the background when it is already made. SentencePiece
    loads without the GIL, so a cold ``assistant ask`` imports Chroma and bm25s on one core while the
    tokenizer loads on the other; the model that needs it then finds it loaded."""
    folder = Path(folder)
    if (folder / FILE).is_file() and (folder / RECORD).is_file():
        # not a daemon: a command that ends before the load does (`assistant index` with nothing to do takes
        # 0.1 s) waits for it at exit; Python stops a daemon thread with pthread_exit, and unwinding through
        # SentencePiece's C++ then aborts ("terminate called without an active exception", exit 134)
        threading.Thread(target=_prefetch, args=(folder,), name="tokenizer-prefetch").start()


def _prefetch(folder: Path) -> None:
    try:
        _processor(folder)
    except Exception as exc:  # the model's own load reports it
        log.debug("prefetch of %s failed: %s", folder, exc)


def shared(folder: Path, max_length: int | None) -> SpmTokenizer:
    """A wrapper over the process-wide processor for these model bytes (shared by every model whose
    tokenizer is the same), truncating at ``max_length`` tokens (None: never)."""
    folder = Path(folder)
    record = json.loads((folder / RECORD).read_text(encoding="utf-8"))
    bos, eos = record["bos_eos"]
    return SpmTokenizer(_processor(folder), int(bos), int(eos), max_length, record["added"])
