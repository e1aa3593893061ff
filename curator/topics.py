"""Readable topic labels for the clusters of an embedding map, Atlas-style ("movie review · sentiment").

Pure functions: no I/O, no SQL, no printing.

A label should say what most of a cluster's pairs are. Term-frequency weightings (BERTopic's
c-TF-IDF, used here before) let a passage that a few members quote many times win: the P3
review templates were labelled "conroy · beethoven · symphony", words found in 33% of the
prompts they named on average. So terms are ranked by **document frequency**: the share `p`
of the cluster's texts that contain a term, against the share `q` of all other texts that do.
The score is p * log(p / q), a term's part of the divergence of the cluster from the rest:
it wants a term most members have (coverage) and few outsiders have (contrast). A term must be
in at least `min_share` of the cluster's texts; a cluster with no such term takes its best
terms regardless (a diverse cluster of plain requests), and one with no term at all is named
by its commonest text.

Terms are words and **phrases** (two adjacent words, neither a stop word: "movie review",
"linked list"); a phrase replaces the words it contains when most of their texts have it.

Words: lowercase runs of letters and digits that start with a letter (so no pure
numbers), at least two characters long; "c++", "c#" and "python3" stay whole. HTML-like tags
("<br />" in scraped reviews) are skipped, possessives keep their stem ("movie's" -> "movie"),
and contractions ("don't", "you're") are dropped like the stop words they are. Stop words are
scikit-learn's English list plus a few chat fillers (``CHAT_STOP_WORDS``). The instruction
words of a template ("review", "positive", "question", "summarize") are not stopped: they are
what distinguishes a template family, and the contrast keeps them out of clusters where
everyone says them.

Scale: at most `max_texts` texts a cluster are read (the same ones for the same texts, chosen
by a hash of the text, whatever their order), and each cluster's `q` is the size-weighted
share over every other cluster, so labelling a million-point map reads a bounded sample.
The noise cluster (-1) counts among the others but gets no terms of its own unless it is the
only cluster.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

NOISE = -1
NOISE_LABEL = "noise"
SEPARATOR = " · "

# Chat filler that scikit-learn's list lacks: it tops the label of any cluster of
# conversational text without saying what it is about.
CHAT_STOP_WORDS = frozenset({"please", "does", "just", "like", "hi", "hello", "thanks", "thank"})
STOP_WORDS = ENGLISH_STOP_WORDS | CHAT_STOP_WORDS
# How prompts ask rather than what about. Not stopped (a template family is told by its
# instruction: "answer the following question given ..."), but a cluster alone, with nothing
# to contrast it with, is not named by them.
INSTRUCTION_WORDS = frozenset(
    {"following", "given", "write", "answer", "question", "provide", "use", "using", "create", "explain"}
)

# Labels take this many spare terms per cluster, to extend a label that repeats an earlier one.
SPARE_TERMS = 5
# A term must be in this share of a cluster's texts to name it (unless none is).
MIN_SHARE = 0.3
# A cluster no term covers that well is named by its best words among those in at least this
# share of the texts its commonest telling word is in (Code Alpaca as one cluster: "function ·
# code · python", where the commonest alone would say "write · create · given").
FALLBACK_SHARE = 0.5
# A phrase replaces a word it contains when it is in this share of the word's texts.
PHRASE_KEEPS = 0.7
# Texts read per cluster for its terms.
MAX_TEXTS = 1_000
# Of a long text, only its start and its end are read: a prompt says what it asks there, and a
# long middle is the passage it quotes (whose names would otherwise fill the labels). It also
# bounds the tokenizing, most of a label's cost.
HEAD_CHARS = 500
TAIL_CHARS = 300

_LETTER = r"[^\W\d_]"
_ALNUM = r"[^\W_]"
# One pass finds tags, numbers and words. Tags and numbers yield an empty word (they break a
# phrase, and are no term); a word starts with a letter not preceded by a letter or digit, may
# end in "++" or "#" (c++, c#), and may carry an apostrophe tail, captured so that "'s" can be
# kept and "n't", "'re" dropped.
_TOKEN = re.compile(
    rf"</?[a-z][a-z0-9]*(?:\s[^<>]*)?/?>"
    rf"|(?<!{_ALNUM})({_LETTER}{_ALNUM}*(?:\+\+|#)?)(?:['’]({_LETTER}+))?"
    rf"|[\d.,;:!?()\[\]{{}}\"]+"
)
_KEPT_TAILS = ("", "s")


def _token_stream(text: str) -> list[str | None]:
    """The words of a text in order, None where a stop word, tag, number or punctuation breaks
    the run (no phrase spans a break)."""
    out: list[str | None] = []
    for word, tail in _TOKEN.findall(text.lower()):
        keep = len(word) > 1 and tail in _KEPT_TAILS and word not in STOP_WORDS
        out.append(word if keep else None)
    return out


def terms(text: str) -> list[str]:
    """The distinct terms of one text (its start and end when it is long): its words and its
    phrases of two adjacent words."""
    if len(text) > HEAD_CHARS + TAIL_CHARS:
        text = f"{text[:HEAD_CHARS]}\n{text[-TAIL_CHARS:]}"
    stream = _token_stream(text)
    found = {word for word in stream if word}
    found.update(f"{a} {b}" for a, b in zip(stream, stream[1:]) if a and b and a != b)
    return sorted(found)


def cluster_terms(
    texts: Sequence[str],
    clusters: np.ndarray,
    *,
    top_n: int = 3,
    min_share: float = MIN_SHARE,
    max_texts: int = MAX_TEXTS,
    min_df: int = 2,
) -> dict[int, list[str]]:
    """The best terms of every cluster id in `clusters` (same length as texts), best first;
    the noise cluster (-1) gets none unless it is the only cluster.

    A term must occur in at least `min_df` texts (fewer when there are fewer texts). Equal
    scores go alphabetically. A cluster without any term gets an empty list.
    """
    clusters = np.asarray(clusters)
    if len(clusters) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(clusters)} cluster ids")
    if top_n < 1 or min_df < 1 or max_texts < 1 or not 0 <= min_share <= 1:
        raise ValueError("top_n, min_df and max_texts must be at least 1, min_share within 0..1")
    ids, rows = np.unique(clusters, return_inverse=True)
    rows = rows.ravel()
    ranked: dict[int, list[str]] = {int(i): [] for i in ids}
    read = _read_texts(texts, rows, len(ids), max_texts)
    counted = _doc_terms([texts[i] for i in read], min_df=min_df)
    if counted is not None:
        doc_terms, vocabulary = counted
        sizes = np.bincount(rows, minlength=len(ids)).astype(np.float64)
        share = _shares(doc_terms, rows[read], len(ids))
        everywhere = np.asarray(share.T @ sizes).ravel()  # texts with each term, all clusters
        phrase = np.char.find(vocabulary.astype(str), " ") >= 0
        for row, cluster in enumerate(ranked):
            if cluster == NOISE and len(ids) > 1:
                continue
            ranked[cluster] = _best_terms(share, sizes, everywhere, row, vocabulary, phrase, top_n, min_share)
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
    for cluster, found in ranked.items():
        if cluster == NOISE:
            labels[cluster] = NOISE_LABEL
        elif not found:
            labels[cluster] = _quoted_commonest(texts, clusters, cluster)
        else:
            labels[cluster] = _distinct_label(found, top_n, taken=set(labels.values()))
    return labels


QUOTE_CHARS = 40


def _quoted_commonest(texts: Sequence[str], clusters: np.ndarray, cluster: int) -> str:
    members = [" ".join(texts[i].split()) for i in np.flatnonzero(np.asarray(clusters) == cluster)]
    members = [m for m in members if m]
    if not members:
        return f"cluster {cluster}"
    text = Counter(members).most_common(1)[0][0]
    return f"“{text[: QUOTE_CHARS - 1] + '…' if len(text) > QUOTE_CHARS else text}”"


def _read_texts(texts: Sequence[str], rows: np.ndarray, n_clusters: int, max_texts: int) -> np.ndarray:
    """Indices of the texts read: all of a cluster up to max_texts, else the max_texts whose
    hashes come first (the same texts whatever their order). Sorted."""
    sizes = np.bincount(rows, minlength=n_clusters)
    if sizes.max(initial=0) <= max_texts:
        return np.arange(len(rows))
    keys = np.array([int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "big") for t in texts])
    order = np.lexsort((keys, rows))  # by cluster, then by hash
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank = np.arange(len(rows)) - np.repeat(starts, sizes)
    return np.sort(order[rank < max_texts])


def _doc_terms(texts: Sequence[str], *, min_df: int) -> tuple[sp.csr_matrix, np.ndarray] | None:
    """(sparse 0/1 doc-term matrix, vocabulary in column order), or None when no term survives."""
    if not len(texts):
        return None
    vectorizer = CountVectorizer(analyzer=terms, binary=True, min_df=min(min_df, len(texts)), dtype=np.int32)
    try:
        doc_terms = vectorizer.fit_transform(texts)
    except ValueError:  # scikit-learn's way to say that no term is left (all stop words, or pruned)
        return None
    return doc_terms, vectorizer.get_feature_names_out()


def _shares(doc_terms: sp.csr_matrix, rows: np.ndarray, n_clusters: int) -> sp.csr_matrix:
    """(clusters x terms) share of each cluster's read texts that contain each term (sparse)."""
    n_texts = doc_terms.shape[0]
    read = np.bincount(rows, minlength=n_clusters).astype(np.float64)
    weights = 1 / np.maximum(read, 1)[rows]
    one_hot = sp.csr_matrix((weights, (rows, np.arange(n_texts))), shape=(n_clusters, n_texts))
    return (one_hot @ doc_terms).tocsr()


def _best_terms(
    share: sp.csr_matrix,
    sizes: np.ndarray,
    everywhere: np.ndarray,
    row: int,
    vocabulary: np.ndarray,
    phrase: np.ndarray,
    n: int,
    min_share: float,
) -> list[str]:
    """The n best terms of one cluster by p * log(p / q), phrases folded into their words.
    `everywhere`: per term, the (size-weighted) number of texts of all clusters that have it;
    `phrase`: per term, whether it is a phrase."""
    start, end = share.indptr[row], share.indptr[row + 1]
    columns, p = share.indices[start:end], share.data[start:end]
    others = sizes.sum() - sizes[row]
    if others:
        q = (everywhere[columns] - sizes[row] * p) / others
        # Half a text's worth keeps log(p / q) finite for terms no other cluster has.
        score = p * np.log(p / np.maximum(q, 0.5 / others))
    else:  # the only cluster: nothing to contrast with, coverage alone, and no instruction words
        asks = [bool(set(str(vocabulary[c]).split(" ")) & INSTRUCTION_WORDS) for c in columns]
        score = np.where(asks, 0.0, p)
    candidates = np.flatnonzero((p >= min_share) & (score > 0))
    if not len(candidates):
        # A mixed cluster that no term covers: its best telling words among its common ones
        # (not the rare names that only it has, nor phrases): those in at least
        # FALLBACK_SHARE of the texts its commonest telling word is in.
        telling = np.flatnonzero((score > 0) & ~phrase[columns])
        if len(telling):
            candidates = telling[p[telling] >= FALLBACK_SHARE * p[telling].max()]
    # Best first; on equal scores a word before a phrase, then alphabetically (the vocabulary
    # is in alphabetical order).
    order = candidates[np.lexsort((columns[candidates], phrase[columns[candidates]], -score[candidates]))]
    distinctive = {str(vocabulary[columns[i]]) for i in candidates}
    term = {i: str(vocabulary[columns[i]]) for i in order[: 8 * n + 16]}
    chosen: list[int] = []
    for i in term:
        parts = set(term[i].split(" "))
        clash = [c for c in chosen if set(term[c].split(" ")) & parts]
        if not clash:
            if len(chosen) < n:
                chosen.append(i)
        elif len(parts) == 2 and parts <= distinctive and all(" " not in term[c] for c in clash):
            # A phrase of two telling words that most of their texts have says more than the
            # words alone ("movie review"); one that adds a word said everywhere does not.
            if all(p[i] >= PHRASE_KEEPS * p[c] for c in clash):
                chosen[chosen.index(clash[0])] = i
                chosen = [c for c in chosen if c not in clash[1:]]
    return [term[i] for i in chosen]


def _distinct_label(found: list[str], top_n: int, *, taken: set[str]) -> str:
    """The first top_n terms joined, extended by the next terms while the label is taken."""
    size = min(top_n, len(found))
    label = SEPARATOR.join(found[:size])
    while label in taken and size < len(found):
        size += 1
        label = SEPARATOR.join(found[:size])
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
