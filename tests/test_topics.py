"""curator.topics: c-TF-IDF cluster labels, on small hand-made clusters and on real prompts.

The real clusters come from ground truth instead of a clustering: 0 = Code Alpaca instructions,
1 = IMDB review prompts (T0 templates), 2 = roleplay instructions, -1 = a few hundred Alpaca
instructions standing in for HDBSCAN's noise.
"""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pytest
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from curator.topics import (
    LLM_LABEL_MAX_CHARS,
    NOISE,
    NOISE_LABEL,
    clean_llm_label,
    cluster_labels,
    cluster_terms,
    llm_label_messages,
    words,
)
from tests.conftest import DATA, needs_data

CODE, IMDB, ROLEPLAY = 0, 1, 2
# Written here rather than imported, so that a module that stops filtering them fails.
BOILERPLATE = {
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
WORD = re.compile(r"[a-z][a-z0-9]*(\+\+|#)?")
CODE_WORDS = {
    "code",
    "function",
    "python",
    "program",
    "array",
    "string",
    "list",
    "javascript",
    "java",
    "sql",
    "algorithm",
    "class",
    "method",
    "loop",
    "c++",
    "html",
}
MOVIE_WORDS = {"movie", "film", "review", "reviewer", "sentiment", "films", "movies"}
ROLEPLAY_WORDS = {"imagine", "role", "character", "pretend", "roleplay", "fictional"}


def _instructions(name: str) -> list[str]:
    return [record["instruction"] for record in json.loads((DATA / name).read_text(encoding="utf-8"))]


def _imdb_prompts() -> list[str]:
    paths = sorted((DATA / "t0_train_50k_data_per_template").glob("imdb_*.jsonl"))
    return [
        json.loads(line)["prompt"]
        for path in paths
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


@pytest.fixture(scope="module")
def corpus() -> tuple[list[str], np.ndarray]:
    sources = {
        CODE: _instructions("code_alpaca_2k.json"),
        IMDB: _imdb_prompts(),
        ROLEPLAY: _instructions("roleplay-simple-deduped-roleplay-instruct.json"),
        NOISE: _instructions("alpaca_5000.json")[:300],
    }
    texts = [text for cluster_texts in sources.values() for text in cluster_texts]
    clusters = np.array([cluster for cluster, cluster_texts in sources.items() for _ in cluster_texts])
    return texts, clusters


@pytest.fixture(scope="module")
def labels(corpus) -> dict[int, str]:
    return cluster_labels(*corpus)


def _terms(label: str) -> list[str]:
    return label.split(" · ")


# --- words -------------------------------------------------------------------------------


def test_words_are_lowercase_words_without_stop_words_numbers_or_single_letters():
    assert words("The QUICK brown fox, 1967 and 42x: a b c") == ["quick", "brown", "fox"]


def test_words_keep_programming_language_names_whole():
    assert words("C++ vs C# vs python3") == ["c++", "vs", "c#", "vs", "python3"]


def test_words_skip_html_tags_contractions_and_chat_boilerplate():
    text = "Please write the answer to the following question.<br /><br />I don't think it's a movie's end"
    assert words(text) == ["think", "movie", "end"]
    assert set(words(" ".join(BOILERPLATE) + " sonnet")) == {"sonnet"}


def test_words_split_identifiers_but_not_numbers_with_letters():
    assert words("sort my_list in 3d") == ["sort", "list"]


# --- c-TF-IDF on hand-made clusters --------------------------------------------------------


def test_a_term_common_to_every_cluster_loses_to_the_cluster_own_term():
    texts = [f"common common {colour}" for colour in ("red", "blue", "green") for _ in range(2)]
    clusters = np.array([0, 0, 1, 1, 2, 2])
    assert cluster_terms(texts, clusters, top_n=1) == {0: ["red"], 1: ["blue"], 2: ["green"]}


def test_terms_are_ranked_best_first_and_ties_go_alphabetically():
    texts = ["zeta alpha alpha", "zeta alpha alpha", "other other", "other other"]
    assert cluster_terms(texts, np.array([0, 0, 1, 1]), top_n=2)[0] == ["alpha", "zeta"]
    tied = ["mango kiwi", "kiwi mango", "other", "other"]
    assert cluster_terms(tied, np.array([0, 0, 1, 1]), top_n=2)[0] == ["kiwi", "mango"]


def test_identical_labels_are_extended_with_the_next_term():
    shared = "alpha alpha alpha beta beta beta gamma gamma gamma"
    texts = [f"{shared} delta"] * 2 + [f"{shared} epsilon"] * 2
    labels = cluster_labels(texts, np.array([0, 0, 1, 1]))
    assert labels == {0: "alpha · beta · gamma", 1: "alpha · beta · gamma · epsilon"}


def test_a_term_in_fewer_than_min_df_texts_is_not_a_term():
    texts = ["zebra giraffe", "zebra lion", "other thing", "other thing"]
    assert cluster_terms(texts, np.array([0, 0, 1, 1]), top_n=3)[0] == ["zebra"]
    assert cluster_terms(texts, np.array([0, 0, 1, 1]), top_n=3, min_df=1)[0] == ["zebra", "giraffe", "lion"]


def test_fewer_texts_than_min_df_still_give_terms():
    assert cluster_terms(["sorting python lists"], np.array([3])) == {3: ["lists", "python", "sorting"]}


def test_max_features_caps_the_vocabulary_at_the_most_frequent_terms():
    texts = ["apple apple apple pear", "apple apple pear", "plum", "plum"]
    assert cluster_terms(texts, np.array([0, 0, 1, 1]), max_features=1) == {0: ["apple"], 1: []}


def test_a_cluster_without_usable_terms_is_named_by_its_commonest_text():
    texts = [
        "sorting lists in python",
        "python lists sorted",
        "",
        "   ",
        "the 123 and of",
        "it is",
        "Who are you?",
        "who are  you?",
        "Who are you?",
        "What " + "is it " * 20,
    ]
    clusters = np.array([0, 0, 5, 5, 6, 6, 7, 7, 7, 8])
    assert cluster_terms(texts, clusters)[5] == []
    labels = cluster_labels(texts, clusters)
    assert labels[5] == "cluster 5"  # no text at all
    assert labels[6] == "“the 123 and of”"  # a tie: the first of the commonest
    assert labels[7] == "“Who are you?”"
    assert labels[8] == "“What is it is it is it is it is it is i…”" and len(labels[8]) == 42
    assert labels[0] == "lists · python"


def test_no_usable_terms_anywhere_still_gives_every_cluster_a_label():
    assert cluster_labels(["", "the and", "42"], np.array([0, 1, NOISE])) == {
        NOISE: NOISE_LABEL,
        0: "cluster 0",
        1: "“the and”",
    }
    assert cluster_labels([], np.array([], dtype=int)) == {}


def test_noise_gets_terms_only_when_it_is_the_only_cluster():
    texts = ["ocean waves", "ocean tides", "desert sand", "desert dunes"]
    assert cluster_terms(texts, np.array([0, 0, NOISE, NOISE]))[NOISE] == []
    alone = cluster_terms(texts, np.full(4, NOISE))
    assert alone == {NOISE: ["desert", "ocean"]}
    assert cluster_labels(texts, np.full(4, NOISE)) == {NOISE: NOISE_LABEL}


def test_texts_and_clusters_must_have_the_same_length():
    with pytest.raises(ValueError, match="2 texts but 3 cluster ids"):
        cluster_terms(["a b", "c d"], np.array([0, 0, 1]))


# --- real prompts, clusters from their sources ---------------------------------------------


@needs_data
def test_real_labels_are_words_not_stop_words(labels):
    for cluster, label in labels.items():
        if cluster == NOISE:
            continue
        terms = _terms(label)
        assert len(terms) == 3, label
        for term in terms:
            assert WORD.fullmatch(term) and len(term) > 1, (cluster, label)
            assert term not in ENGLISH_STOP_WORDS | BOILERPLATE, (cluster, label)


@needs_data
def test_real_labels_name_their_topic(labels):
    assert labels[NOISE] == NOISE_LABEL
    assert CODE_WORDS & set(_terms(labels[CODE])), labels
    assert MOVIE_WORDS & set(_terms(labels[IMDB])), labels
    assert ROLEPLAY_WORDS & set(_terms(labels[ROLEPLAY])), labels


@needs_data
def test_real_labels_are_distinct(labels):
    assert len(set(labels.values())) == len(labels) == 4


@needs_data
def test_top_n_is_respected(corpus):
    five = cluster_terms(*corpus, top_n=5)
    two = cluster_terms(*corpus, top_n=2)
    assert five[NOISE] == two[NOISE] == []
    for cluster in (CODE, IMDB, ROLEPLAY):
        assert len(five[cluster]) == 5 and two[cluster] == five[cluster][:2]
    assert all(
        len(_terms(label)) == 1 for cluster, label in cluster_labels(*corpus, top_n=1).items() if cluster != NOISE
    )


@needs_data
def test_labels_are_deterministic_and_ignore_text_order(corpus, labels):
    texts, clusters = corpus
    assert cluster_labels(texts, clusters) == labels
    order = list(range(len(texts)))
    random.Random(7).shuffle(order)
    assert cluster_labels([texts[i] for i in order], clusters[order]) == labels


@needs_data
def test_a_single_real_cluster_gets_a_code_label(corpus):
    texts, clusters = corpus
    code = [text for text, cluster in zip(texts, clusters) if cluster == CODE]
    label = cluster_labels(code, np.zeros(len(code), dtype=int))[0]
    assert len(_terms(label)) == 3 and CODE_WORDS & set(_terms(label)), label


@pytest.mark.parametrize(
    "answer, label",
    [
        ("Movie reviews", "Movie reviews"),
        ('"Cooking recipes."', "Cooking recipes"),
        ("Topic name: Python programming", "Python programming"),
        ("\n\n- **Gardening tips**\nThese texts are about plants.", "Gardening tips"),
        ("1. Personal finance", "Personal finance"),
        ("", None),
        (None, None),
        ('  \n "" \n', None),
    ],
)
def test_clean_llm_label_keeps_the_name_and_drops_the_decoration(answer, label):
    assert clean_llm_label(answer) == label


def test_clean_llm_label_cuts_long_answers_at_a_word():
    label = clean_llm_label("A very long answer that goes on and on about every single text in the cluster")
    assert len(label) <= LLM_LABEL_MAX_CHARS + 1 and label.endswith("…") and " " not in label[-2:]


def test_llm_label_messages_show_terms_and_at_most_eight_flattened_examples():
    messages = llm_label_messages(["movie", "review"], [f"text\n{i}" for i in range(20)])
    user = messages[-1]["content"]
    assert "Key terms: movie, review" in user and "- text 7" in user and "- text 8" not in user
    assert llm_label_messages([], ["x"])[-1]["content"].startswith("Key terms: (none)")
