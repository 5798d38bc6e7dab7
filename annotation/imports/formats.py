"""Turn records of each supported dataset into dialogues (and votes), without the ORM.

Each format is a function from one `Record` to a `DialogueIn` or a list of
`RowError`s. `detect_format` picks one from the columns when the user did not say.
"""

import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from annotation.imports.limits import nests_deeper
from annotation.imports.readers import Record, RowError, Source
from annotation.rules.labels import LABELS as LABEL_VALUES

ROLES = {
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "agent": "assistant",
    "bot": "assistant",
    "gpt": "assistant",
    "model": "assistant",
    "system": "system",
}
OPENAI_FLAGS = ("S", "H", "V", "HR", "SH", "S3", "H2", "V2")
AEGIS2_COLUMNS = (
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
REDACTED = "REDACTED"


@dataclass
class FileVote:
    """A human vote from a file; `annotator` is a username to find or create."""

    annotator: str
    label: str
    response_label: str | None = None
    categories: list[str] = field(default_factory=list)
    other_text: str = ""
    comment: str = ""
    time_spent_ms: int | None = None
    annotator_email: str = ""
    # Older tools had no free text for Other; their votes are kept as they are.
    require_other_text: bool = True
    # Datasets without categories (XSTest) keep their unsafe votes without any.
    require_categories: bool = True
    # What the file said beyond the three values (stored in Label.details).
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class FileReference:
    """A released final label (Aegis 2.0), kept beside the dialogue as a reference."""

    prompt_label: str
    response_label: str | None
    categories: list[str]
    prompt_label_source: str
    response_label_source: str


@dataclass
class DialogueIn:
    line: int
    turns: list[dict[str, str]]
    source: str
    external_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    augmentation: str = ""
    reconstruction_id: str | None = None
    votes: list[FileVote] = field(default_factory=list)
    reference: FileReference | None = None
    imported_from: str = ""

    @property
    def content_hash(self) -> str:
        return content_hash(self.turns, self.reconstruction_id)

    @property
    def prompt_and_response(self) -> tuple[str, str | None]:
        return prompt_and_response(self.turns)


@dataclass
class FormatOptions:
    hh_transcript: str = "chosen"  # or "rejected"
    hh_first_turn_only: bool = False


ParseResult = DialogueIn | list[RowError]


_compact_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def content_hash(
    turns: list[dict[str, str]], reconstruction_id: str | None = None
) -> str:
    """sha256 of the exact roles and texts, in order, with no normalisation.

    A redacted dialogue has no text of its own, so its reconstruction id is hashed too:
    two different redacted sources are not duplicates of each other.
    """
    payload = _compact_json([[t["role"], t["content"]] for t in turns])
    if reconstruction_id:
        payload += "\x00" + reconstruction_id
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def prompt_and_response(turns: list[dict[str, str]]) -> tuple[str, str | None]:
    """The last user turn and the assistant turn that answers it (None if unanswered)."""
    last_user = max(i for i, t in enumerate(turns) if t["role"] == "user")
    answer = next(
        (t["content"] for t in turns[last_user + 1 :] if t["role"] == "assistant"), None
    )
    return turns[last_user]["content"], answer


def cell(data: dict[str, Any], key: str) -> str | None:
    """A text cell, or None when missing, empty or NaN (pandas and CSV write both)."""
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    text = value if isinstance(value, str) else str(value)
    return text if text.strip() else None


def _id(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def normalise_label(value: str | None) -> str | None:
    """'Safe', 'needs caution', 'Needs_Caution', 'UNSAFE' -> the stored value."""
    if value is None:
        return None
    key = re.sub(r"[\s\-]+", "_", value.strip().lower())
    return key if key in LABEL_VALUES else None


class Context:
    """What every parser needs to know about the file it reads."""

    def __init__(self, source: Source, fmt: str, options: FormatOptions) -> None:
        self.file = source.display_name
        self.format = fmt
        self.options = options
        self.limits = source.limits
        stem = source.display_name.rsplit("/", 1)[-1]
        match = re.search(r"xstest_v2_completions_([a-z0-9]+)", stem)
        self.xstest_model = match.group(1) if match else ""

    def error(self, record: Record, fld: str, message: str) -> list[RowError]:
        return [RowError(self.file, record.line, fld, message)]


def _metadata(data: dict[str, Any], skip: tuple[str, ...]) -> dict[str, Any]:
    return {key: _plain(value) for key, value in data.items() if key not in skip}


def _plain(value: Any) -> Any:
    """A JSON-ready copy of a cell; Parquet gives numpy values, dates and decimals."""
    if hasattr(value, "tolist"):  # numpy values from Parquet
        value = value.tolist()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float):
        return value
    if hasattr(value, "isoformat"):  # datetime, date, time
        return value.isoformat()
    return str(value)  # Decimal, bytes, ...


def _prompt_row(
    record: Record,
    ctx: Context,
    prompt_key: str,
    id_key: str | None,
    skip: tuple[str, ...],
) -> ParseResult:
    prompt = cell(record.data, prompt_key)
    if prompt is None:
        return ctx.error(record, prompt_key, "is empty or missing")
    return DialogueIn(
        line=record.line,
        turns=[{"role": "user", "content": prompt}],
        source=ctx.format,
        external_id=_id(record.data.get(id_key)) if id_key else None,
        metadata=_metadata(record.data, (prompt_key, *skip)),
    )


def parse_turns(
    value: Any, record: Record, ctx: Context, key: str
) -> list[dict[str, str]] | list[RowError]:
    """Validate a `turns` value: a list (or JSON text of one) of role/content objects."""
    if isinstance(value, str):
        if nests_deeper(value, ctx.limits.json_depth) is not None:
            return ctx.error(record, key, f"is {ctx.limits.too_deep()}")
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            return ctx.error(record, key, f"is not valid JSON: {exc.msg}")
    if hasattr(value, "tolist"):
        value = value.tolist()
    if not isinstance(value, list) or not value:
        return ctx.error(
            record, key, "must be a non-empty list of {role, content} objects"
        )
    turns: list[dict[str, str]] = []
    for i, turn in enumerate(value, start=1):
        if not isinstance(turn, dict):
            return ctx.error(
                record, f"{key}[{i}]", "must be an object with role and content"
            )
        role = ROLES.get(str(turn.get("role", "")).strip().lower())
        content = turn.get("content")
        if role is None:
            return ctx.error(
                record,
                f"{key}[{i}].role",
                f"unknown role {turn.get('role')!r} (use user or assistant)",
            )
        if not isinstance(content, str) or not content.strip():
            return ctx.error(record, f"{key}[{i}].content", "is empty or not text")
        turns.append({"role": role, "content": content})
    if not any(t["role"] == "user" for t in turns):
        return ctx.error(record, key, "has no user turn")
    return turns


def parse_generic(record: Record, ctx: Context) -> ParseResult:
    data = record.data
    if cell(data, "turns") is not None or isinstance(data.get("turns"), list):
        turns = parse_turns(data["turns"], record, ctx, "turns")
        if turns and isinstance(turns[0], RowError):
            return turns
        skip: tuple[str, ...] = ("id", "turns")
    else:
        prompt = cell(data, "prompt")
        if prompt is None:
            return ctx.error(
                record, "prompt", "is empty or missing (give prompt or turns)"
            )
        turns = [{"role": "user", "content": prompt}]
        response = cell(data, "response")
        if response is not None:
            turns.append({"role": "assistant", "content": response})
        skip = ("id", "prompt", "response")
    return DialogueIn(
        line=record.line,
        turns=turns,  # type: ignore[arg-type]
        source=ctx.format,
        external_id=_id(data.get("id")),
        metadata=_metadata(data, skip),
    )


def parse_aegis2(record: Record, ctx: Context) -> ParseResult:
    data = record.data
    missing = [c for c in AEGIS2_COLUMNS if c not in data]
    if missing:
        return ctx.error(record, missing[0], "missing column of the Aegis 2.0 layout")
    external_id = _id(data["id"])
    if external_id is None:
        return ctx.error(record, "id", "is empty")
    prompt = cell(data, "prompt")
    if prompt is None:
        return ctx.error(record, "prompt", "is empty")
    prompt_label = normalise_label(cell(data, "prompt_label"))
    if prompt_label not in ("safe", "unsafe"):
        return ctx.error(
            record,
            "prompt_label",
            f"must be safe or unsafe, not {data['prompt_label']!r}",
        )
    response = cell(data, "response")
    response_label_text = cell(data, "response_label")
    response_label = normalise_label(response_label_text)
    if response_label_text is not None and response_label not in ("safe", "unsafe"):
        return ctx.error(
            record,
            "response_label",
            f"must be safe, unsafe or empty, not {response_label_text!r}",
        )
    if response is None and response_label is not None:
        return ctx.error(record, "response_label", "is set but the row has no response")
    reconstruction_id = _id(data.get("reconstruction_id_if_redacted"))
    if reconstruction_id is None and prompt == REDACTED:
        return ctx.error(
            record,
            "reconstruction_id_if_redacted",
            "a REDACTED prompt needs the id of its source row",
        )
    response_source = cell(data, "response_label_source") or ""
    turns = [{"role": "user", "content": prompt}]
    if response is not None:
        turns.append({"role": "assistant", "content": response})
    from taxonomy.matching import split_category_list

    return DialogueIn(
        line=record.line,
        turns=turns,
        source=ctx.format,
        external_id=external_id,
        reconstruction_id=reconstruction_id,
        augmentation="refusal"
        if response_source == "refusal_data_augmentation"
        else "",
        reference=FileReference(
            prompt_label=prompt_label,
            response_label=response_label,
            categories=split_category_list(data.get("violated_categories")),
            prompt_label_source=cell(data, "prompt_label_source") or "",
            response_label_source=response_source,
        ),
        metadata=_metadata(data, AEGIS2_COLUMNS),
    )


_TRANSCRIPT_MARK = re.compile(r"(?:^|\n\n)(Human|Assistant):")


def split_transcript(text: str) -> list[dict[str, str]]:
    """Split an HH-RLHF transcript at "\\n\\nHuman:" / "\\n\\nAssistant:" markers."""
    parts = _TRANSCRIPT_MARK.split(text)
    turns: list[dict[str, str]] = []
    for speaker, content in zip(parts[1::2], parts[2::2], strict=False):
        content = content.strip()
        role = "user" if speaker == "Human" else "assistant"
        if turns and turns[-1]["role"] == role:
            # Two markers in a row: keep the text in one turn rather than drop it.
            turns[-1]["content"] += "\n\n" + content
        elif content:
            turns.append({"role": role, "content": content})
    return turns


def parse_hh_rlhf(record: Record, ctx: Context) -> ParseResult:
    key = ctx.options.hh_transcript
    text = cell(record.data, key)
    if text is None:
        return ctx.error(record, key, "is empty or missing")
    turns = split_transcript(text)
    if not turns or turns[0]["role"] != "user":
        return ctx.error(record, key, "does not start with a \\n\\nHuman: turn")
    if ctx.options.hh_first_turn_only:
        turns = turns[:1]
    return DialogueIn(
        line=record.line,
        turns=turns,
        source=ctx.format,
        metadata={"transcript": key, "source_line": record.line},
    )


def parse_aegis1(record: Record, ctx: Context) -> ParseResult:
    data = record.data
    external_id = _id(data.get("id"))
    text = cell(data, "text")
    if text is None:
        return ctx.error(record, "text", "is empty or missing")
    text_type = (cell(data, "text_type") or "").strip()
    turns = [{"role": "user", "content": text}]
    if text_type == "llm_response":
        split = _split_role_lines(text)
        if split:
            turns = split
    votes: list[FileVote] = []
    slot_keys = sorted(
        (k for k in data if re.fullmatch(r"labels_\d+", k)),
        key=lambda k: int(k.split("_")[1]),
    )
    for key in slot_keys:
        value = cell(data, key)
        if value is None:
            continue
        parts = [p.strip() for p in value.split(",") if p.strip()]
        lowered = {p.lower() for p in parts}
        cats: list[str]
        if lowered <= {"safe"}:
            label, cats = "safe", []
        elif lowered <= {"safe", "needs caution"}:
            label, cats = "needs_caution", []
        else:
            label = "unsafe"
            cats = [p for p in parts if p.lower() not in {"safe", "needs caution"}]
        votes.append(
            FileVote(
                annotator=f"aegis1-slot-{key.split('_')[1]}",
                label=label,
                categories=cats,
                require_other_text=False,
            )
        )
    return DialogueIn(
        line=record.line,
        turns=turns,
        source=ctx.format,
        external_id=external_id,
        votes=votes,
        imported_from="aegis1",
        metadata=_metadata(data, ("id", "text", *slot_keys)),
    )


_ROLE_LINE = re.compile(r"(?:^|\n)\s*(user|human|assistant|agent)\s*:", re.IGNORECASE)


def _split_role_lines(text: str) -> list[dict[str, str]]:
    parts = _ROLE_LINE.split(text)
    if len(parts) < 3 or parts[0].strip():
        return []
    turns = [
        {"role": ROLES[speaker.lower()], "content": content.strip()}
        for speaker, content in zip(parts[1::2], parts[2::2], strict=False)
        if content.strip()
    ]
    return turns if turns and turns[0]["role"] == "user" else []


def parse_xstest(record: Record, ctx: Context) -> ParseResult:
    return _prompt_row(record, ctx, "prompt", "id", ("id",))


XSTEST_CLASSES = ("1_full_compliance", "2_full_refusal", "3_partial_refusal")
# The two human annotators of the XSTest v2 completions: column -> username.
XSTEST_ANNOTATORS = {
    "annotation_1": "xstest-annotator-1",
    "annotation_2": "xstest-annotator-2",
}
# How safe a completion is, by its class, when the prompt was one of XSTest's unsafe
# (contrast_) prompts; on a safe prompt complying or refusing is never a hazard.
_XSTEST_UNSAFE_PROMPT_RESPONSE = {
    "1_full_compliance": "unsafe",
    "3_partial_refusal": "needs_caution",
    "2_full_refusal": "safe",
}


def xstest_prompt_label(prompt_type: str) -> str:
    """XSTest's own label of a prompt: its `contrast_*` types are the unsafe ones."""
    return "unsafe" if prompt_type.startswith("contrast_") else "safe"


def xstest_response_label(prompt_label: str, xstest_class: str) -> str:
    """The safety of a completion an XSTest annotator put in `xstest_class`."""
    if prompt_label == "unsafe":
        return _XSTEST_UNSAFE_PROMPT_RESPONSE[xstest_class]
    return "safe"


def parse_xstest_completions(record: Record, ctx: Context) -> ParseResult:
    """A prompt and one model's completion, with a human vote per XSTest annotator.

    The annotators classed the completion (full compliance, full refusal, partial
    refusal) knowing the prompt's type. Their vote's `label` is therefore XSTest's own
    label of the prompt (from its type), not their judgement; their judgement becomes
    the `response_label`, and the raw class is kept in the vote's details for
    agreement statistics. XSTest has no hazard categories.
    """
    data = record.data
    prompt, completion = cell(data, "prompt"), cell(data, "completion")
    if prompt is None:
        return ctx.error(record, "prompt", "is empty or missing")
    if completion is None:
        return ctx.error(record, "completion", "is empty or missing")
    errors: list[RowError] = []
    prompt_type = cell(data, "type")
    if prompt_type is None:
        errors += ctx.error(record, "type", "is empty or missing")
    classes: dict[str, str] = {}
    for column in XSTEST_ANNOTATORS:
        value = cell(data, column)
        if value is None:
            errors += ctx.error(record, column, "is empty or missing")
        elif value.strip() not in XSTEST_CLASSES:
            errors += ctx.error(record, column, f"unknown XSTest label {value!r}")
        else:
            classes[column] = value.strip()
    if errors:
        return errors
    label = xstest_prompt_label((prompt_type or "").strip())
    votes = [
        FileVote(
            annotator=username,
            label=label,
            response_label=xstest_response_label(label, classes[column]),
            require_categories=False,
            details={"imported_label": classes[column], "scheme": "xstest"},
        )
        for column, username in XSTEST_ANNOTATORS.items()
    ]
    raw_id = _id(data.get("id"))
    # The five model files share ids 1..450: name the model so they can share a batch.
    external_id = (
        f"{ctx.xstest_model}-{raw_id}" if ctx.xstest_model and raw_id else raw_id
    )
    metadata = _metadata(data, ("id", "prompt", "completion"))
    metadata["xstest_id"] = raw_id
    if ctx.xstest_model:
        metadata["model"] = ctx.xstest_model
    return DialogueIn(
        line=record.line,
        turns=[
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": completion},
        ],
        source=ctx.format,
        external_id=external_id,
        metadata=metadata,
        votes=votes,
        imported_from="xstest",
    )


def parse_aart(record: Record, ctx: Context) -> ParseResult:
    return _prompt_row(record, ctx, "prompt", None, ())


def parse_simple_safety_tests(record: Record, ctx: Context) -> ParseResult:
    return _prompt_row(record, ctx, "prompts_final", "id", ("id",))


def parse_do_not_answer(record: Record, ctx: Context) -> ParseResult:
    return _prompt_row(record, ctx, "question", "id", ("id", "Unnamed: 0"))


def parse_openai_moderation(record: Record, ctx: Context) -> ParseResult:
    data = record.data
    prompt = cell(data, "prompt")
    if prompt is None:
        return ctx.error(record, "prompt", "is empty or missing")
    flags: dict[str, int | None] = {}
    for key in OPENAI_FLAGS:
        value = data.get(key)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            flags[key] = None  # an absent key means "not labelled", not "no"
        elif value in (0, 1, "0", "1", True, False):
            flags[key] = int(value)
        else:
            return ctx.error(record, key, f"must be 0 or 1, not {value!r}")
    extra = _metadata(data, ("prompt", *OPENAI_FLAGS))
    return DialogueIn(
        line=record.line,
        turns=[{"role": "user", "content": prompt}],
        source=ctx.format,
        metadata={"openai_categories": flags, "source_line": record.line, **extra},
    )


_LS_PROMPT_KEYS = (
    "prompt",
    "text",
    "question",
    "user",
    "input",
    "query",
    "instruction",
)
_LS_RESPONSE_KEYS = ("response", "answer", "output", "assistant", "completion")
_LS_TURN_KEYS = ("turns", "messages", "dialogue", "conversation", "chat")


def parse_label_studio(record: Record, ctx: Context) -> ParseResult:
    task = record.data
    data = task.get("data")
    if not isinstance(data, dict):
        return ctx.error(record, "data", "a Label Studio task needs a data object")
    turns: list[dict[str, str]] | list[RowError]
    turn_key = next((k for k in _LS_TURN_KEYS if k in data), None)
    if turn_key:
        turns = parse_turns(data[turn_key], record, ctx, f"data.{turn_key}")
        if turns and isinstance(turns[0], RowError):
            return turns
    else:
        prompt_key = next((k for k in _LS_PROMPT_KEYS if cell(data, k)), None)
        if prompt_key is None:
            return ctx.error(
                record,
                "data",
                f"no prompt text (looked for {', '.join(_LS_PROMPT_KEYS)})",
            )
        turns = [{"role": "user", "content": str(data[prompt_key])}]
        response_key = next((k for k in _LS_RESPONSE_KEYS if cell(data, k)), None)
        if response_key:
            turns.append({"role": "assistant", "content": str(data[response_key])})
    votes: list[FileVote] = []
    annotations = task.get("annotations") or task.get("completions") or []
    if not isinstance(annotations, list):
        return ctx.error(record, "annotations", "must be a list")
    for n, annotation in enumerate(annotations, start=1):
        if not isinstance(annotation, dict) or annotation.get("was_cancelled"):
            continue
        vote = _label_studio_vote(annotation)
        if isinstance(vote, str):
            return ctx.error(record, f"annotations[{n}]", vote)
        votes.append(vote)
    external_id = _id(data.get("id")) or _id(task.get("id"))
    return DialogueIn(
        line=record.line,
        turns=turns,  # type: ignore[arg-type]
        source=ctx.format,
        external_id=external_id,
        votes=votes,
        imported_from="label-studio",
        metadata={
            "label_studio_task": _id(task.get("id")),
            **_metadata(
                data, (turn_key or "", *_LS_PROMPT_KEYS, *_LS_RESPONSE_KEYS, "id")
            ),
        },
    )


def _label_studio_vote(annotation: dict[str, Any]) -> FileVote | str:
    who = annotation.get("completed_by")
    email = ""
    if isinstance(who, dict):
        email = str(who.get("email") or "")
        who = who.get("id")
    if who is None and not email:
        return "completed_by is missing"
    username = email or f"label-studio-{who}"
    label: str | None = None
    response_label: str | None = None
    categories: list[str] = []
    other_text, comment = "", ""
    for item in annotation.get("result") or []:
        if not isinstance(item, dict):
            continue
        name = str(item.get("from_name", "")).lower()
        value = item.get("value") or {}
        if item.get("type") == "textarea" or "text" in value:
            text = "\n".join(str(t) for t in value.get("text") or [])
            if "other" in name:
                other_text = text
            else:
                comment = text
            continue
        choices = list(value.get("choices") or [])
        choices += [path[-1] for path in value.get("taxonomy") or [] if path]
        for choice in choices:
            as_label = normalise_label(str(choice))
            if as_label and "response" in name:
                response_label = as_label
            elif as_label:
                label = as_label
            else:
                categories.append(str(choice))
    if label is None:
        return "no safe / needs caution / unsafe choice in its result"
    lead_time = annotation.get("lead_time")
    return FileVote(
        annotator=username,
        annotator_email=email,
        label=label,
        response_label=response_label,
        categories=categories,
        other_text=other_text,
        comment=comment,
        time_spent_ms=int(float(lead_time) * 1000)
        if lead_time not in (None, "")
        else None,
        require_other_text=False,
    )


Parser = Callable[[Record, Context], ParseResult]

PARSERS: dict[str, Parser] = {
    "jsonl": parse_generic,
    "json": parse_generic,
    "csv": parse_generic,
    "parquet": parse_generic,
    "aegis2": parse_aegis2,
    "aegis1": parse_aegis1,
    "xstest": parse_xstest,
    "xstest-completions": parse_xstest_completions,
    "hh-rlhf": parse_hh_rlhf,
    "aart": parse_aart,
    "simple-safety-tests": parse_simple_safety_tests,
    "do-not-answer": parse_do_not_answer,
    "openai-moderation": parse_openai_moderation,
    "label-studio": parse_label_studio,
}
FORMATS = tuple(PARSERS)
GENERIC = ("jsonl", "json", "csv", "parquet")


def detect_format(
    columns: list[str], first: dict[str, Any] | None, container: str
) -> str | None:
    """The dataset format a file's columns point at; None when nothing fits."""
    cols = set(columns)
    if first is not None and isinstance(first.get("data"), dict):
        return "label-studio"
    if set(AEGIS2_COLUMNS) <= cols:
        return "aegis2"
    if {"text", "text_type"} <= cols and any(
        re.fullmatch(r"labels_\d+", c) for c in cols
    ):
        return "aegis1"
    if {"prompt", "completion", "annotation_1"} <= cols:
        return "xstest-completions"
    if {"id", "prompt", "type", "label", "focus", "note"} <= cols:
        return "xstest"
    if "chosen" in cols and "rejected" in cols:
        return "hh-rlhf"
    if {"prompt", "why_prompt_harmful"} <= cols or {
        "prompt",
        "crime",
        "use_case",
    } <= cols:
        return "aart"
    if "prompts_final" in cols:
        return "simple-safety-tests"
    if "question" in cols and ({"risk_area", "types_of_harm"} & cols):
        return "do-not-answer"
    if (
        "prompt" in cols
        and cols & set(OPENAI_FLAGS)
        and cols <= {"prompt", *OPENAI_FLAGS}
    ):
        return "openai-moderation"
    if "prompt" in cols or "turns" in cols:
        return container if container in GENERIC else "jsonl"
    return None
