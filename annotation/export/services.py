"""Training-data exports: final labels to an immutable folder of files (DESIGN 6).

`write_export` is the whole export: it brings the batches' final labels up to date,
reads every dialogue with its final label in one query, assigns each prompt's rows to
a split (`annotation.rules.splits`), and writes

    aegis/{train,validation,test}.json      JSON arrays, the Aegis 2.0 columns
    parquet/{train,validation,test}.parquet the same rows, typed
    csv/{train,validation,test}.csv         the same rows, formula cells neutralised
    sft/{train,validation,test}.jsonl       guard fine-tuning chat examples
    README.md                               the dataset card
    manifest.json                           parameters, counts, sha256 of each file

into a fresh folder. The files depend only on the data and the parameters (rows are
ordered by their content, no timestamps inside them), so the same data and
parameters give byte-identical files; only the manifest says when it was made.

`start_export` records an `ExportSnapshot` and queues `run_snapshot` in Celery, which
writes the folder under MEDIA_ROOT/exports/, zips it and reports progress on the row.
"""

import csv
import hashlib
import io
import json
import os
import shutil
import tempfile
import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from django.conf import settings
from django.db import transaction
from django.db.models import TextField
from django.db.models.functions import Cast
from django.utils import timezone

from accounts.models import User
from accounts.refusals import Refused
from annotation import enqueue
from annotation.final_labels.services import derive_with_policy, refresh_batch
from annotation.models import (
    Augmentation,
    Batch,
    Dialogue,
    ExportSnapshot,
    JobStatus,
    NeedsCautionPolicy,
)
from annotation.rules.derivation import UNRESOLVED, Final
from annotation.rules.layouts import (
    AEGIS_COLUMNS,
    BadTopicRow,
    aegis_json,
    category_block,
    csv_cell,
    guard_example_json,
    topic_key,
    topic_messages,
)
from annotation.rules.splits import (
    DEFAULT_RATIOS,
    SPLITS,
    BadRatios,
    Group,
    assign,
    parse_ratios,
)
from taxonomy.models import Category

FORMAT_VERSION = 1
# Sources written as the Aegis 2.0 release spells them: a lead is a human.
_SOURCE_NAMES = {"adjudicated": "human"}
# Where imported rows came from, for the dataset card (Dialogue.source -> dataset,
# license). Formats that carry no dataset of their own are listed by format.
KNOWN_SOURCES = {
    "aegis2": ("Nemotron Content Safety Dataset V2 (Aegis 2.0)", "CC-BY-4.0"),
    "aegis1": ("Aegis AI Content Safety Dataset 1.0", "CC-BY-4.0"),
    "xstest": ("XSTest prompts", "CC-BY-4.0"),
    "xstest-completions": (
        "XSTest model completions",
        "CC-BY-4.0 prompts; completions under the licenses of Meta, Mistral, OpenAI",
    ),
    "hh-rlhf": ("Anthropic HH-RLHF (harmless-base)", "MIT"),
    "aart": ("AART (Google)", "CC-BY-4.0"),
    "simple-safety-tests": ("SimpleSafetyTests", "CC-BY-4.0"),
    "do-not-answer": ("Do-Not-Answer", "Apache-2.0"),
    "openai-moderation": ("OpenAI moderation evaluation set", "MIT"),
    "generated": ("Generated in Aegis Studio (refusals, responses)", "as the batch"),
}


# The parameters an ExportProblem's message may start with ("ratios: ...").
PARAMETERS = ("batches", "seed", "ratios", "needs_caution_policy", "topic_file")


class ExportProblem(Refused, ValueError):
    """Parameters an export cannot run with; the message names the parameter."""

    def parameter(self) -> tuple[str | None, str]:
        """The parameter the problem names (None when it names none), and the rest."""
        name, sep, rest = str(self).partition(": ")
        if sep and name in PARAMETERS:
            return name, rest
        return None, str(self)

    def body(self) -> dict[str, Any]:
        """By parameter, as the API's serializers answer: `{"ratios": [problem]}`."""
        name, message = self.parameter()
        return {name or "non_field_errors": [message]}


@dataclass(frozen=True)
class ExportParams:
    """What an export is asked for. `needs_caution_policy` "" keeps each batch's."""

    batches: tuple[str, ...]
    seed: int = 0
    ratios: tuple[float, float, float] = DEFAULT_RATIOS
    needs_caution_policy: str = ""
    include_refusals: bool = True
    topic_file: str = ""

    def checked(self) -> "ExportParams":
        """The same parameters, validated; raises ExportProblem naming the field."""
        if not self.batches:
            raise ExportProblem("batches: choose at least one batch")
        try:
            ratios = parse_ratios(self.ratios)
        except BadRatios as exc:
            raise ExportProblem(f"ratios: {exc}") from None
        if self.seed < 0:
            raise ExportProblem(f"seed: must be 0 or more, not {self.seed}")
        policies = {"", *NeedsCautionPolicy.values}
        if self.needs_caution_policy not in policies:
            raise ExportProblem(
                f"needs_caution_policy: {self.needs_caution_policy!r} is not one of "
                f"{sorted(p for p in policies if p)} (or empty for each batch's own)"
            )
        if self.topic_file and not Path(self.topic_file).is_file():
            raise ExportProblem(f"topic_file: no file at {self.topic_file}")
        return ExportParams(
            batches=tuple(sorted(dict.fromkeys(self.batches))),
            seed=self.seed,
            ratios=ratios,
            needs_caution_policy=self.needs_caution_policy,
            include_refusals=self.include_refusals,
            topic_file=self.topic_file,
        )


@dataclass
class ExportResult:
    out: Path
    counts: dict[str, Any]
    excluded: dict[str, int]
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)


Progress = Callable[[str, int, int], None]


def _no_progress(phase: str, done: int, total: int) -> None:
    return None


@dataclass
class _Row:
    """One exported row: the Aegis columns plus what the split and card need."""

    values: dict[str, Any]
    group: str
    refusal: bool
    primary: str
    taxonomy_id: int
    source: str
    provenance: str


# --- reading ---------------------------------------------------------------------------

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


def _resolve_batches(names: Sequence[str]) -> list[Batch]:
    found = {b.name: b for b in Batch.objects.filter(name__in=names)}
    missing = [n for n in names if n not in found]
    if missing:
        raise ExportProblem(f"batches: no batch named {missing[0]!r}")
    return [found[n] for n in names]


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


def _read_rows(
    batches: list[Batch], overrides: dict[int, dict[int, Final]], *, refusals: bool
) -> tuple[list[_Row], Counter[str]]:
    """Every exportable row of the batches, and the counts of what was left out."""
    taxonomy_of = {b.pk: b.taxonomy_id for b in batches}
    excluded: Counter[str] = Counter()
    rows: list[_Row] = []
    for values in (
        Dialogue.objects.filter(batch__in=batches)
        .order_by()
        # As text: most rows share a handful of category lists, parsed once each.
        .annotate(categories_text=Cast("final_label__violated_categories", TextField()))
        .values_list(*_READ)
        .iterator(chunk_size=5000)
    ):
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
            _Row(
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


def _sort_key(row: _Row) -> tuple[str, ...]:
    v = row.values
    return (
        v["id"],
        v["prompt"],
        v["response"] or "",
        "1" if row.refusal else "0",
        v["prompt_label"],
        v["response_label"] or "",
        v["violated_categories"],
    )


def _groups(rows: Iterable[_Row]) -> list[Group]:
    """One split group per prompt; its stratum is (prompt label, response label,
    primary category) of its most telling row: an unsafe original if there is one."""
    members: dict[str, list[_Row]] = defaultdict(list)
    for row in rows:
        members[row.group].append(row)
    groups = []
    for key, group_rows in members.items():
        # Rows come sorted (see write_export), so the first match is the same
        # whatever order the database returned them in.
        originals = [r for r in group_rows if not r.refusal] or group_rows
        lead = next(
            (r for r in originals if r.values["prompt_label"] == "unsafe"),
            originals[0],
        )
        groups.append(
            Group(
                key=key,
                stratum=(
                    lead.values["prompt_label"],
                    lead.values["response_label"] or "",
                    lead.primary,
                ),
                rows=len(group_rows),
                has_refusal=any(r.refusal for r in group_rows),
            )
        )
    return groups


# --- topic-following blend -------------------------------------------------------------


def _read_topic_file(path: str) -> list[dict[str, Any]]:
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


# --- writing ---------------------------------------------------------------------------

_PARQUET_SCHEMA = pa.schema([(name, pa.string()) for name in AEGIS_COLUMNS])


def _write_json(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as out:
        out.write("[\n")
        out.write(",\n".join(map(aegis_json, rows)))
        out.write("\n]\n" if rows else "]\n")


def _write_parquet(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = {name: [r[name] for r in rows] for name in AEGIS_COLUMNS}
    table = pa.Table.from_pydict(columns, schema=_PARQUET_SCHEMA)
    pq.write_table(table, path, compression="zstd")


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(AEGIS_COLUMNS)
        writer.writerows([csv_cell(r[name]) for name in AEGIS_COLUMNS] for r in rows)


def _write_sft(
    path: Path,
    rows: list[_Row],
    blocks: dict[int, str],
    topics: list[dict[str, Any]],
) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for row in rows:
            out.write(
                guard_example_json(row.values, categories_block=blocks[row.taxonomy_id])
                + "\n"
            )
        for topic in topics:
            example = {"id": topic["key"].split("\x00", 1)[1].replace("\x00", "/")}
            example["messages"] = topic["messages"]
            out.write(json.dumps(example, ensure_ascii=False) + "\n")


def _category_blocks(taxonomy_ids: Iterable[int]) -> dict[int, str]:
    by_taxonomy: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for taxonomy_id, code, name in (
        Category.objects.filter(taxonomy_id__in=set(taxonomy_ids), retired=False)
        .order_by("taxonomy_id", "order")
        .values_list("taxonomy_id", "code", "name")
    ):
        by_taxonomy[taxonomy_id].append((code, name))
    return {t: category_block(cats) for t, cats in by_taxonomy.items()}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _counts(split_rows: dict[str, list[_Row]], topics: dict[str, int]) -> dict:
    counts: dict[str, Any] = {}
    for split in SPLITS:
        rows = split_rows[split]
        counts[split] = {
            "rows": len(rows),
            "prompts": len({r.group for r in rows}),
            "prompt_label": dict(
                sorted(Counter(r.values["prompt_label"] for r in rows).items())
            ),
            "response_label": dict(
                sorted(
                    Counter(r.values["response_label"] or "none" for r in rows).items()
                )
            ),
            "refusals": sum(r.refusal for r in rows),
            "provenance": dict(sorted(Counter(r.provenance for r in rows).items())),
            "topic_following": topics.get(split, 0),
        }
    return counts


def _card(
    *,
    params: ExportParams,
    batches: list[Batch],
    counts: dict[str, Any],
    excluded: dict[str, int],
    split_rows: dict[str, list[_Row]],
    categories: dict[int, list[tuple[str, str, str]]],
) -> str:
    """The dataset card: what is in the export, where it came from, its licenses."""
    names = ", ".join(b.name for b in batches)
    total = sum(counts[s]["rows"] for s in SPLITS)
    lines = [
        f"# Aegis Studio export: {names}",
        "",
        "Safety-labelled dialogues in the Aegis 2.0 layout, with guard fine-tuning "
        "examples, exported by Aegis Studio.",
        "",
        "## Contents",
        "",
        "| split | rows | prompts | prompt safe | prompt unsafe | response safe "
        "| response unsafe | no response | refusals | topic following |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for split in SPLITS:
        c = counts[split]
        lines.append(
            f"| {split} | {c['rows']} | {c['prompts']} "
            f"| {c['prompt_label'].get('safe', 0)} | {c['prompt_label'].get('unsafe', 0)} "
            f"| {c['response_label'].get('safe', 0)} "
            f"| {c['response_label'].get('unsafe', 0)} "
            f"| {c['response_label'].get('none', 0)} | {c['refusals']} "
            f"| {c['topic_following']} |"
        )
    left_out = ", ".join(
        f"{k.replace('_', ' ')}: {v}" for k, v in sorted(excluded.items())
    )
    lines += [
        "",
        f"{total} rows in all. Left out: {left_out or 'nothing'}.",
        "",
        "## Files",
        "",
        "- `aegis/{train,validation,test}.json`: JSON arrays with the Aegis 2.0 "
        "columns: " + ", ".join(f"`{c}`" for c in AEGIS_COLUMNS) + ".",
        "- `parquet/*.parquet`: the same rows (all columns strings, nullable); "
        '`datasets.load_dataset("parquet", data_files=...)` reads them.',
        "- `csv/*.csv`: the same rows; cells that start with `=`, `+`, `-`, `@`, a tab "
        "or a carriage return are prefixed with `'` so spreadsheets show them as text.",
        "- `sft/*.jsonl`: one chat example per row (`messages`: a user message with "
        "the NeMo Guardrails content-safety task, categories and conversation; an "
        "assistant message with the JSON answer)"
        + (", plus topic-following conversations" if params.topic_file else "")
        + ".",
        "- `manifest.json`: parameters, counts and the sha256 of every file.",
        "",
        "## How the splits were made",
        "",
        f"Seed {params.seed}, ratios "
        + "/".join(f"{r:g}" for r in params.ratios)
        + " (train/validation/test). Every row of one prompt (refusals included) is "
        "in one split; splits are stratified by prompt label, response label and "
        "primary category; "
        "refusals never go to test. Needs-caution votes count as "
        + (
            {"permissive": "safe", "defensive": "unsafe"}[params.needs_caution_policy]
            if params.needs_caution_policy
            else "each batch's own policy says ("
            + ", ".join(f"{b.name}: {b.needs_caution_policy}" for b in batches)
            + ")"
        )
        + ".",
        "",
        "## Taxonomy",
        "",
    ]
    for batch in batches:
        lines.append(f"- {batch.name}: {batch.taxonomy}")
    taxonomy_names = {b.taxonomy_id: str(b.taxonomy) for b in batches}
    for taxonomy_id, cats in sorted(categories.items()):
        lines.append("")
        lines.append(f"Categories of {taxonomy_names[taxonomy_id]}:")
        lines.append("")
        lines += [
            f"- {code}: {name} ({group.replace('_', '-')})"
            for code, name, group in cats
        ]
    sources: Counter[str] = Counter()
    for rows in split_rows.values():
        sources.update(r.source for r in rows)
    lines += [
        "",
        "## Sources and licenses",
        "",
        "| source | rows | dataset | license |",
        "|---|---|---|---|",
    ]
    for source, n in sorted(sources.items()):
        dataset, license_ = KNOWN_SOURCES.get(
            source, (f"imported as {source or 'unnamed'}", "as its owner set it")
        )
        lines.append(f"| {source or '-'} | {n} | {dataset} | {license_} |")
    lines += [
        "",
        "The dialogues hold harmful and disturbing text on purpose: they are "
        "training data for safety classifiers.",
        "",
    ]
    return "\n".join(lines)


def write_export(
    params: ExportParams, out: Path, *, progress: Progress = _no_progress
) -> ExportResult:
    """Write one export into `out`, which must not exist or be empty.

    Brings each batch's stored final labels up to date first (`refresh_batch`), so
    an export never waits on queued recomputations. Raises ExportProblem for bad
    parameters, before anything is written. The files are written into a hidden
    folder beside `out` that becomes `out` when all are there: a failed export
    leaves nothing half-written.
    """
    params = params.checked()
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportProblem(f"out: {out} exists and is not an empty folder")
    batches = _resolve_batches(params.batches)
    topics = _read_topic_file(params.topic_file) if params.topic_file else []
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        result = _write(params, batches, topics, work, progress)
        if out.exists():
            out.rmdir()
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    result.out = out
    return result


def _write(
    params: ExportParams,
    batches: list[Batch],
    topics: list[dict[str, Any]],
    out: Path,
    progress: Progress,
) -> ExportResult:
    steps = len(batches) + 2 + len(SPLITS) + 1
    done = 0
    overrides: dict[int, dict[int, Final]] = {}
    for batch in batches:
        progress(f"final labels of {batch.name}", done, steps)
        refresh_batch(batch)
        policy = params.needs_caution_policy
        if policy and policy != batch.needs_caution_policy:
            overrides[batch.pk] = derive_with_policy(batch, policy)
        done += 1
    progress("reading", done, steps)
    rows, excluded = _read_rows(batches, overrides, refusals=params.include_refusals)
    done += 1
    progress("splitting", done, steps)
    rows.sort(key=_sort_key)
    where = assign(_groups(rows), seed=params.seed, ratios=params.ratios)
    split_rows: dict[str, list[_Row]] = {s: [] for s in SPLITS}
    for row in rows:
        split_rows[where[row.group]].append(row)
    topic_where = assign(
        [Group(key=t["key"], stratum=t["domain"], rows=1) for t in topics],
        seed=params.seed,
        ratios=params.ratios,
    )
    topic_split: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    for topic in sorted(topics, key=lambda t: (t["key"], json.dumps(t["messages"]))):
        topic_split[topic_where[topic["key"]]].append(topic)
    done += 1
    taxonomy_ids = sorted({b.taxonomy_id for b in batches})
    blocks = _category_blocks(taxonomy_ids)
    for folder in ("aegis", "parquet", "csv", "sft"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        progress(f"writing {split}", done, steps)
        values = [r.values for r in split_rows[split]]
        _write_json(out / "aegis" / f"{split}.json", values)
        _write_parquet(out / "parquet" / f"{split}.parquet", values)
        _write_csv(out / "csv" / f"{split}.csv", values)
        _write_sft(
            out / "sft" / f"{split}.jsonl",
            split_rows[split],
            blocks,
            topic_split[split],
        )
        done += 1
    progress("manifest", done, steps)
    counts = _counts(split_rows, {s: len(topic_split[s]) for s in SPLITS})
    category_lists: dict[int, list[tuple[str, str, str]]] = defaultdict(list)
    for taxonomy_id, code, name, group in (
        Category.objects.filter(taxonomy_id__in=taxonomy_ids)
        .order_by("taxonomy_id", "order")
        .values_list("taxonomy_id", "code", "name", "group")
    ):
        category_lists[taxonomy_id].append((code, name, group))
    excluded_counts = dict(sorted(excluded.items()))
    (out / "README.md").write_text(
        _card(
            params=params,
            batches=batches,
            counts=counts,
            excluded=excluded_counts,
            split_rows=split_rows,
            categories=category_lists,
        ),
        encoding="utf-8",
    )
    files = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        rel = path.relative_to(out).as_posix()
        files[rel] = {"sha256": _sha256(path), "bytes": path.stat().st_size}
    manifest = {
        "format_version": FORMAT_VERSION,
        "created_at": timezone.now().isoformat(),
        "parameters": {
            **asdict(params),
            "batches": list(params.batches),
            "ratios": list(params.ratios),
            "topic_file": os.path.basename(params.topic_file)
            if params.topic_file
            else None,
            "topic_file_sha256": _sha256(Path(params.topic_file))
            if params.topic_file
            else None,
        },
        "batches": [
            {
                "name": b.name,
                "taxonomy": str(b.taxonomy),
                "taxonomy_id": b.taxonomy_id,
                "needs_caution_policy": params.needs_caution_policy
                or b.needs_caution_policy,
                "labels_required": b.labels_required,
            }
            for b in batches
        ],
        "taxonomy_versions": sorted({str(b.taxonomy) for b in batches}),
        "counts": counts,
        "excluded": excluded_counts,
        "files": files,
    }
    (out / "manifest.json").write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    files_all = dict(files)
    files_all["manifest.json"] = {
        "sha256": _sha256(out / "manifest.json"),
        "bytes": (out / "manifest.json").stat().st_size,
    }
    progress("done", steps, steps)
    return ExportResult(
        out=out,
        counts=counts,
        excluded=excluded_counts,
        files=files_all,
        manifest=manifest,
    )


# --- snapshots (Celery) ---------------------------------------------------------------


def exports_root() -> Path:
    return Path(settings.MEDIA_ROOT) / "exports"


def start_export(*, params: ExportParams, user: User | None) -> ExportSnapshot:
    """Record an export and queue it in Celery once the transaction commits.

    Raises ExportProblem (naming the parameter) before anything is recorded.
    """
    if user is not None and not user.is_admin_role:
        raise ExportProblem("only admins can export training data")
    params = params.checked()
    batches = _resolve_batches(params.batches)
    with transaction.atomic():
        snapshot = ExportSnapshot.objects.create(
            batch_names=list(params.batches),
            seed=params.seed,
            ratios=list(params.ratios),
            needs_caution_policy=params.needs_caution_policy,
            include_refusals=params.include_refusals,
            topic_file=params.topic_file,
            topic_name=os.path.basename(params.topic_file) if params.topic_file else "",
            steps_total=len(batches) + 5,
            created_by=user,
        )
        snapshot.batches.set(batches)

        enqueue.later("annotation.run_export", snapshot.pk)
    return snapshot


def snapshot_params(snapshot: ExportSnapshot) -> ExportParams:
    return ExportParams(
        batches=tuple(snapshot.batch_names),
        seed=snapshot.seed,
        ratios=parse_ratios(snapshot.ratios),
        needs_caution_policy=snapshot.needs_caution_policy,
        include_refusals=snapshot.include_refusals,
        topic_file=snapshot.topic_file,
    )


def _zip(folder: Path, target: Path) -> None:
    """A zip of the folder whose bytes depend only on the files (fixed timestamps)."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(
                f"{folder.name}/{path.relative_to(folder).as_posix()}",
                date_time=(1980, 1, 1, 0, 0, 0),
            )
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o444 << 16
            with path.open("rb") as src, archive.open(info, "w") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)


def _freeze(folder: Path) -> None:
    """Read-only files and folders: a snapshot is never rewritten."""
    for path in folder.rglob("*"):
        path.chmod(0o444 if path.is_file() else 0o555)
    folder.chmod(0o555)


def run_snapshot(snapshot_id: int) -> ExportSnapshot:
    """Write a recorded export's folder and zip, reporting progress on the row.

    Idempotent: a finished snapshot is returned as it is; a run that died half way
    starts again in a fresh temporary folder (the final folder appears by rename,
    whole or not at all).
    """
    snapshot = ExportSnapshot.objects.get(pk=snapshot_id)
    if snapshot.finished:
        return snapshot
    ExportSnapshot.objects.filter(pk=snapshot.pk).update(
        status=JobStatus.RUNNING, started_at=timezone.now(), error=""
    )

    def progress(phase: str, done: int, total: int) -> None:
        ExportSnapshot.objects.filter(pk=snapshot.pk).update(
            phase=phase[:32], steps_done=done, steps_total=total
        )

    root = exports_root()
    root.mkdir(parents=True, exist_ok=True)
    name = f"export-{snapshot.pk:05d}"
    work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        result = write_export(snapshot_params(snapshot), work / name, progress=progress)
        _zip(work / name, work / f"{name}.zip")
        final = root / name
        if final.exists():
            shutil.rmtree(final, onerror=_force_remove)
        (work / name).rename(final)
        (work / f"{name}.zip").replace(root / f"{name}.zip")
        _freeze(final)
        manifest_sha = result.files["manifest.json"]["sha256"]
        ExportSnapshot.objects.filter(pk=snapshot.pk).update(
            status=JobStatus.SUCCEEDED,
            phase="done",
            directory=f"exports/{name}",
            zip_path=f"exports/{name}.zip",
            counts={"splits": result.counts, "excluded": result.excluded},
            manifest_sha256=manifest_sha,
            finished_at=timezone.now(),
        )
    except ExportProblem as exc:
        ExportSnapshot.objects.filter(pk=snapshot.pk).update(
            status=JobStatus.FAILED, error=str(exc), finished_at=timezone.now()
        )
    except Exception as exc:
        ExportSnapshot.objects.filter(pk=snapshot.pk).update(
            status=JobStatus.FAILED,
            error=f"the export failed: {type(exc).__name__}: {exc}",
            finished_at=timezone.now(),
        )
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    snapshot.refresh_from_db()
    return snapshot


def _force_remove(func: Callable[..., Any], path: str, _exc: object) -> None:
    os.chmod(os.path.dirname(path), 0o755)
    os.chmod(path, 0o755)
    func(path)


def snapshot_bytes(snapshot: ExportSnapshot) -> io.BufferedReader:
    """The snapshot's zip, opened for streaming."""
    return (Path(settings.MEDIA_ROOT) / snapshot.zip_path).open("rb")
