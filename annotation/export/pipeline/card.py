"""Card step: the export's dataset card (README.md).

What is in the export, how the splits were made, the taxonomy, where the rows came
from and under which licenses.
"""

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from annotation.export.params import ExportParams
from annotation.export.pipeline.rows import Row
from annotation.models import Batch
from annotation.rules.layouts import AEGIS_COLUMNS
from annotation.rules.splits import SPLITS
from taxonomy.models import Category

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


def card_categories(
    taxonomy_ids: Iterable[int],
) -> dict[int, list[tuple[str, str, str]]]:
    """Each taxonomy's categories (code, name, group) in order, retired ones too."""
    category_lists: dict[int, list[tuple[str, str, str]]] = defaultdict(list)
    for taxonomy_id, code, name, group in (
        Category.objects.filter(taxonomy_id__in=taxonomy_ids)
        .order_by("taxonomy_id", "order")
        .values_list("taxonomy_id", "code", "name", "group")
    ):
        category_lists[taxonomy_id].append((code, name, group))
    return category_lists


def card(
    *,
    params: ExportParams,
    batches: list[Batch],
    counts: dict[str, Any],
    excluded: dict[str, int],
    split_rows: dict[str, list[Row]],
    categories: dict[int, list[tuple[str, str, str]]],
) -> str:
    """The dataset card: what is in the export, where it came from, its licenses."""
    names = ", ".join(b.name for b in batches)
    lines = [
        f"# Aegis Studio export: {names}",
        "",
        "Safety-labelled dialogues in the Aegis 2.0 layout, with guard fine-tuning "
        "examples, exported by Aegis Studio.",
        "",
        *_contents(counts, excluded),
        "",
        *_files(params),
        "",
        *_how_split(params, batches),
        "",
        *_taxonomy(batches, categories),
        "",
        *_sources(split_rows),
        "",
        "The dialogues hold harmful and disturbing text on purpose: they are "
        "training data for safety classifiers.",
        "",
    ]
    return "\n".join(lines)


def _contents(counts: dict[str, Any], excluded: dict[str, int]) -> list[str]:
    """The card's table of rows per split and label, and what was left out."""
    lines = [
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
    total = sum(counts[s]["rows"] for s in SPLITS)
    left_out = ", ".join(
        f"{k.replace('_', ' ')}: {v}" for k, v in sorted(excluded.items())
    )
    lines += ["", f"{total} rows in all. Left out: {left_out or 'nothing'}."]
    return lines


def _files(params: ExportParams) -> list[str]:
    """The card's list of the export's files and what each holds."""
    return [
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
    ]


def _how_split(params: ExportParams, batches: list[Batch]) -> list[str]:
    """The card's account of the split: seed, ratios, grouping, needs-caution policy."""
    return [
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
    ]


def _taxonomy(
    batches: list[Batch], categories: dict[int, list[tuple[str, str, str]]]
) -> list[str]:
    """The card's taxonomy versions, by batch, and each version's categories."""
    lines = ["## Taxonomy", ""]
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
    return lines


def _sources(split_rows: dict[str, list[Row]]) -> list[str]:
    """The card's table of where the rows came from (KNOWN_SOURCES) and licenses."""
    sources: Counter[str] = Counter()
    for rows in split_rows.values():
        sources.update(r.source for r in rows)
    lines = [
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
    return lines
