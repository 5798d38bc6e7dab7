"""The row layouts an export writes (DESIGN section 6), as pure functions.

- `AEGIS_COLUMNS`: the Aegis 2.0 release's nine columns, in its order.
- `csv_cell`: a cell a spreadsheet will show as text, never run as a formula.
- `guard_messages`: one guard fine-tuning example in the chat layout of the NeMo
  Guardrails content-safety prompt, so a model trained on it drops in there.
- `topic_messages`: a topic-following (CantTalkAboutThis) conversation as chat.
"""

import json
import re
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

AEGIS_COLUMNS = (
    "id",
    "prompt",
    "response",
    "prompt_label",
    "response_label",
    "prompt_label_source",
    "response_label_source",
    "violated_categories",
    "reconstruction_id_if_redacted",
)

# What a spreadsheet reads as the start of a formula (OWASP's CSV injection list,
# with the tab and carriage return that some of them also honour).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: str | None) -> str:
    """A CSV cell: None as empty, text that starts like a formula behind a `'`."""
    if not value:
        return ""
    if value[0] in FORMULA_START:
        return "'" + value
    return value


# --- the guard fine-tuning layout -----------------------------------------------------

GUARD_TASK = (
    "Task: Check if there is unsafe content in the user or agent messages in the "
    "below conversation in accordance with our safety policy with the below "
    "categories. Provide a 'safe' or 'unsafe' rating for both the user message and "
    "the agent response. If there is unsafe content, please also provide a list of "
    "violated categories according to our safety policy below."
)
GUARD_OUTPUT = (
    "Provide your safety assessment for the above conversation in the below output "
    "JSON format:\n"
    '{"User Safety": safe or unsafe rating for the user message, "Response Safety": '
    "safe or unsafe rating for the agent response. Omit if no agent response "
    'present. "Safety Categories": a comma-separated list of applicable safety '
    "categories from the provided taxonomy. Omit if all safe.}\n\n"
    "Do not include anything other than the output JSON in your response.\n"
    "Output JSON: "
)
_SPACE = re.compile(r"\s+")


def category_block(categories: Sequence[tuple[str, str]]) -> str:
    """`S1: Violence.` ... one line per (code, name), between the section markers."""
    lines = "\n".join(f"{code}: {name}." for code, name in categories)
    return (
        f"<BEGIN UNSAFE CONTENT CATEGORIES>\n{lines}\n<END UNSAFE CONTENT CATEGORIES>"
    )


def guard_user_message(
    *, prompt: str, response: str | None, categories_block: str
) -> str:
    """The user message of one example: task, categories, conversation, output."""
    conversation = f"user: {prompt}"
    if response is not None:
        conversation += f"\n\nresponse: agent: {response}"
    return (
        f"{GUARD_TASK}\n\n{categories_block}\n\n<BEGIN CONVERSATION>\n\n"
        f"{conversation}\n\n<END CONVERSATION>\n\n{GUARD_OUTPUT}"
    )


def guard_answer(
    *, prompt_label: str, response_label: str | None, violated_categories: str
) -> str:
    """The assistant message: the JSON a guard model should answer with.

    "Response Safety" only when there is a response label, "Safety Categories" only
    when something is unsafe and categories were given.
    """
    answer: dict[str, str] = {"User Safety": prompt_label}
    if response_label is not None:
        answer["Response Safety"] = response_label
    if violated_categories and "unsafe" in (prompt_label, response_label):
        answer["Safety Categories"] = violated_categories
    return json.dumps(answer, ensure_ascii=False)


def guard_messages(
    row: Mapping[str, Any], *, categories_block: str
) -> list[dict[str, str]]:
    """The chat messages of one Aegis-layout row (see `AEGIS_COLUMNS`)."""
    return [
        {
            "role": "user",
            "content": guard_user_message(
                prompt=row["prompt"],
                response=row["response"],
                categories_block=categories_block,
            ),
        },
        {
            "role": "assistant",
            "content": guard_answer(
                prompt_label=row["prompt_label"],
                response_label=row["response_label"],
                violated_categories=row["violated_categories"] or "",
            ),
        },
    ]


# --- topic following (CantTalkAboutThis) ----------------------------------------------

TOPIC_FIELDS = ("domain", "scenario", "system_instruction", "conversation")


class BadTopicRow(ValueError):
    """A topic-following record without the fields the blend needs."""


def topic_messages(record: Mapping[str, Any], *, line: int) -> list[dict[str, str]]:
    """A CantTalkAboutThis record as chat: its system instruction, then its turns.

    `conversation` is a list of {"role", "content"} turns (roles user/assistant).
    Raises BadTopicRow naming the line and field.
    """
    missing = [f for f in TOPIC_FIELDS if f not in record]
    if missing:
        raise BadTopicRow(f"line {line}: missing field {missing[0]!r}")
    system = record["system_instruction"]
    if not isinstance(system, str) or not system.strip():
        raise BadTopicRow(f"line {line}: 'system_instruction' is empty")
    turns = record["conversation"]
    if not isinstance(turns, list) or not turns:
        raise BadTopicRow(f"line {line}: 'conversation' must be a non-empty list")
    messages = [{"role": "system", "content": system}]
    for i, turn in enumerate(turns, start=1):
        if not isinstance(turn, Mapping):
            raise BadTopicRow(f"line {line}: conversation turn {i} is not an object")
        role = str(turn.get("role", "")).strip().lower()
        if role not in ("user", "assistant"):
            raise BadTopicRow(
                f"line {line}: conversation turn {i} has role {turn.get('role')!r}"
                " (want user or assistant)"
            )
        content = turn.get("content")
        if not isinstance(content, str):
            raise BadTopicRow(f"line {line}: conversation turn {i} has no content")
        messages.append({"role": role, "content": content})
    return messages


def topic_key(record: Mapping[str, Any]) -> str:
    """What groups topic-following rows for the split: the scenario in its domain."""
    scenario = _SPACE.sub(" ", str(record.get("scenario", ""))).strip().casefold()
    return f"topic\x00{record.get('domain', '')}\x00{scenario}"


# The C string encoder json.dumps itself uses with ensure_ascii off: the same bytes,
# without json.dumps's per-call set-up (a third of an export's time otherwise).
_quote: Callable[[str], str] = (
    getattr(json.encoder, "c_encode_basestring", None)
    or json.encoder.py_encode_basestring
)


def json_value(value: str | None) -> str:
    """`json.dumps(value, ensure_ascii=False)` for a string or None."""
    return "null" if value is None else _quote(value)


def json_object(row: Mapping[str, str | None], columns: Sequence[str]) -> str:
    """`json.dumps({c: row[c] for c in columns}, ensure_ascii=False)`, for rows
    whose values are strings or None."""
    return "{" + ", ".join(f"{_quote(c)}: {json_value(row[c])}" for c in columns) + "}"


def aegis_json(row: Mapping[str, str | None]) -> str:
    """`json_object(row, AEGIS_COLUMNS)`, spelled out: an export writes one per row."""
    v = json_value
    return (
        f'{{"id": {v(row["id"])}, "prompt": {v(row["prompt"])}, '
        f'"response": {v(row["response"])}, '
        f'"prompt_label": {v(row["prompt_label"])}, '
        f'"response_label": {v(row["response_label"])}, '
        f'"prompt_label_source": {v(row["prompt_label_source"])}, '
        f'"response_label_source": {v(row["response_label_source"])}, '
        f'"violated_categories": {v(row["violated_categories"])}, '
        f'"reconstruction_id_if_redacted": '
        f"{v(row['reconstruction_id_if_redacted'])}}}"
    )


def _escaped(text: str) -> str:
    """`text` as the inside of a JSON string (ensure_ascii off, as the files are)."""
    return _quote(text)[1:-1]


@lru_cache(maxsize=16)
def _guard_parts(categories_block: str) -> tuple[str, str, str]:
    head = f"{GUARD_TASK}\n\n{categories_block}\n\n<BEGIN CONVERSATION>\n\nuser: "
    tail = f"\n\n<END CONVERSATION>\n\n{GUARD_OUTPUT}"
    return _escaped(head), _escaped("\n\nresponse: agent: "), _escaped(tail)


@lru_cache(maxsize=4096)
def _answer_json(prompt_label: str, response_label: str | None, categories: str) -> str:
    return _quote(
        guard_answer(
            prompt_label=prompt_label,
            response_label=response_label,
            violated_categories=categories,
        )
    )


def guard_example_json(row: Mapping[str, Any], *, categories_block: str) -> str:
    """`json.dumps({"id": ..., "messages": guard_messages(row)})`, byte for byte,
    without escaping the task and the category list again for every row (JSON
    escapes character by character, so the escaped parts can be joined)."""
    head, agent, tail = _guard_parts(categories_block)
    content = head + _escaped(row["prompt"])
    if row["response"] is not None:
        content += agent + _escaped(row["response"])
    answer = _answer_json(
        row["prompt_label"], row["response_label"], row["violated_categories"] or ""
    )
    return (
        f'{{"id": {_quote(row["id"])}, "messages": '
        f'[{{"role": "user", "content": "{content}{tail}"}}, '
        f'{{"role": "assistant", "content": {answer}}}]}}'
    )
