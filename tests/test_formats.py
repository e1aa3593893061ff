"""curator.formats on real public records from ../shared/data.

Expected counts were computed once by a separate script that does not use curator.formats:
it counted outputs that are blank after strip(), walked OpenAssistant trees for non-deleted
assistant messages with no non-deleted assistant message below them, and split HH transcripts
on "\\n\\nAssistant:". They are hard-coded here.
"""

from __future__ import annotations

import copy
import gzip
import json
from collections import Counter
from functools import cache
from pathlib import Path

import pytest

from curator.formats import FORMATS, Pair, RecordError, detect_format, record_pairs

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.exists(), reason="needs ../shared/data (the project's shared real datasets)")

T0_FILE = "t0_train_50k_data_per_template/adversarial_qa_dbert_based_on.jsonl"
HH_FILE = "hh-rlhf_harmless-base/test.jsonl.gz"
SG90K_FILE = "sg_90k_part1_html_cleaned_lang_first_sampled_sorted.json"


@cache
def _load(name: str) -> tuple:
    path = DATA / name
    if name.endswith(".json"):
        return tuple(json.loads(path.read_text(encoding="utf-8")))
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as lines:
        return tuple(json.loads(line) for line in lines if line.strip())


def records(name: str) -> list:
    """A fresh copy of a real file's records, safe to change in a test."""
    return copy.deepcopy(list(_load(name)))


def first_record(name: str) -> object:
    if name.endswith((".json", ".gz")):
        return _load(name)[0]
    with open(DATA / name, encoding="utf-8") as lines:  # instructionwild has bad later lines
        return json.loads(lines.readline())


def outcome(rows: list, fmt: str, **fields: str) -> tuple[list[Pair], Counter]:
    """Every pair of rows, and how many records were rejected for each reason."""
    pairs, reasons = [], Counter()
    for row in rows:
        try:
            pairs.extend(record_pairs(row, fmt, **fields))
        except RecordError as err:
            reasons[err.reason] += 1
    return pairs, reasons


def reason(record: object, fmt: str, **fields: str) -> str:
    with pytest.raises(RecordError) as caught:
        record_pairs(record, fmt, **fields)
    assert str(caught.value) == caught.value.reason
    return caught.value.reason


def sharegpt_to_openai(row: dict) -> dict:
    roles = {"human": "user", "gpt": "assistant", "system": "system"}
    turns = row["conversations"]
    return {"messages": [{"role": roles[turn["from"]], "content": turn["value"]} for turn in turns]}


# --- detect_format -----------------------------------------------------------------------


@needs_data
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("alpaca_5000.json", "alpaca"),
        ("code_alpaca_2k.json", "alpaca"),
        ("codegen-instruct.json", "alpaca"),
        ("new_codealpaca.json", "alpaca"),
        ("roleplay-simple-deduped-roleplay-instruct.json", "alpaca"),
        ("alpaca_eval_example/outputs.json", "alpaca"),
        ("alpaca_eval_results/gpt4/model_outputs.json", "alpaca"),
        ("self_instruct_human_eval_predictions/davinci_predictions.jsonl", "alpaca"),
        (T0_FILE, "gpt4all"),
        ("dummy_conversation.json", "sharegpt"),
        ("ShareGPT_V3_filtered_500.json", "sharegpt"),
        (SG90K_FILE, "sharegpt"),
        ("en_100_tree.jsonl", "oasst"),
        ("en_100_message.jsonl", "oasst"),
        ("oasst2_filtered.jsonl", "oasst"),
        (HH_FILE, "hh"),
        ("en_100_text.jsonl", None),  # a bare string
        ("seed_tasks.jsonl", None),  # Self-Instruct {instruction, instances}
        ("user_oriented_instructions.jsonl", None),
        ("instructionwild_v2/user_1.jsonl", None),  # instructions only
        ("mt_bench/question.jsonl", None),
    ],
)
def test_detect_format_of_each_real_file(name, expected):
    assert detect_format(first_record(name)) == expected


@needs_data
def test_detect_format_of_built_dolly_and_openai_records():
    row = _load("dummy_conversation.json")[0]
    assert detect_format(sharegpt_to_openai(row)) == "openai"
    assert detect_format(dolly_records()[0]) == "dolly"


def test_detect_format_takes_a_dict_valued_gpt4all_prompt_as_gpt4all():
    # GPT4All's dict rule lets prompt be {"value": ...}; only OpenAssistant trees carry replies.
    assert detect_format({"prompt": {"value": "Say hi"}, "response": "Hi"}) == "gpt4all"


# One record of each shape the module docstring promises, written from those formats' own
# documentation: each must be detected as its format and give the same pair.
SHAPES = {
    "gpt4all": {"prompt": "Name a colour.", "response": "Blue."},
    "alpaca": {"instruction": "Name a colour.", "input": "", "output": "Blue."},
    "dolly": {"instruction": "Name a colour.", "context": "", "response": "Blue.", "category": "open_qa"},
    "sharegpt": {"conversations": [{"from": "human", "value": "Name a colour."}, {"from": "gpt", "value": "Blue."}]},
    "openai": {"messages": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}]},
    "oasst": {
        "message_id": "m1",
        "parent_id": None,
        "role": "prompter",
        "text": "Name a colour.",
        "replies": [{"message_id": "m2", "role": "assistant", "text": "Blue.", "replies": []}],
    },
    "hh": {"chosen": "\n\nHuman: Name a colour.\n\nAssistant: Blue.", "rejected": "\n\nHuman: x\n\nAssistant: y"},
}


@pytest.mark.parametrize("fmt", sorted(SHAPES))
def test_every_documented_shape_is_detected_and_read(fmt):
    record = SHAPES[fmt]
    assert detect_format(record) == fmt
    (pair,) = record_pairs(record, fmt)
    assert (pair.prompt, pair.response) == ("Name a colour.", "Blue.")


def test_every_format_offered_has_a_reader_of_its_shape():
    assert sorted(FORMATS) == sorted(SHAPES)  # `--format` offers what is read, no more, no less


# --- exact counts on whole real files ------------------------------------------------------


@needs_data
def test_alpaca_5000_counts():
    pairs, reasons = outcome(records("alpaca_5000.json"), "alpaca")
    # 2 records have an output that is blank after strip().
    assert (len(pairs), reasons) == (4998, Counter({"field 'output' is empty": 2}))
    assert all(pair.messages is None and pair.source is None for pair in pairs)


@needs_data
def test_codegen_instruct_counts_and_keeps_code_indentation():
    rows = records("codegen-instruct.json")
    pairs, reasons = outcome(rows, "alpaca")
    assert (len(pairs), reasons) == (4535, Counter())
    # GPTeacher's `response` is the output; 955 records have a blank input.
    assert pairs[0].response == rows[0]["response"]
    assert "\n    int width = 5;" in pairs[0].response
    assert sum(pair.prompt == row["instruction"].strip() for pair, row in zip(pairs, rows)) == 955
    assert pairs[0].prompt == f"{rows[0]['instruction']}\n\n{rows[0]['input']}"


@needs_data
def test_dummy_conversation_counts():
    pairs, reasons = outcome(records("dummy_conversation.json"), "sharegpt")
    # 167 rows are a single exchange (messages None); 333 have 2 or 3 user turns.
    assert (len(pairs), reasons) == (500, Counter())
    assert sum(pair.messages is not None for pair in pairs) == 333


@needs_data
@pytest.mark.parametrize("name", ["en_100_tree.jsonl", "en_100_message.jsonl"])
def test_oasst_en_100_counts(name):
    pairs, reasons = outcome(records(name), "oasst")
    # 546 assistant messages have no assistant message below them; 349 of their paths
    # hold more than one prompter message.
    assert (len(pairs), reasons) == (546, Counter())
    assert sum(pair.messages is not None for pair in pairs) == 349


@needs_data
def test_oasst_tree_and_message_exports_give_the_same_pairs():
    tree_pairs, _ = outcome(records("en_100_tree.jsonl"), "oasst")
    message_pairs, _ = outcome(records("en_100_message.jsonl"), "oasst")
    assert tree_pairs == message_pairs


@needs_data
def test_oasst2_filtered_counts():
    pairs, reasons = outcome(records("oasst2_filtered.jsonl"), "oasst")
    # 432 trees hold prompter messages only; 1 tree's root is deleted; the other 118 trees
    # give 522 paths, 320 of them with more than one prompter message.
    assert len(pairs) == 522
    assert reasons == Counter({"conversation has no assistant answer": 432, "root message is deleted": 1})
    assert sum(pair.messages is not None for pair in pairs) == 320


@needs_data
def test_hh_counts():
    rows = records(HH_FILE)
    assert len(rows) == 2312
    pairs, reasons = outcome(rows, "hh")
    # 4 `chosen` transcripts end with an empty "Assistant:" turn; 1,649 of the rest have more
    # than one "Human:" turn.
    assert len(pairs) == 2308
    assert reasons == Counter({"field 'chosen' has an empty 'Assistant:' turn": 4})
    assert sum(pair.messages is not None for pair in pairs) == 1649


@needs_data
def test_t0_file_counts_with_completion_as_response():
    rows = records(T0_FILE)
    pairs, reasons = outcome(rows, "gpt4all")
    assert (len(pairs), reasons) == (200, Counter())
    assert pairs[0].response == rows[0]["completion"].strip()
    assert pairs[0].prompt == rows[0]["prompt"].strip()


@needs_data
def test_sharegpt_first_turn_files_are_all_rejected():
    _, reasons = outcome(records("ShareGPT_V3_filtered_500.json"), "sharegpt")
    assert reasons == Counter({"conversation has no assistant answer": 500})
    _, reasons = outcome(records(SG90K_FILE), "sharegpt")
    # 4 records hold a single "gpt" turn with nothing asked before it.
    assert reasons == Counter(
        {
            "conversation has no assistant answer": 2974,
            "conversation has no user turn before the assistant answer": 4,
        }
    )


@needs_data
def test_alpaca_eval_results_counts():
    model_files = sorted((DATA / "alpaca_eval_results").glob("*/model_outputs.json"))
    assert len(model_files) == 12
    rows = [row for path in model_files for row in records(str(path.relative_to(DATA)))]
    pairs, reasons = outcome(rows, "alpaca")
    # 12 x 805 outputs; text_davinci_003 has 2 blank outputs.
    assert (len(pairs), reasons) == (9658, Counter({"field 'output' is empty": 2}))


# --- alpaca ------------------------------------------------------------------------------

# Every raw `input` in alpaca_5000.json that means "no input" (found by reading the file).
ALPACA_NO_INPUT_SPELLINGS = {
    "",
    '"<noinput>"',
    "(No input)",
    "< noinput >",
    "<No Input>",
    "<No input>",
    "<Noinput>.",
    "<ninput>",
    "<no input>",
    "N/A",
    "No Input",
    "No input",
    "No input needed.",
    "No input required",
    "No input required.",
    "No input.",
    "Noinput",
    "None",
    "[noinput]",
    "\\<noinput\\>",
    "noinput",
    "{\\noinput}",
}


@needs_data
def test_alpaca_no_input_placeholders_leave_the_instruction_alone():
    rows = [row for row in records("alpaca_5000.json") if row["output"].strip()]
    pairs, _ = outcome(rows, "alpaca")
    no_input_rows = [row for pair, row in zip(pairs, rows) if pair.prompt == row["instruction"].strip()]
    assert {row["input"] for row in no_input_rows} == ALPACA_NO_INPUT_SPELLINGS
    # 3,120 of the 5,000 rows mean no input (3,057 blank, 63 placeholders); 2 of those are
    # the rows with a blank output, left out here.
    assert len(no_input_rows) == 3118


@pytest.mark.parametrize("placeholder", ["Not applicable", "n/a", "  NONE  ", "<No Input>", "\t"])
def test_alpaca_other_no_input_spellings(placeholder):
    record = {"instruction": "Name a primary colour.", "input": placeholder, "output": "Red"}
    assert record_pairs(record, "alpaca")[0].prompt == "Name a primary colour."


@needs_data
@pytest.mark.parametrize("real_input", ["+", "\\-- \\-\\ \\-\\ \\-- \\.- \\. \\... \\-\\. \\-- \\-."])
def test_alpaca_punctuation_only_inputs_are_real(real_input):
    (row,) = [row for row in records("alpaca_5000.json") if row["input"] == real_input]
    assert record_pairs(row, "alpaca")[0].prompt == f"{row['instruction']}\n\n{real_input}"


def test_alpaca_null_or_missing_input_means_no_input():
    with_null_input = {"instruction": "Say hi", "input": None, "output": "Hi"}
    without_input = {"instruction": "Say hi", "output": "Hi"}
    for record in (with_null_input, without_input):
        assert record_pairs(record, "alpaca")[0].prompt == "Say hi"


# --- dolly -------------------------------------------------------------------------------


def dolly_records() -> list[dict]:
    """Dolly-shaped records built from real Alpaca rows (the data has no Dolly file)."""
    rows = [row for row in _load("alpaca_5000.json")[:40] if row["output"].strip()]
    with_input = next(row for row in rows if row["input"].strip())
    without_input = next(row for row in rows if not row["input"].strip())
    return [
        {
            "instruction": row["instruction"],
            "context": row["input"],
            "response": row["output"],
            "category": "open_qa",
        }
        for row in (with_input, without_input)
    ]


@needs_data
def test_dolly_appends_non_empty_context():
    with_context, without_context = dolly_records()
    pair = record_pairs(with_context, "dolly")[0]
    assert pair.prompt == f"{with_context['instruction'].strip()}\n\n{with_context['context'].strip()}"
    assert pair.response == with_context["response"].strip()
    assert record_pairs(without_context, "dolly")[0].prompt == without_context["instruction"].strip()
    assert reason({**with_context, "response": " "}, "dolly") == "field 'response' is empty"


# --- conversations and the multi-turn rule -------------------------------------------------


@needs_data
def test_sharegpt_multi_turn_keeps_every_turn():
    row = records("dummy_conversation.json")[0]  # Who are you? / ... / Have a nice day! / You too!
    turns = row["conversations"]
    assert len(turns) == 4
    (pair,) = record_pairs(row, "sharegpt")
    assert (pair.prompt, pair.response) == (turns[2]["value"], turns[3]["value"])
    roles = {"human": "user", "gpt": "assistant"}
    assert pair.messages == [{"role": roles[turn["from"]], "content": turn["value"]} for turn in turns]


@needs_data
def test_sharegpt_single_exchange_has_no_messages():
    row = next(row for row in records("dummy_conversation.json") if len(row["conversations"]) == 2)
    (pair,) = record_pairs(row, "sharegpt")
    assert pair.messages is None
    assert pair.prompt == row["conversations"][0]["value"]


@needs_data
def test_sharegpt_drops_user_turns_after_the_last_answer():
    row = next(row for row in records("dummy_conversation.json") if len(row["conversations"]) == 6)
    turns = row["conversations"]
    row["conversations"] = turns[:5]  # ends with a user turn nobody answered
    (pair,) = record_pairs(row, "sharegpt")
    assert (pair.prompt, pair.response) == (turns[2]["value"], turns[3]["value"])
    assert [message["content"] for message in pair.messages] == [turn["value"] for turn in turns[:4]]


@needs_data
def test_a_system_message_alone_keeps_messages():
    row = next(row for row in records("dummy_conversation.json") if len(row["conversations"]) == 2)
    row["conversations"].insert(0, {"from": "system", "value": "Be brief."})
    (pair,) = record_pairs(row, "sharegpt")
    assert [message["role"] for message in pair.messages] == ["system", "user", "assistant"]


def test_prompt_is_the_last_user_turn_before_the_answer():
    record = {
        "conversations": [
            {"from": "human", "value": "Here is my essay."},
            {"from": "user", "value": "Please shorten it."},
            {"from": "chatgpt", "value": "Done."},
        ]
    }
    (pair,) = record_pairs(record, "sharegpt")
    assert (pair.prompt, pair.response) == ("Please shorten it.", "Done.")
    assert [message["role"] for message in pair.messages] == ["user", "user", "assistant"]


def test_sharegpt_accepts_role_content_turns():
    turns = [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello"}]
    record = {"conversations": turns}
    assert record_pairs(record, "sharegpt") == [Pair("Hi there", "Hello", None, None)]


@needs_data
def test_openai_messages_built_from_real_conversations_match_sharegpt():
    rows = records("dummy_conversation.json")
    openai_pairs, reasons = outcome([sharegpt_to_openai(row) for row in rows], "openai")
    sharegpt_pairs, _ = outcome(rows, "sharegpt")
    assert reasons == Counter()
    assert openai_pairs == sharegpt_pairs


@needs_data
def test_openai_content_parts_and_prompt_only_conversations():
    row = sharegpt_to_openai(records("dummy_conversation.json")[0])
    question = row["messages"][0]["content"]
    row["messages"][0]["content"] = [
        {"type": "text", "text": question},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {"type": "text", "text": "Answer briefly."},
    ]
    (pair,) = record_pairs(row, "openai")
    assert pair.messages[0]["content"] == f"{question}\nAnswer briefly."
    prompts_only = [sharegpt_to_openai(row) for row in records("ShareGPT_V3_filtered_500.json")]
    assert outcome(prompts_only, "openai")[1] == Counter({"conversation has no assistant answer": 500})


@needs_data
def test_hh_uses_chosen_and_keeps_text_as_is():
    rows = records(HH_FILE)
    (pair,) = record_pairs(rows[0], "hh")
    assert pair.messages[0] == {"role": "user", "content": "what are some pranks with a pen i can do?"}
    assert pair.messages[1]["content"] == "Are you looking for practical joke ideas?"
    assert (pair.prompt, pair.response) == (pair.messages[-2]["content"], pair.messages[-1]["content"])
    assert pair.response not in rows[0]["rejected"]
    # Record 86 has a double space inside a turn and ends with an empty answer.
    assert "online.  It’s" in rows[86]["chosen"]
    assert reason(rows[86], "hh") == "field 'chosen' has an empty 'Assistant:' turn"
    two_answers = record_pairs(rows[763], "hh")[0].messages  # two Assistant turns in a row
    assert [message["role"] for message in two_answers][:3] == ["user", "assistant", "assistant"]


@needs_data
def test_hh_keeps_double_spaces_inside_turns():
    pairs, _ = outcome(records(HH_FILE)[:50], "hh")
    assert any("  " in pair.response for pair in pairs)


# --- OpenAssistant -------------------------------------------------------------------------


def message(text: str, role: str, *replies: dict, deleted: bool = False) -> dict:
    return {"message_id": text, "text": text, "role": role, "deleted": deleted, "replies": [*replies]}


def test_oasst_one_pair_per_deepest_assistant_answer():
    tree = {
        "message_tree_id": "t",
        "prompt": message(
            "Q1",
            "prompter",
            message("A1", "assistant", message("Q2", "prompter", message("A2", "assistant"))),
            message("A4", "assistant", message("Q3", "prompter")),  # follow-up never answered
        ),
    }
    first, second = record_pairs(tree, "oasst")
    # A1 has A2 below it, so only the path to A2 counts; Q3 is a trailing user turn.
    assert (first.prompt, first.response) == ("Q2", "A2")
    assert [m["content"] for m in first.messages] == ["Q1", "A1", "Q2", "A2"]
    assert [m["role"] for m in first.messages] == ["user", "assistant", "user", "assistant"]
    assert second == Pair("Q1", "A4", None, None)


def test_oasst_skips_deleted_messages_and_their_replies():
    follow_up = message("Q2", "prompter", message("A2", "assistant", deleted=True))
    answer = message("A1", "assistant", follow_up)
    root = {**message("Q1", "prompter", answer), "parent_id": None}
    # With A2 deleted, A1 has no answer below it and becomes the end of the path.
    assert record_pairs(root, "oasst") == [Pair("Q1", "A1", None, None)]
    answer["deleted"] = True
    assert reason(root, "oasst") == "conversation has no assistant answer"
    root["deleted"] = True
    assert reason(root, "oasst") == "root message is deleted"


def _texts_by_fate(node: dict, kept: set[str], gone: set[str], under_deleted: bool = False) -> None:
    """Sort the texts of node and everything below it into kept and gone (deleted, or below a
    deleted message)."""
    deleted = under_deleted or node.get("deleted") is True
    (gone if deleted else kept).add(node["text"].strip())
    for reply in node.get("replies") or []:
        _texts_by_fate(reply, kept, gone, deleted)


@needs_data
def test_oasst2_deleted_messages_never_reach_a_pair():
    rows = records("oasst2_filtered.jsonl")
    kept, gone = set(), set()
    for row in rows:
        _texts_by_fate(row["prompt"], kept, gone)
    only_deleted = gone - kept  # one deleted text also appears, not deleted, in another tree
    assert len(only_deleted) == 51
    pairs, _ = outcome(rows, "oasst")
    taken = {pair.prompt for pair in pairs} | {pair.response for pair in pairs}
    taken |= {m["content"] for pair in pairs if pair.messages for m in pair.messages}
    assert not taken & only_deleted
    for row in rows:
        _undelete(row["prompt"])
    undeleted_pairs, _ = outcome(rows, "oasst")
    # Counted the same way with the deleted flags ignored.
    assert len(undeleted_pairs) == 555
    assert {pair.response for pair in undeleted_pairs} & only_deleted


def _undelete(node: dict) -> None:
    node["deleted"] = False
    for reply in node.get("replies") or []:
        _undelete(reply)


@needs_data
def test_oasst_real_paths_alternate_and_end_with_the_response():
    pairs, _ = outcome(records("en_100_tree.jsonl"), "oasst")
    for pair in pairs:
        if pair.messages is None:
            continue
        roles = [m["role"] for m in pair.messages]
        assert roles == ["user", "assistant"] * (len(roles) // 2)
        assert [m["content"] for m in pair.messages[-2:]] == [pair.prompt, pair.response]


# --- cleaning rules and reject reasons ---------------------------------------------------


@needs_data
def test_a_real_string_record_is_rejected():
    expected = "record is a string, not a JSON object"
    assert reason(first_record("en_100_text.jsonl"), "gpt4all") == expected


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ([], "record is a list, not a JSON object"),
        (3, "record is a number, not a JSON object"),
        (None, "record is null, not a JSON object"),
        (True, "record is a boolean, not a JSON object"),
    ],
)
def test_non_object_records(record, expected):
    assert reason(record, "alpaca") == expected


@needs_data
@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (42, "field 'response' is a number, not a string"),
        (1.5, "field 'response' is a number, not a string"),
        (False, "field 'response' is a boolean, not a string"),
        (None, "field 'response' is null, not a string"),
        (["a"], "field 'response' is a list, not a string"),
        ({"text": "a"}, "field 'response' is an object without 'value' or 'description'"),
        ({"value": 7}, "field 'response.value' is a number, not a string"),
        ({"value": "  "}, "field 'response.value' is empty"),
        ("", "field 'response' is empty"),
        (" \n\t ", "field 'response' is empty"),
    ],
)
def test_bad_response_values(response, expected):
    row = {"prompt": records(T0_FILE)[0]["prompt"], "response": response}
    assert reason(row, "gpt4all") == expected


@needs_data
def test_missing_fields_and_single_character_prompts():
    row = records(T0_FILE)[0]
    assert reason({"prompt": row["prompt"]}, "gpt4all") == "missing field 'response'"
    assert reason({"completion": row["completion"]}, "gpt4all") == "missing field 'prompt'"
    one_character = {"prompt": " ? ", "completion": row["completion"]}
    assert reason(one_character, "gpt4all") == "prompt is a single character"
    alpaca = records("alpaca_5000.json")[0]
    del alpaca["output"]
    assert reason(alpaca, "alpaca") == "missing field 'output'"
    numeric_input = {**alpaca, "input": 5, "output": "x"}
    assert reason(numeric_input, "alpaca") == "field 'input' is a number, not a string"


def test_one_character_responses_are_kept():
    # T0 answers are often a single letter; only prompts have a length floor.
    assert record_pairs({"prompt": "Pick A or B.", "completion": "A"}, "gpt4all")[0].response == "A"


def test_dict_valued_fields_take_value_then_description():
    record = {
        "prompt": {"value": "  Tell me a joke. ", "description": "ignored"},
        "response": {"description": "Why did the chicken cross the road?"},
        "source": {"value": "unified_chip2"},
    }
    assert record_pairs(record, "gpt4all") == [
        Pair("Tell me a joke.", "Why did the chicken cross the road?", "unified_chip2", None)
    ]
    assert reason({**record, "prompt": {"id": 3}}, "gpt4all") == (
        "field 'prompt' is an object without 'value' or 'description'"
    )


def test_source_is_the_records_own_field():
    base = {"prompt": "Say hi", "response": "Hi"}
    assert record_pairs({**base, "source": " laion/OIG "}, "gpt4all")[0].source == "laion/OIG"
    assert record_pairs({**base, "source": None}, "gpt4all")[0].source is None
    assert record_pairs(base, "gpt4all")[0].source is None
    assert reason({**base, "source": 3}, "gpt4all") == "field 'source' is a number, not a string"


@pytest.mark.parametrize(
    ("record", "fmt", "expected"),
    [
        ({"conversations": "hi"}, "sharegpt", "field 'conversations' is a string, not a list"),
        ({"id": 1}, "sharegpt", "missing field 'conversations'"),
        ({"conversations": ["hi"]}, "sharegpt", "field 'conversations[0]' is a string, not an object"),
        ({"conversations": [{"value": "hi"}]}, "sharegpt", "missing field 'conversations[0].from'"),
        (
            {"conversations": [{"from": "human", "value": "hi"}, {"from": "robot", "value": "beep"}]},
            "sharegpt",
            "field 'conversations[1].from' has unknown role 'robot'",
        ),
        (
            {"conversations": [{"from": "human", "value": " "}, {"from": "gpt", "value": "Hello"}]},
            "sharegpt",
            "field 'conversations[0].value' is empty",
        ),
        (
            {"messages": [{"role": "assistant", "content": "Hello"}]},
            "openai",
            "conversation has no user turn before the assistant answer",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url"}]},
                    {"role": "assistant", "content": "A cat"},
                ]
            },
            "openai",
            "field 'messages[0].content' has no text part",
        ),
        (
            {"chosen": "Just some text", "rejected": ""},
            "hh",
            "field 'chosen' has no 'Human:' or 'Assistant:' turn",
        ),
        ({"chosen": "\n\nHuman: Hello there"}, "hh", "conversation has no assistant answer"),
        ({"rejected": "x"}, "hh", "missing field 'chosen'"),
    ],
)
def test_conversation_reject_reasons(record, fmt, expected):
    assert reason(record, fmt) == expected


def test_trailing_turns_are_not_validated():
    # An empty unanswered last turn is dropped, so it cannot spoil the conversation.
    record = {
        "conversations": [
            {"from": "human", "value": "Hi there"},
            {"from": "gpt", "value": "Hello"},
            {"from": "human", "value": ""},
        ]
    }
    assert record_pairs(record, "sharegpt") == [Pair("Hi there", "Hello", None, None)]


def test_record_error_is_a_value_error_with_a_reason():
    err = RecordError("field 'response' is empty")
    assert isinstance(err, ValueError)
    assert (str(err), err.reason) == ("field 'response' is empty", "field 'response' is empty")


# --- explicit fields and misuse ------------------------------------------------------------


@needs_data
def test_prompt_and_response_fields_override_the_format():
    row = next(row for row in records("alpaca_5000.json") if row["input"].strip())
    (pair,) = record_pairs(row, "gpt4all", prompt_field="instruction", response_field="output")
    assert (pair.prompt, pair.response) == (row["instruction"].strip(), row["output"].strip())
    fields = {"prompt_field": "question", "response_field": "output"}
    assert reason(row, "alpaca", **fields) == "missing field 'question'"


def test_misuse_is_not_a_record_error():
    with pytest.raises(ValueError) as caught:
        record_pairs({"prompt": "hi", "response": "yo"}, "jsonl")
    assert not isinstance(caught.value, RecordError)
    with pytest.raises(TypeError):
        record_pairs({"prompt": "hi", "response": "yo"}, "gpt4all", prompt_field="prompt")


def test_pairs_are_frozen_values():
    pair = record_pairs({"prompt": " Say hi ", "response": "Hi\n"}, "gpt4all")[0]
    assert pair == Pair("Say hi", "Hi", None, None)
    with pytest.raises(AttributeError):
        pair.prompt = "changed"
