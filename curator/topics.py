"""Readable topic labels for the clusters of an embedding map, Atlas-style ("python · list · sort").

Pure functions: no I/O, no SQL, no printing.

Terms are ranked by class-based TF-IDF (c-TF-IDF, as in BERTopic): every cluster is one class;
a term's frequency in a cluster, normalized by the cluster's word count, is weighted by
log(1 + average words per cluster / the term's frequency across all clusters). Terms frequent
in one cluster and rare elsewhere therefore win over terms that are frequent everywhere.

Words (``words``): lowercase runs of letters and digits that start with a letter (so no pure
numbers), at least two characters long; "c++", "c#" and "python3" stay whole. HTML-like tags
("<br />" in scraped reviews) are skipped, possessives keep their stem ("movie's" -> "movie"),
and contractions ("don't", "you're") are dropped like the stop words they are. Stop words
are scikit-learn's English list plus ``CHAT_STOP_WORDS``. Unigrams only: bigrams double the
vectorizing time and rarely beat three distinctive unigrams in a label.

Scale: one sparse CountVectorizer pass (vocabulary capped at ``max_features``), per-cluster
counts by a sparse product with a one-hot cluster matrix; the doc-term matrix is never made
dense. The noise cluster (-1) takes part in the weighting (its common words push down terms
that are common everywhere) but gets no terms of its own unless it is the only cluster.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer
from sklearn.preprocessing import normalize

NOISE = -1
NOISE_LABEL = "noise"
SEPARATOR = " · "

# Words that say how a prompt asks, not what it is about: instruction phrasing ("Write ... the
# following ...", "Answer the question given ...", "Create ...", "Explain ...") and chat filler
# that scikit-learn's list lacks ("does", "just", "like"). Left in, they top the label of any
# large cluster of plain requests or of conversational text.
CHAT_STOP_WORDS = frozenset(
    {
        "please",
        "following",
        "given",
        "write",
        "answer",
        "question",
        "provide",
        "use",
        "using",
        "create",
        "explain",
        "does",
        "just",
        "like",
    }
)
STOP_WORDS = ENGLISH_STOP_WORDS | CHAT_STOP_WORDS

# Labels take this many spare terms per cluster, to extend a label that repeats an earlier one.
SPARE_TERMS = 5

_LETTER = r"[^\W\d_]"
_ALNUM = r"[^\W_]"
# One pass finds both tags (no groups captured, so they yield empty words) and words: a word
# starts with a letter not preceded by a letter or digit, may end in "++" or "#" (c++, c#), and
# may carry an apostrophe tail, captured so that "'s" can be kept and "n't", "'re" dropped.
_TOKEN = re.compile(
    rf"</?[a-z][a-z0-9]*(?:\s[^<>]*)?/?>"
    rf"|(?<!{_ALNUM})({_LETTER}{_ALNUM}*(?:\+\+|#)?)(?:['’]({_LETTER}+))?"
)
_KEPT_TAILS = ("", "s")


def words(text: str) -> list[str]:
    """The countable words of one text, in order (the analyzer of the vectorizer)."""
    return [
        word
        for word, tail in _TOKEN.findall(text.lower())
        if len(word) > 1 and tail in _KEPT_TAILS and word not in STOP_WORDS
    ]


def cluster_terms(
    texts: Sequence[str], clusters: np.ndarray, *, top_n: int = 3, max_features: int = 50_000, min_df: int = 2
) -> dict[int, list[str]]:
    """Top c-TF-IDF terms of every cluster id in `clusters` (same length as texts). The noise
    cluster (-1) gets no terms (it is not a topic) unless it is the only cluster.

    Terms are best first; equal scores go alphabetically. A term must occur in at least
    `min_df` texts (fewer when there are fewer texts); only the `max_features` most frequent
    terms are considered. A cluster without such terms gets an empty list.
    """
    clusters = np.asarray(clusters)
    if len(clusters) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(clusters)} cluster ids")
    if top_n < 1 or max_features < 1 or min_df < 1:
        raise ValueError("top_n, max_features and min_df must be at least 1")
    ids, rows = np.unique(clusters, return_inverse=True)
    ranked: dict[int, list[str]] = {int(i): [] for i in ids}
    counted = _doc_terms(texts, max_features=max_features, min_df=min_df)
    if counted is not None:
        doc_terms, vocabulary = counted
        scores = _c_tf_idf(_cluster_counts(doc_terms, rows.ravel(), len(ids)))
        for row, cluster in enumerate(ranked):
            ranked[cluster] = [str(vocabulary[j]) for j in _top_columns(scores, row, top_n)]
    if len(ids) > 1 and NOISE in ranked:
        ranked[NOISE] = []
    return ranked


def cluster_labels(texts: Sequence[str], clusters: np.ndarray, *, top_n: int = 3, **kwargs) -> dict[int, str]:
    """{cluster id: "term · term · term"}; -1 -> "noise"; a cluster whose texts have no usable
    terms (e.g. "Who are you?": stop words only) is named by its most common text, quoted and
    cut to QUOTE_CHARS, or f"cluster {id}" when it has no text.

    Labels are distinct where the terms allow: a label equal to one of a smaller cluster id
    takes its next terms until it differs. `kwargs` go to ``cluster_terms``.
    """
    ranked = cluster_terms(texts, clusters, top_n=top_n + SPARE_TERMS, **kwargs)
    labels: dict[int, str] = {}
    for cluster, terms in ranked.items():
        if cluster == NOISE:
            labels[cluster] = NOISE_LABEL
        elif not terms:
            labels[cluster] = _quoted_commonest(texts, clusters, cluster)
        else:
            labels[cluster] = _distinct_label(terms, top_n, taken=set(labels.values()))
    return labels


QUOTE_CHARS = 40


def _quoted_commonest(texts: Sequence[str], clusters: np.ndarray, cluster: int) -> str:
    members = [" ".join(texts[i].split()) for i in np.flatnonzero(np.asarray(clusters) == cluster)]
    members = [m for m in members if m]
    if not members:
        return f"cluster {cluster}"
    text = Counter(members).most_common(1)[0][0]
    return f"“{text[: QUOTE_CHARS - 1] + '…' if len(text) > QUOTE_CHARS else text}”"


def _doc_terms(texts: Sequence[str], *, max_features: int, min_df: int) -> tuple[sp.csr_matrix, np.ndarray] | None:
    """(sparse doc-term counts, vocabulary in column order), or None when no term survives."""
    if not len(texts):
        return None
    vectorizer = CountVectorizer(
        analyzer=words, max_features=max_features, min_df=min(min_df, len(texts)), dtype=np.int32
    )
    try:
        doc_terms = vectorizer.fit_transform(texts)
    except ValueError:  # scikit-learn's way to say that no term is left (all stop words, or pruned)
        return None
    return doc_terms, vectorizer.get_feature_names_out()


def _cluster_counts(doc_terms: sp.csr_matrix, rows: np.ndarray, n_clusters: int) -> sp.csr_matrix:
    """(clusters x terms) counts: a one-hot (clusters x texts) matrix times the doc-term matrix."""
    n_texts = doc_terms.shape[0]
    one_hot = sp.csr_matrix(
        (np.ones(n_texts, dtype=np.float64), (rows, np.arange(n_texts))), shape=(n_clusters, n_texts)
    )
    return (one_hot @ doc_terms).tocsr()


def _c_tf_idf(counts: sp.csr_matrix) -> sp.csr_matrix:
    """BERTopic's c-TF-IDF: per-cluster term frequency times log(1 + avg words / term frequency)."""
    words_per_cluster = np.asarray(counts.sum(axis=1)).ravel()
    term_frequency = np.asarray(counts.sum(axis=0)).ravel()
    # Every column of the vocabulary occurs somewhere, so term_frequency has no zeros.
    idf = np.log1p(words_per_cluster.mean() / term_frequency)
    return sp.csr_matrix(normalize(counts, norm="l1").multiply(idf))


def _top_columns(scores: sp.csr_matrix, row: int, n: int) -> np.ndarray:
    """Columns of the n best scores in one row: best first, ties by column (the vocabulary is
    alphabetical, so ties go alphabetically and the result never depends on sort stability)."""
    start, end = scores.indptr[row], scores.indptr[row + 1]
    values, columns = scores.data[start:end], scores.indices[start:end]
    if len(values) > n:
        # Keep every score at least the n-th best before ordering, so ties at the cut are
        # settled by column rather than by where argpartition happened to put them.
        keep = values >= np.partition(values, -n)[-n]
        values, columns = values[keep], columns[keep]
    order = np.lexsort((columns, -values))
    return columns[order[:n]]


def _distinct_label(terms: list[str], top_n: int, *, taken: set[str]) -> str:
    """The first top_n terms joined, extended by the next terms while the label is taken."""
    size = min(top_n, len(terms))
    label = SEPARATOR.join(terms[:size])
    while label in taken and size < len(terms):
        size += 1
        label = SEPARATOR.join(terms[:size])
    return label


# --- labels written by a language model (optional: `curator map --label-model`) -------------

LLM_LABEL_EXAMPLES = 8  # member texts shown to the model per cluster
LLM_LABEL_MAX_CHARS = 48  # longer answers are cut at a word boundary


def llm_label_messages(terms: Sequence[str], examples: Sequence[str]) -> list[dict]:
    """Chat messages asking for a short topic name given a cluster's terms and member texts."""
    shown = "\n".join(f"- {' '.join(text.split())[:200]}" for text in examples[:LLM_LABEL_EXAMPLES])
    return [
        {
            "role": "system",
            "content": "You name clusters of texts. Reply with a topic name of two to five words and nothing else.",
        },
        {"role": "user", "content": f"Key terms: {', '.join(terms) or '(none)'}\nTexts:\n{shown}\n\nTopic name:"},
    ]


def clean_llm_label(answer: str | None) -> str | None:
    """The label in a model's answer: first non-empty line, without quotes, list marks or a
    "Topic name:" echo, cut to LLM_LABEL_MAX_CHARS; None when nothing usable is left."""
    for line in (answer or "").splitlines():
        line = re.sub(r"^\s*(?:[-*#\d.)]+\s*)?(?:topic(?: name)?\s*:\s*)?", "", line, flags=re.I)
        line = line.strip().strip("\"'“”‘’`*.").strip()
        if not line:
            continue
        if len(line) > LLM_LABEL_MAX_CHARS:
            line = line[:LLM_LABEL_MAX_CHARS].rsplit(" ", 1)[0] + "…"
        return line
    return None
