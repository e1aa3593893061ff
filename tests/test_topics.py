"""curator.topics: document-frequency cluster labels, on small hand-made clusters and on real prompts.

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
    MIN_SHARE,
    NOISE,
    NOISE_LABEL,
    clean_llm_label,
    cluster_labels,
    cluster_terms,
    llm_label_messages,
    terms,
)
from tests.conftest import DATA, needs_data

CODE, IMDB, ROLEPLAY = 0, 1, 2
WORD = re.compile(r"[a-z][a-z0-9]*(\+\+|#)?")
TERM = re.compile(rf"{WORD.pattern}( {WORD.pattern})?")
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


def _label_words(label: str) -> list[str]:
    return label.replace(" · ", " ").split()


# --- words -------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    """The single-word terms of a text, sorted."""
    return [term for term in terms(text) if " " not in term]


def test_words_are_lowercase_words_without_stop_words_numbers_or_single_letters():
    assert _words("The QUICK brown fox, 1967 and 42x: a b c") == ["brown", "fox", "quick"]


def test_words_keep_programming_language_names_whole():
    assert _words("C++ vs C# vs python3") == ["c#", "c++", "python3", "vs"]


def test_words_skip_html_tags_contractions_and_chat_filler_but_keep_instruction_words():
    text = "Please write the answer to the following question.<br /><br />I don't think it's a movie's end"
    assert _words(text) == ["answer", "end", "following", "movie", "question", "think", "write"]
    # Politeness says nothing about what a pair is: none of it is a term.
    assert terms("Hi! Could you please write a sonnet about the sea? Thanks so much, hello from me") == [
        "sea",
        "sonnet",
        "write",
    ]


def test_terms_are_words_and_phrases_of_adjacent_words_not_across_breaks():
    assert terms("Is this movie review positive, or negative?") == [
        "movie",
        "movie review",
        "negative",
        "positive",
        "review",
        "review positive",
    ]
    assert terms("sort the list in 3 steps") == ["list", "sort", "steps"]  # "the", "3" break phrases


def test_words_split_identifiers_but_not_numbers_with_letters():
    assert _words("sort my_list in 3d") == ["list", "sort"]


# --- document frequency on hand-made clusters --------------------------------------------------------


def test_a_term_common_to_every_cluster_loses_to_the_cluster_own_term():
    texts = [f"common common {colour}" for colour in ("red", "blue", "green") for _ in range(2)]
    clusters = np.array([0, 0, 1, 1, 2, 2])
    assert cluster_terms(texts, clusters, top_n=1) == {0: ["red"], 1: ["blue"], 2: ["green"]}


def test_terms_are_ranked_best_first_and_ties_go_alphabetically():
    texts = ["zeta and alpha", "alpha", "alpha", "other", "other", "other"]
    assert cluster_terms(texts, np.array([0, 0, 0, 1, 1, 1]), top_n=2, min_df=1)[0] == ["alpha", "zeta"]
    tied = ["mango, kiwi", "kiwi, mango", "other", "other"]
    assert cluster_terms(tied, np.array([0, 0, 1, 1]), top_n=2)[0] == ["kiwi", "mango"]


def test_identical_labels_are_extended_with_the_next_term():
    shared = "alpha, beta, gamma"
    texts = [f"{shared}, delta"] * 2 + [shared] * 4 + [f"{shared}, epsilon"] * 2 + [shared] * 4
    texts += ["other"] * 40
    labels = cluster_labels(texts, np.array([0] * 6 + [1] * 6 + [2] * 40))
    assert labels[0] == "alpha · beta · gamma"
    assert labels[1] == "alpha · beta · gamma · epsilon"


def test_a_term_in_fewer_than_min_df_texts_is_not_a_term():
    texts = ["zebra giraffe", "zebra lion", "other thing", "other thing"]
    assert cluster_terms(texts, np.array([0, 0, 1, 1]), top_n=3)[0] == ["zebra"]
    assert cluster_terms(texts, np.array([0, 0, 1, 1]), top_n=3, min_df=1)[0] == ["zebra", "giraffe", "lion"]


def test_fewer_texts_than_min_df_still_give_terms():
    assert cluster_terms(["sorting python lists"], np.array([3]), top_n=2) == {3: ["python lists"]}


def test_a_word_most_members_have_beats_one_a_few_repeat_many_times():
    # Term frequency would pick "heseltine" (12 times in one text); 4 of 5 texts say "review".
    texts = ["review of a film", "review of a play", "review of a book", "review of a song"]
    texts += ["heseltine " * 12 + "music"] + ["other words"] * 5
    assert cluster_terms(texts, np.array([0] * 5 + [1] * 5), top_n=1)[0] == ["review"]


def test_a_phrase_replaces_its_words_when_most_of_their_texts_have_it():
    texts = ["movie review: good", "movie review: bad", "movie review: fine", "a movie night"]
    texts += ["other words"] * 4
    assert cluster_terms(texts, np.array([0] * 4 + [1] * 4), top_n=2)[0][0] == "movie review"


def test_labels_of_large_clusters_read_a_bounded_sample_the_same_whatever_the_order():
    rng = random.Random(3)
    texts = [f"alpha, {rng.choice(['beta', 'gamma'])}" for _ in range(400)] + ["delta epsilon"] * 50
    clusters = np.array([0] * 400 + [1] * 50)
    sampled = cluster_terms(texts, clusters, max_texts=100)
    order = list(range(len(texts)))
    rng.shuffle(order)
    assert cluster_terms([texts[i] for i in order], clusters[order], max_texts=100) == sampled
    assert sampled[0][0] == "alpha" and sampled[1][0] == "delta epsilon"


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
    texts = ["ocean, waves", "ocean, tides", "desert, sand", "desert, dunes"]
    assert cluster_terms(texts, np.array([0, 0, NOISE, NOISE]))[NOISE] == []
    alone = cluster_terms(texts, np.full(4, NOISE))
    assert alone == {NOISE: ["desert", "ocean"]}
    assert cluster_labels(texts, np.full(4, NOISE)) == {NOISE: NOISE_LABEL}


def test_texts_and_clusters_must_have_the_same_length():
    with pytest.raises(ValueError, match="2 texts but 3 cluster ids"):
        cluster_terms(["a b", "c d"], np.array([0, 0, 1]))


# --- real prompts, clusters from their sources ---------------------------------------------


@needs_data
def test_real_labels_are_words_or_phrases_not_stop_words(labels):
    for cluster, label in labels.items():
        if cluster == NOISE:
            continue
        found = _terms(label)
        assert 1 <= len(found) <= 3, label
        for term in found:
            assert TERM.fullmatch(term) and len(term) > 1, (cluster, label)
            assert not set(term.split()) & (ENGLISH_STOP_WORDS), (cluster, label)


@needs_data
def test_real_labels_are_terms_most_of_the_cluster_has_not_names_a_few_quote(corpus, labels):
    # The IMDB templates quote 199 reviews each; term frequency named them after the actors.
    texts, clusters = corpus
    members = [set(terms(texts[i])) for i in np.flatnonzero(clusters == IMDB)]
    for term in _terms(labels[IMDB]):
        assert np.mean([term in found for found in members]) >= MIN_SHARE, labels[IMDB]


@needs_data
def test_real_labels_name_their_topic(labels):
    assert labels[NOISE] == NOISE_LABEL
    assert CODE_WORDS & set(_label_words(labels[CODE])), labels
    assert MOVIE_WORDS & set(_label_words(labels[IMDB])), labels
    assert ROLEPLAY_WORDS & set(_label_words(labels[ROLEPLAY])), labels


@needs_data
def test_real_labels_are_distinct(labels):
    assert len(set(labels.values())) == len(labels) == 4


@needs_data
def test_top_n_is_respected(corpus):
    five = cluster_terms(*corpus, top_n=5)
    two = cluster_terms(*corpus, top_n=2)
    assert five[NOISE] == two[NOISE] == []
    for cluster in (CODE, IMDB, ROLEPLAY):
        assert 2 <= len(five[cluster]) <= 5 and two[cluster] == five[cluster][:2]
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
    assert len(_terms(label)) == 3 and CODE_WORDS & set(_label_words(label)), label


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
