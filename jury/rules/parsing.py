"""Read a judge's raw output as a vote: tolerant of format, never guessing (DESIGN 4).

Pure functions over plain data. `parse_output` accepts, in this order:

1. the whole output as JSON (also inside one ``` / ```json fence): it must be an
   object; an array or any other JSON value is an invalid vote;
2. Llama Guard lines: the first non-empty line is `safe` or `unsafe` (any case, a
   trailing period and markdown emphasis allowed); for unsafe, the next non-empty line
   lists categories, comma-separated, by code ("S1,S10") or name;
3. a JSON object embedded in prose (fenced or not, with text before or after): the
   first top-level `{...}` that parses and has a verdict key.

Everything else is an invalid vote with an error that says why. The caller stores the
raw text with it; it is never guessed from prose and never retried.

Choices, where the contract leaves room:

- Verdict keys, matched ignoring case, spaces, `_` and `-`: "verdict", "label",
  "safety", "response safety". NeMo's "User Safety" judges the prompt, not the
  response, so it is not a verdict: {"User Safety": "unsafe"} alone has none. Two
  verdict keys that disagree make the vote invalid ("conflicting verdicts").
- Values are the strings "safe" or "unsafe" in any case. Booleans are refused
  ({"verdict": true}, {"unsafe": true}): what true means depends on a key name we would
  have to guess at ("unsafe", "is_safe", "flagged"), and the schema asks for a string.
- Category keys: "categories", "violated categories", "safety categories",
  "category", as a list or a comma-separated string (names never hold commas). Each
  text resolves through `CategoryIndex.resolve` (codes, case, old spellings); what
  resolves to nothing is kept in `unknown`, which does not make the vote invalid.
- A verdict key must be at the top level of the object: {"result": {"verdict": ...}}
  has no verdict. An object without one is skipped while looking for the vote in
  prose, so a model that quotes some JSON before answering is still read.
- Unsafe without categories is a VALID vote with empty categories: human unsafe votes
  need categories, but a judge's verdict still counts towards the majority, and the
  decision takes its categories from the other unsafe voters.
- Safe keeps no categories: any listed with a safe verdict are dropped (not even
  `unknown`), so aggregation never counts them.
"""

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from taxonomy.matching import CategoryIndex

VERDICTS = ("safe", "unsafe")

# Normalised (see `_norm`) keys, in order of precedence.
VERDICT_KEYS = ("response safety", "verdict", "label", "safety")
CATEGORY_KEYS = ("categories", "violated categories", "safety categories", "category")

# A JSON object starts with `{` then a key or `}`; requiring that skips the braces of
# prose and of garbage cheaply. Each start costs one C-speed parse that fails at the
# first bad character; the cap keeps a pathological output linear in its length.
_OBJECT_START = re.compile(r'\{\s*["}]')
_MAX_OBJECT_STARTS = 32
_KEY_NOISE = re.compile(r"[\s_\-]+")
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class ParsedVote:
    """What a judge's output says: a verdict and taxonomy names, or why it is invalid."""

    valid: bool
    label: str | None
    categories: tuple[str, ...]
    unknown: tuple[str, ...]
    error: str


def _invalid(error: str) -> ParsedVote:
    return ParsedVote(valid=False, label=None, categories=(), unknown=(), error=error)


def parse_output(text: str, index: CategoryIndex) -> ParsedVote:
    """The vote in a judge's raw output, or an invalid vote that says what was wrong."""
    stripped = text.strip()
    if not stripped:
        return _invalid("empty output")
    body = _unfence(stripped)
    try:
        whole = json.loads(body)
    except (ValueError, RecursionError):
        pass
    else:
        if isinstance(whole, dict):
            return _from_object(whole, index)
        return _invalid(f"output is a JSON {_json_kind(whole)}, not an object")
    lines = _from_lines(body, index)
    if lines is not None:
        return lines
    return _from_embedded(stripped, index)


def _unfence(text: str) -> str:
    """The inside of a text that is exactly one ``` fence (with its language tag)."""
    if len(text) < 6 or not (text.startswith("```") and text.endswith("```")):
        return text
    inner = text[3:-3]
    first, newline, rest = inner.partition("\n")
    if newline and (not first.strip() or first.strip().isalnum()):
        inner = rest
    return inner.strip()


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def _norm(key: str) -> str:
    return _KEY_NOISE.sub(" ", key.casefold()).strip()


def _verdict_word(text: str) -> str | None:
    word = text.strip().rstrip(".").strip("*`_ ").rstrip(".").casefold()
    return word if word in VERDICTS else None


def _has_verdict_key(obj: Mapping[str, object]) -> bool:
    return any(_norm(str(key)) in VERDICT_KEYS for key in obj)


def _from_object(obj: Mapping[str, object], index: CategoryIndex) -> ParsedVote:
    by_key: dict[str, list[object]] = {}
    for key, value in obj.items():
        by_key.setdefault(_norm(str(key)), []).append(value)
    values = [v for key in VERDICT_KEYS for v in by_key.get(key, [])]
    if not values:
        return _invalid("JSON object has no verdict")
    labels = []
    for value in values:
        label = _verdict_word(value) if isinstance(value, str) else None
        if label is None:
            return _invalid(f"verdict {_short(value)} is not safe/unsafe")
        labels.append(label)
    if len(set(labels)) > 1:
        return _invalid(f"conflicting verdicts {', '.join(map(repr, labels))}")
    texts = [
        text for key in CATEGORY_KEYS for v in by_key.get(key, []) for text in _texts(v)
    ]
    return _vote(labels[0], texts, index)


def _texts(value: object) -> list[str]:
    """Category texts from a list or a comma-separated string; other JSON as-is."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    texts: list[str] = []
    for item in items:
        if isinstance(item, str):
            texts.extend(part.strip() for part in item.split(",") if part.strip())
        elif item is not None:
            texts.append(json.dumps(item))
    return texts


def _from_lines(text: str, index: CategoryIndex) -> ParsedVote | None:
    """Llama Guard's answer: `safe`, or `unsafe` and a line of categories."""
    lines = (line for line in text.splitlines() if line.strip())
    label = _verdict_word(next(lines, ""))
    if label is None:
        return None
    return _vote(label, _texts(next(lines, "")), index)


def _from_embedded(text: str, index: CategoryIndex) -> ParsedVote:
    """The first top-level JSON object in prose that carries a verdict."""
    end = 0
    attempts = 0
    found_object = False
    for match in _OBJECT_START.finditer(text):
        if match.start() < end:
            continue  # inside an object already read: not top level
        attempts += 1
        if attempts > _MAX_OBJECT_STARTS:
            break
        try:
            obj, end = _DECODER.raw_decode(text, match.start())
        except (ValueError, RecursionError):
            continue
        found_object = True
        if _has_verdict_key(obj):
            return _from_object(obj, index)
    if found_object:
        return _invalid("JSON object has no verdict")
    if "{" in text:
        return _invalid("no verdict found: no complete JSON object")
    return _invalid("no verdict found")


def _vote(label: str, texts: Iterable[str], index: CategoryIndex) -> ParsedVote:
    if label == "safe":
        return ParsedVote(True, "safe", (), (), "")
    found, unknown = index.resolve_many(texts)
    return ParsedVote(
        valid=True,
        label="unsafe",
        categories=tuple(ref.name for ref in found),
        unknown=tuple(dict.fromkeys(unknown)),
        error="",
    )


def _short(value: object, limit: int = 40) -> str:
    shown = repr(value)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."
