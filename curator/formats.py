"""Turn one parsed record (from JSON, JSONL, CSV or Parquet) into prompt-response pairs.

Pure functions: no I/O, no SQL, standard library only. curator.readers parses files; this
module only knows what a record of each supported format looks like.

Formats (``FORMATS``):

- ``gpt4all``  ``{prompt, response, source?, model?, finish_reason?}``; ``completion`` stands in
  for a missing ``response`` (the P3/T0 files use ``{prompt, completion}``). ``model`` and
  ``finish_reason`` (as `curator distill` and the demo set write them) are kept on the pair.
- ``alpaca``   ``{instruction, input?, output}``; GPTeacher's ``response`` stands in for a
  missing ``output``. prompt = instruction, plus "\\n\\n" + input when the input is real.
  Placeholder inputs ("", "<noinput>", "No input needed.", "N/A", "None", ...) mean no
  input; they are recognised case- and punctuation-insensitively (``_NO_INPUT``).
  Punctuation-only inputs ("+", "*", "-") are real inputs: Alpaca asks things like
  "Classify the following as an arithmetic or a logical operator." with input "+".
- ``dolly``    ``{instruction, context, response, category}``; prompt = instruction, plus
  "\\n\\n" + context when the context is not empty.
- ``sharegpt`` ``{conversations: [{from, value}]}``; turns spelled ``{role, content}`` are
  accepted too, as some ShareGPT exports use them.
- ``openai``   ``{messages: [{role, content}]}``; content is a string or a list of parts,
  whose ``{"type": "text", "text": ...}`` parts are joined with "\\n" (others, such as
  images, are ignored).
- ``oasst``    an OpenAssistant tree ``{message_tree_id, prompt: {message}}`` or a root
  message ``{message_id, parent_id: null, text, role, replies}``. See "OpenAssistant rule".
- ``hh``       Anthropic HH ``{chosen, rejected}``; the ``chosen`` transcript
  "\\n\\nHuman: ...\\n\\nAssistant: ..." is used, ``rejected`` is ignored. Text before the
  first "Human:"/"Assistant:" marker becomes a system message.

Multi-turn rule (sharegpt, openai, oasst, hh): the response is the final assistant answer;
the prompt is the last user turn before it; user turns after the last assistant answer are
dropped. ``Pair.messages`` keeps every remaining turn as ``{"role", "content"}`` (role
"system", "user" or "assistant") and is set only when there is more than one user turn or a
system message; a plain single exchange has ``messages=None``.

OpenAssistant rule: one pair per conversation path, i.e. per assistant message that has no
assistant message anywhere below it; its ``messages`` is the path from the root to it (the
multi-turn rule above then applies). Roles: prompter -> user, assistant -> assistant.
Messages with ``deleted: true`` are skipped together with their replies, since a
conversation cannot continue through a message that is gone.

Cleaning rules, after GPT4All's, for every text we take:

- a dict-valued field takes its ``value`` key, or else its ``description`` key;
- anything that is not a string is rejected, as is a missing required field;
- text is stripped of leading and trailing whitespace (inner whitespace is kept as-is)
  and rejected when nothing is left;
- a prompt of one character is rejected.

Optional fields (alpaca ``input``, dolly ``context``, ``source``, gpt4all ``model`` and
``finish_reason``) that are missing, null or blank count as absent. A rejected record raises
``RecordError`` whose ``reason`` is a short, stable, lowercase sentence naming the field, e.g.
"missing field 'response'".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from curator.errors import UserError

FORMATS: tuple[str, ...] = ("gpt4all", "alpaca", "dolly", "sharegpt", "openai", "oasst", "hh")


@dataclass(frozen=True, slots=True)
class Pair:
    """One prompt-response pair, texts stripped of leading and trailing whitespace."""

    prompt: str
    response: str
    source: str | None  # the record's own `source` field, else None
    messages: list[dict] | None  # every turn, for multi-turn or system-prompted conversations
    model: str | None = None  # gpt4all records: the model that wrote the response, when given
    finish_reason: str | None = None  # gpt4all records: why it stopped ("length": cut at max tokens)


# Pair's generated __init__ sets each field through object.__setattr__ (it is frozen), which
# costs about 0.5 µs a pair, a third of a gpt4all record's budget. Setting the slots through
# their descriptors builds the same object in about 0.2 µs.
_new_object = object.__new__
_PAIR_SLOT_SETTERS = (
    Pair.prompt.__set__,
    Pair.response.__set__,
    Pair.source.__set__,
    Pair.messages.__set__,
    Pair.model.__set__,
    Pair.finish_reason.__set__,
)


def _new_pair(
    prompt: str,
    response: str,
    source: str | None,
    messages: list[dict] | None,
    model: str | None = None,
    finish_reason: str | None = None,
) -> Pair:
    pair = _new_object(Pair)
    set_prompt, set_response, set_source, set_messages, set_model, set_finish_reason = _PAIR_SLOT_SETTERS
    set_prompt(pair, prompt)
    set_response(pair, response)
    set_source(pair, source)
    set_messages(pair, messages)
    set_model(pair, model)
    set_finish_reason(pair, finish_reason)
    return pair


class RecordError(ValueError):
    """A record that yields no pair.

    str(err) / err.reason is a sentence a person understands, naming the field.
    """

    reason: str

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def detect_format(record: object) -> str | None:
    """Name of the format whose keys this record has, or None.

    Order matters: an oasst tree record has a dict-valued ``prompt``, which must not be taken
    as gpt4all; an ``instruction`` record with a ``prompt`` (Self-Instruct predictions) is
    alpaca.
    """
    if not isinstance(record, dict):
        return None
    if _is_oasst(record):
        return "oasst"
    if "conversations" in record:
        return "sharegpt"
    if "messages" in record:
        return "openai"
    if "chosen" in record:
        return "hh"
    if "instruction" in record:
        if "context" in record:
            return "dolly"
        if "output" in record or "response" in record or "input" in record:
            return "alpaca"
        return None
    if "prompt" in record and ("response" in record or "completion" in record):
        return "gpt4all"
    return None


def record_pairs(
    record: object,
    fmt: str,
    *,
    prompt_field: str | None = None,
    response_field: str | None = None,
) -> list[Pair]:
    """Pairs of one record in format fmt; raises RecordError for a record that yields none.

    prompt_field/response_field (both given) override the format: any flat object, those two
    keys. An unknown fmt raises ValueError (not RecordError): it is the caller's mistake, not
    the record's.
    """
    if not isinstance(record, dict):
        raise RecordError(f"record is {_kind(record)}, not a JSON object")
    if prompt_field is not None or response_field is not None:
        if prompt_field is None or response_field is None:
            raise TypeError("prompt_field and response_field must be given together")
        return [_field_pair(record, prompt_field, response_field)]
    parse = _PARSERS.get(fmt)
    if parse is None:
        raise UserError(f"unknown format {fmt!r}; expected one of: {', '.join(FORMATS)}")
    return parse(record)


# --- text fields -------------------------------------------------------------------------

_MISSING = object()


def _kind(value: object) -> str:
    """What a JSON value is, as a person would say it: 'a number', 'null', 'an object'."""
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _text(value: object, field: str) -> str:
    """The stripped text of a required field's value; RecordError naming the field otherwise."""
    if value.__class__ is not str:  # anything but a plain str is rare: keep it off the fast path
        value, field = _string(value, field)
    text = value.strip()
    if text:
        return text
    raise RecordError(f"field '{field}' is empty")


def _string(value: object, field: str) -> tuple[str, str]:
    """The string a value that is not a plain str stands for, and the field to name in errors.

    GPT4All's rule: a dict-valued field stands for its 'value' key, or else its 'description'.
    """
    if value is _MISSING:
        raise RecordError(f"missing field '{field}'")
    if isinstance(value, dict):
        key = _wrapped_text_key(value, field)
        value, field = value[key], f"{field}.{key}"
    if isinstance(value, str):
        return str(value), field  # str() turns a str subclass into a plain str
    raise RecordError(f"field '{field}' is {_kind(value)}, not a string")


def _wrapped_text_key(value: dict, field: str) -> str:
    if "value" in value:
        return "value"
    if "description" in value:
        return "description"
    raise RecordError(f"field '{field}' is an object without 'value' or 'description'")


def _optional_text(value: object, field: str) -> str | None:
    """Text of an optional field; None when it is missing, null or blank."""
    if value is None or value is _MISSING:
        return None
    if value.__class__ is str and not value.strip():
        return None
    return _text(value, field)


def _source(record: dict) -> str | None:
    source = record.get("source")
    return None if source is None else _optional_text(source, "source")


def _checked_prompt(prompt: str) -> str:
    # One character is never a usable instruction (GPT4All drops these).
    if len(prompt) <= 1:
        raise RecordError("prompt is a single character")
    return prompt


# --- flat formats ------------------------------------------------------------------------


def _flat_pair(record: dict, prompt: str, response: str) -> Pair:
    """The pair of a one-exchange record, with the record's own source."""
    return _new_pair(_checked_prompt(prompt), response, _source(record), None)


def _present_key(record: dict, key: str, alternative: str) -> str:
    """key, or alternative when only alternative is present (so a missing field is named key)."""
    return alternative if alternative in record and key not in record else key


def _gpt4all(record: dict) -> list[Pair]:
    prompt = _text(record.get("prompt", _MISSING), "prompt")
    response_key = _present_key(record, "response", "completion")
    response = _text(record.get(response_key, _MISSING), response_key)
    model, finish_reason = record.get("model"), record.get("finish_reason")
    if model is None and finish_reason is None:  # the common case: one lookup each, nothing more
        return [_flat_pair(record, prompt, response)]
    return [
        _new_pair(
            _checked_prompt(prompt),
            response,
            _source(record),
            None,
            _optional_text(model, "model"),
            _optional_text(finish_reason, "finish_reason"),
        )
    ]


# Alpaca's "no input" placeholders, compared lowercased with everything but letters and
# digits removed. Found in alpaca_5000.json: "", "No input", "Noinput", "No input.",
# "<No input>", "<no input>", "noinput", "No Input", "<No Input>", "< noinput >", "N/A",
# "None", "No input needed.", "<ninput>", "No input required", "No input required.",
# "\\<noinput\\>", '"<noinput>"', "{\\noinput}", "<Noinput>.", "(No input)", "[noinput]";
# "Not applicable" is a common spelling elsewhere.
_NO_INPUT = frozenset({"noinput", "ninput", "noinputneeded", "noinputrequired", "na", "none", "notapplicable"})
_LONGEST_NO_INPUT = 24  # longer inputs are real: skip normalising them


def _is_no_input(text: str) -> bool:
    if len(text) > _LONGEST_NO_INPUT:
        return False
    return "".join(ch for ch in text.lower() if ch.isalnum()) in _NO_INPUT


def _alpaca(record: dict) -> list[Pair]:
    instruction = _text(record.get("instruction", _MISSING), "instruction")
    response_key = _present_key(record, "output", "response")
    response = _text(record.get(response_key, _MISSING), response_key)
    given_input = _optional_text(record.get("input"), "input")
    if given_input is None or _is_no_input(given_input):
        prompt = instruction
    else:
        prompt = f"{instruction}\n\n{given_input}"
    return [_flat_pair(record, prompt, response)]


def _dolly(record: dict) -> list[Pair]:
    instruction = _text(record.get("instruction", _MISSING), "instruction")
    response = _text(record.get("response", _MISSING), "response")
    context = _optional_text(record.get("context"), "context")
    prompt = instruction if context is None else f"{instruction}\n\n{context}"
    return [_flat_pair(record, prompt, response)]


def _field_pair(record: dict, prompt_field: str, response_field: str) -> Pair:
    prompt = _text(record.get(prompt_field, _MISSING), prompt_field)
    response = _text(record.get(response_field, _MISSING), response_field)
    return _flat_pair(record, prompt, response)


# --- conversations -----------------------------------------------------------------------

_CHAT_ROLES = {
    "system": "system",
    "developer": "system",
    "human": "user",
    "user": "user",
    "prompter": "user",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "bing": "assistant",
    "bard": "assistant",
    "assistant": "assistant",
    "model": "assistant",
}


def _last_answer(roles: list[str]) -> int:
    """Index of the final assistant turn: the turns after it are dropped."""
    for index in range(len(roles) - 1, -1, -1):
        if roles[index] == "assistant":
            return index
    raise RecordError("conversation has no assistant answer")


def _conversation_pair(messages: list[dict], source: str | None) -> Pair:
    """The multi-turn rule, on turns that end with the final assistant answer."""
    user_turns = [message["content"] for message in messages if message["role"] == "user"]
    if not user_turns:
        raise RecordError("conversation has no user turn before the assistant answer")
    has_system = any(message["role"] == "system" for message in messages)
    keep_turns = len(user_turns) > 1 or has_system
    return _new_pair(
        _checked_prompt(user_turns[-1]),
        messages[-1]["content"],
        source,
        messages if keep_turns else None,
    )


def _list_field(record: dict, field: str) -> list:
    value = record.get(field, _MISSING)
    if isinstance(value, list):
        return value
    if value is _MISSING:
        raise RecordError(f"missing field '{field}'")
    raise RecordError(f"field '{field}' is {_kind(value)}, not a list")


def _object(value: object, field: str) -> dict:
    if isinstance(value, dict):
        return value
    raise RecordError(f"field '{field}' is {_kind(value)}, not an object")


def _objects(values: list, field: str) -> list[dict]:
    return [_object(value, f"{field}[{index}]") for index, value in enumerate(values)]


def _field_name(where: str, key: str) -> str:
    """JSON-path name of key inside the object at where ('' for the record itself)."""
    return f"{where}.{key}" if where else key


def _role(turn: dict, where: str, key: str, roles: dict[str, str]) -> str:
    """The normalised role ("system", "user", "assistant") of the turn at where."""
    name, field = _string(turn.get(key, _MISSING), _field_name(where, key))
    role = roles.get(name.strip().lower())
    if role is None:
        raise RecordError(f"field '{field}' has unknown role '{name}'")
    return role


def _sharegpt_keys(turn: dict) -> tuple[str, str]:
    """(role key, text key): ShareGPT's from/value, or role/content as some exports spell them."""
    if "from" not in turn and "role" in turn:
        return "role", "content"
    return "from", "value"


def _sharegpt(record: dict) -> list[Pair]:
    turns = _objects(_list_field(record, "conversations"), "conversations")
    roles, text_keys = [], []
    for index, turn in enumerate(turns):
        role_key, text_key = _sharegpt_keys(turn)
        roles.append(_role(turn, f"conversations[{index}]", role_key, _CHAT_ROLES))
        text_keys.append(text_key)
    end = _last_answer(roles)
    messages = []
    for index in range(end + 1):
        field = f"conversations[{index}].{text_keys[index]}"
        content = _text(turns[index].get(text_keys[index], _MISSING), field)
        messages.append({"role": roles[index], "content": content})
    return [_conversation_pair(messages, _source(record))]


def _openai_content(content: object, field: str) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if not isinstance(content, list):
        return _text(content, field)
    texts = [
        part["text"]
        for part in content
        if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
    ]
    if not texts:
        raise RecordError(f"field '{field}' has no text part")
    return _text("\n".join(texts), field)


def _openai(record: dict) -> list[Pair]:
    turns = _objects(_list_field(record, "messages"), "messages")
    roles = [_role(turn, f"messages[{i}]", "role", _CHAT_ROLES) for i, turn in enumerate(turns)]
    end = _last_answer(roles)
    messages = []
    for index in range(end + 1):
        content = _openai_content(turns[index].get("content", _MISSING), f"messages[{index}].content")
        messages.append({"role": roles[index], "content": content})
    return [_conversation_pair(messages, _source(record))]


# "\n\nHuman: " / "\n\nAssistant: " open each turn; the transcript is stripped first, so the
# first marker sits at the very start.
_HH_MARKER = re.compile(r"(?:^|\n\n)(Human|Assistant):")
_HH_ROLES = {"Human": "user", "Assistant": "assistant"}


def _hh(record: dict) -> list[Pair]:
    parts = _HH_MARKER.split(_text(record.get("chosen", _MISSING), "chosen"))
    if len(parts) == 1:
        raise RecordError("field 'chosen' has no 'Human:' or 'Assistant:' turn")
    preamble, speakers, texts = parts[0].strip(), parts[1::2], parts[2::2]
    end = _last_answer([_HH_ROLES[speaker] for speaker in speakers])
    messages = [{"role": "system", "content": preamble}] if preamble else []
    for speaker, text in zip(speakers[: end + 1], texts):
        content = text.strip()
        if not content:
            raise RecordError(f"field 'chosen' has an empty '{speaker}:' turn")
        messages.append({"role": _HH_ROLES[speaker], "content": content})
    return [_conversation_pair(messages, _source(record))]


# --- OpenAssistant trees -----------------------------------------------------------------

_OASST_ROLES = {"prompter": "user", "assistant": "assistant"}


# A path through an OpenAssistant tree: (role, message, JSON path of the message) per message.
_Path = list[tuple[str, dict, str]]


def _is_oasst(record: dict) -> bool:
    if "message_tree_id" in record:
        return True
    prompt = record.get("prompt")
    if isinstance(prompt, dict) and "replies" in prompt:
        return True
    return "message_id" in record and "replies" in record


def _oasst(record: dict) -> list[Pair]:
    if isinstance(record.get("prompt"), dict):
        root, where = record["prompt"], "prompt"
    else:
        root, where = record, ""
    if root.get("deleted") is True:
        raise RecordError("root message is deleted")
    paths: list[_Path] = []
    _collect_answer_paths(root, where, [], paths)
    if not paths:
        raise RecordError("conversation has no assistant answer")
    source = _source(record)
    return [_conversation_pair(_path_messages(path), source) for path in paths]


def _collect_answer_paths(message: dict, where: str, path: _Path, paths: list[_Path]) -> bool:
    """Append to paths each path from the root through message that ends at an assistant
    message with no assistant message below it; return whether message or anything below it
    is an assistant message. Deleted replies are skipped with everything below them."""
    role = _role(message, where, "role", _OASST_ROLES)
    path = [*path, (role, message, where)]
    answer_below = False
    for index, reply in enumerate(_replies(message, where)):
        reply_where = _field_name(where, f"replies[{index}]")
        reply = _object(reply, reply_where)
        if reply.get("deleted") is not True:
            answer_below |= _collect_answer_paths(reply, reply_where, path, paths)
    is_answer = role == "assistant"
    if is_answer and not answer_below:
        paths.append(path)
    return is_answer or answer_below


def _replies(message: dict, where: str) -> list:
    replies = message.get("replies")
    if replies is None:
        return []
    if isinstance(replies, list):
        return replies
    raise RecordError(f"field '{_field_name(where, 'replies')}' is {_kind(replies)}, not a list")


def _path_messages(path: _Path) -> list[dict]:
    return [
        {"role": role, "content": _text(message.get("text", _MISSING), _field_name(where, "text"))}
        for role, message, where in path
    ]


_PARSERS = {
    "gpt4all": _gpt4all,
    "alpaca": _alpaca,
    "dolly": _dolly,
    "sharegpt": _sharegpt,
    "openai": _openai,
    "oasst": _oasst,
    "hh": _hh,
}
