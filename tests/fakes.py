"""The fast tier's stand-in for the relevance model (the embedder's is assistant.embeddings.fake).

Only tests use it, so it lives here: the application has no way to select it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from assistant.answer import content_stems


class WordOverlapScorer:
    """A ``policy.SentenceScorer``: P(answers) = (share of the question's content stems in the sentence)².

    Content stems as ``answer.content_stems``: Snowball stems of the words that are not stop words. A
    sentence that shares no content word with the question scores 0, so a question about something the
    corpus never mentions is refused; the more of the question a sentence covers, the likelier it answers.
    Deterministic, and ``calls`` records what it was asked, for tests of the pipeline's wiring."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    def score(self, question: str, candidates: Sequence) -> np.ndarray:
        self.calls.append((question, [c.text for c in candidates]))
        asked = content_stems(question)
        if not asked:
            return np.zeros(len(candidates), np.float32)
        return np.array([(len(asked & content_stems(c.text)) / len(asked)) ** 2 for c in candidates], np.float32)

