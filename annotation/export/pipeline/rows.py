"""Read step: the dialogues to export, with their final labels, as `Row`s.

Also the records of a topic-following file, the other input an export blends in.
"""

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.db.models import TextField
from django.db.models.functions import Cast

from annotation.export.params import ExportProblem
from annotation.models import Augmentation, Batch, Dialogue
from annotation.rules.derivation import UNRESOLVED, Final
from annotation.rules.layouts import BadTopicRow, topic_key, topic_messages

# Sources written as the Aegis 2.0 release spells them: a lead is a human.
_SOURCE_NAMES = {"adjudicated": "human"}


@dataclass
class Row:
    """One exported row: the Aegis columns plus what the split and card need."""

    values: dict[str, Any]
    group: str
    refusal: bool
    primary: str
    taxonomy_id: int
    source: str
    provenance: str


# What read_rows asks of each dialogue, in the order it unpacks them.
_READ = (
    "id",
    "batch_id",
    "external_id",
    "prompt",
    "response",
    "redacted",
    "reconstruction_id",
    "augmentation",
    "source",
    "final_label__prompt_label",
    "final_label__response_label",
    "categories_text",
    "final_label__prompt_label_source",
    "final_label__response_label_source",
    "final_label__provenance",
)


def _group_key(prompt: str, redacted: bool, reconstruction_id: str | None) -> str:
    # A redacted prompt's text is the literal REDACTED: its source row is its key.
    if redacted and reconstruction_id:
        return "redacted\x00" + reconstruction_id
    return "prompt\x00" + hashlib.sha256(prompt.encode()).hexdigest()


@lru_cache(maxsize=4096)
def _joined(names: tuple[str, ...]) -> str:
    return ", ".join(names)


@lru_cache(maxsize=4096)
def _category_names(text: str | None) -> tuple[str, ...]:
    """A final label's categories from their JSON text."""
    return tuple(json.loads(text)) if text else ()


def _dialogues(batches: list[Batch]) -> Iterator[tuple[Any, ...]]:
    """The batches' dialogues with their stored final labels, `_READ` per row, in
    the database's order (the split step orders them), in one streamed query."""
    return (
        Dialogue.objects.filter(batch__in=batches)
        .order_by()
        # As text: most rows share a handful of category lists, parsed once each.
        .annotate(categories_text=Cast("final_label__violated_categories", TextField()))
        .values_list(*_READ)
        .iterator(chunk_size=5000)
    )


def read_rows(
    batches: list[Batch], overrides: dict[int, dict[int, Final]], *, refusals: bool
) -> tuple[list[Row], Counter[str]]:
    """Every exportable row of the batches, and the counts of what was left out.

    `overrides` holds, by batch and dialogue, final labels derived under another
    needs-caution policy than the batch's; they stand in for the stored ones.
    """
    taxonomy_of = {b.pk: b.taxonomy_id for b in batches}
    excluded: Counter[str] = Counter()
    rows: list[Row] = []
    for values in _dialogues(batches):
        (
            pk,
            batch_id,
            external_id,
            prompt,
            response,
            redacted,
            reconstruction_id,
            augmentation,
            source,
            p_label,
            r_label,
            categories,
            p_source,
            r_source,
            provenance,
        ) = values
        if batch_id in overrides:
            final = overrides[batch_id][pk]
            p_label, r_label = final.prompt_label, final.response_label
            names = final.violated_categories
            p_source, r_source = final.prompt_label_source, final.response_label_source
            provenance = final.provenance
        else:
            names = _category_names(categories)
        refusal = augmentation == Augmentation.REFUSAL
        if refusal and not refusals:
            excluded["refusals_left_out"] += 1
            continue
        if provenance is None or provenance == UNRESOLVED or p_label is None:
            excluded["unresolved"] += 1
            continue
        if response is not None and r_label is None:
            excluded["response_unlabelled"] += 1
            continue
        rows.append(
            Row(
                values={
                    "id": external_id or str(pk),
                    "prompt": prompt,
                    "response": response,
                    "prompt_label": p_label,
                    "response_label": r_label if response is not None else None,
                    "prompt_label_source": _SOURCE_NAMES.get(p_source, p_source)
                    or None,
                    "response_label_source": (
                        _SOURCE_NAMES.get(r_source, r_source) or None
                    )
                    if response is not None
                    else None,
                    "violated_categories": _joined(names),
                    "reconstruction_id_if_redacted": reconstruction_id
                    if redacted
                    else None,
                },
                group=_group_key(prompt, redacted, reconstruction_id),
                refusal=refusal,
                primary=names[0] if names else "",
                taxonomy_id=taxonomy_of[batch_id],
                source=source or "",
                provenance=provenance,
            )
        )
    return rows, excluded


def read_topic_file(path: str) -> list[dict[str, Any]]:
    """Records of a CantTalkAboutThis file: a JSON array or JSON lines."""
    text = Path(path).read_text(encoding="utf-8")
    stripped = text.lstrip()
    records: list[tuple[int, Any]]
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ExportProblem(f"topic_file: not valid JSON: {exc}") from None
        records = list(enumerate(data, start=1))
    else:
        records = []
        for line_no, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append((line_no, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise ExportProblem(
                    f"topic_file: line {line_no} is not valid JSON: {exc.msg}"
                ) from None
    out = []
    for line_no, record in records:
        if not isinstance(record, dict):
            raise ExportProblem(f"topic_file: line {line_no} is not a JSON object")
        try:
            out.append({"key": topic_key(record), **_topic_row(record, line_no)})
        except BadTopicRow as exc:
            raise ExportProblem(f"topic_file: {exc}") from None
    return out


def _topic_row(record: dict[str, Any], line: int) -> dict[str, Any]:
    return {
        "messages": topic_messages(record, line=line),
        "domain": str(record.get("domain", "")),
    }
