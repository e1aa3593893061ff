"""Language identification of whole batches: py3langid's model, scored with numpy.

The model is langid.py's (Lui & Baldwin) as retrained and shipped inside the py3langid wheel:
a byte n-gram DFA feeding a naive Bayes classifier, with probabilities calibrated across text
lengths. py3langid walks the DFA in a Python loop, one byte at a time, one text at a time;
this module walks it for a whole batch at once (one numpy step per byte position, over every
text still that long) and scores the batch with one sparse matrix product: the same labels
and probabilities (tests/test_signals.py compares them), ~7x faster (measured on 5,000
answers of 600 characters at most: 39,600 texts per CPU-second against 5,600). lingua, the
other identifier that ships its models, ran ~200 texts/s here on all languages and ~650
on 29 of them in its low-accuracy mode, and was no more accurate on the labelled
OpenAssistant answers (97.5% against 97.4%).

Only languages with a two-letter ISO 639-1 code are kept (the model also has dialects and
"zxx", no linguistic content, which mostly catch short English lists); a text gets no
language when it has too few letters or the best probability is below a threshold.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import sparse

# Bytes of each text looked at: enough for a confident call, and it bounds the cost.
MAX_CHARS = 600
_CHUNK = 2048  # texts walked together (memory: one feature hit per byte)
_FENCED_CODE = re.compile(r"```.*?(?:```|\Z)", re.S)
_NOT_LETTERS = re.compile(r"[\W\d_]+")


@dataclass(frozen=True)
class _Model:
    nextmove: np.ndarray  # flattened 256-wide transition rows
    row: np.ndarray  # state -> first index of its row in nextmove
    output: np.ndarray  # state -> feature index, -1 for none
    ptc: np.ndarray  # features x languages, log-probabilities
    pc: np.ndarray  # language priors
    fold: np.ndarray  # column -> label: a language can have several columns (scripts)
    labels: list[str]


@lru_cache(maxsize=1)
def _model() -> _Model:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    keep = [i for i, code in enumerate(identifier.nb_classes) if len(code) == 2]
    labels = sorted({identifier.nb_classes[i] for i in keep})
    fold = np.zeros((len(keep), len(labels)), dtype=np.float32)
    for column, i in enumerate(keep):
        fold[column, labels.index(identifier.nb_classes[i])] = 1.0
    return _Model(
        nextmove=np.asarray(identifier.tk_nextmove).astype(np.int64),
        row=np.asarray(identifier.tk_row, dtype=np.int64) << 8,
        output=np.asarray(identifier.tk_output, dtype=np.int64),
        ptc=np.ascontiguousarray(identifier.nb_ptc[:, keep], dtype=np.float32),
        pc=np.asarray(identifier.nb_pc[keep], dtype=np.float32),
        fold=fold,
        labels=labels,
    )


def languages() -> list[str]:
    """The codes `identify` can return."""
    return list(_model().labels)


def prepare(text: str) -> str:
    """What is identified: the text without fenced code, at most MAX_CHARS characters."""
    if "```" in text:
        text = _FENCED_CODE.sub(" ", text)
    return text[:MAX_CHARS]


def probabilities(texts: list[str]) -> tuple[list[str], np.ndarray]:
    """(labels, probabilities[len(texts), len(labels)]) exactly as py3langid's normalised
    classifier computes them, for texts as given (call `prepare` first)."""
    model = _model()
    encoded = [_encode(t) for t in texts]
    result = np.zeros((len(texts), len(model.labels)), dtype=np.float32)
    for start in range(0, len(texts), _CHUNK):
        chunk = encoded[start : start + _CHUNK]
        result[start : start + len(chunk)] = _score(model, chunk)
    return model.labels, result


def identify(texts: list[str], min_letters: int, min_confidence: float) -> list[str | None]:
    """ISO 639-1 code of each text, or None when it has fewer than `min_letters` letters
    (after dropping fenced code) or no language reaches `min_confidence`."""
    prepared = [prepare(t) for t in texts]
    wanted = [i for i, t in enumerate(prepared) if len(_NOT_LETTERS.sub("", t)) >= min_letters]
    codes: list[str | None] = [None] * len(texts)
    if not wanted:
        return codes
    labels, probs = probabilities([prepared[i] for i in wanted])
    best = probs.argmax(axis=1)
    confident = probs[np.arange(len(wanted)), best] >= min_confidence
    for i, b, ok in zip(wanted, best, confident):
        if ok:
            codes[i] = labels[b]
    return codes


def _encode(text: str) -> bytes:
    # py3langid's own preparation: all-capitals text is lowered, NFC, UTF-8.
    if text.isupper():
        text = text.lower()
    return unicodedata.normalize("NFC", text).encode("utf8", errors="surrogatepass")


def _score(model: _Model, texts: list[bytes]) -> np.ndarray:
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    order = np.argsort(-lengths, kind="stable")  # longest first: the texts still
    sorted_lengths = lengths[order]  # walking are always a prefix
    width = int(sorted_lengths[0]) if len(texts) else 0
    grid = np.zeros((len(texts), max(width, 1)), dtype=np.int64)
    for slot, index in enumerate(order):
        grid[slot, : lengths[index]] = np.frombuffer(texts[index], dtype=np.uint8)
    state = np.zeros(len(texts), dtype=np.int64)
    hit_rows, hit_features = [], []
    active = len(texts)
    for position in range(width):
        while active and sorted_lengths[active - 1] <= position:
            active -= 1
        current = model.nextmove[model.row[state[:active]] + grid[:active, position]]
        state[:active] = current
        features = model.output[current]
        hits = np.flatnonzero(features >= 0)
        hit_rows.append(hits)
        hit_features.append(features[hits])
    rows = np.concatenate(hit_rows) if hit_rows else np.zeros(0, dtype=np.int64)
    counts = sparse.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, np.concatenate(hit_features) if hit_features else rows)),
        shape=(len(texts), model.ptc.shape[0]),
    )
    counts.sum_duplicates()
    counts.data = np.log1p(counts.data)
    scores = np.asarray(counts @ model.ptc) + model.pc
    # py3langid: a featureless text scores 0 everywhere (a uniform answer, i.e. unsure);
    # otherwise softmax at temperature sqrt(bytes), which keeps it calibrated across lengths.
    empty = np.diff(counts.indptr) == 0
    scores[empty] = 0.0
    scores *= (1.0 / np.sqrt(np.maximum(sorted_lengths, 1)))[:, None].astype(np.float32)
    scores = np.exp(scores - scores.max(axis=1, keepdims=True))
    scores /= scores.sum(axis=1, keepdims=True)
    unsorted = np.empty_like(scores)
    unsorted[order] = scores
    return unsorted @ model.fold
