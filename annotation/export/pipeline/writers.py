"""Write step: one split's files in each layout, and the category lists they name.

aegis/{split}.json       JSON arrays, the Aegis 2.0 columns
parquet/{split}.parquet  the same rows, typed
csv/{split}.csv          the same rows, formula cells neutralised
sft/{split}.jsonl        guard fine-tuning chat examples, then topic-following ones
"""

import csv
import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from annotation.export.pipeline.rows import Row
from annotation.rules.layouts import (
    AEGIS_COLUMNS,
    aegis_json,
    category_block,
    csv_cell,
    guard_example_json,
)
from taxonomy.models import Category

FOLDERS = ("aegis", "parquet", "csv", "sft")
_PARQUET_SCHEMA = pa.schema([(name, pa.string()) for name in AEGIS_COLUMNS])


def category_blocks(taxonomy_ids: Iterable[int]) -> dict[int, str]:
    """Each taxonomy's categories as the guard prompt lists them (not the retired)."""
    by_taxonomy: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for taxonomy_id, code, name in (
        Category.objects.filter(taxonomy_id__in=set(taxonomy_ids), retired=False)
        .order_by("taxonomy_id", "order")
        .values_list("taxonomy_id", "code", "name")
    ):
        by_taxonomy[taxonomy_id].append((code, name))
    return {t: category_block(cats) for t, cats in by_taxonomy.items()}


def make_folders(out: Path) -> None:
    """The layouts' folders in `out`, before any split is written into them."""
    for folder in FOLDERS:
        (out / folder).mkdir(parents=True, exist_ok=True)


def write_split(
    out: Path,
    split: str,
    rows: list[Row],
    topics: list[dict[str, Any]],
    *,
    blocks: dict[int, str],
) -> None:
    """Write one split in every layout; its SFT file ends with its topic examples.

    `blocks` are the guard prompt's category lists by taxonomy (`category_blocks`).
    """
    values = [r.values for r in rows]
    _write_json(out / "aegis" / f"{split}.json", values)
    _write_parquet(out / "parquet" / f"{split}.parquet", values)
    _write_csv(out / "csv" / f"{split}.csv", values)
    _write_sft(out / "sft" / f"{split}.jsonl", rows, blocks, topics)


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
    rows: list[Row],
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
