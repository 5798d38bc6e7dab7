"""Manifest step: manifest.json, what was exported and the sha256 of every file.

The parameters, batches, counts, what was left out, and the sha256 and size of every
other file. It is the one file that says when it was made.
"""

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from django.utils import timezone

from annotation.export.params import ExportParams
from annotation.models import Batch

FORMAT_VERSION = 1


def write_manifest(
    out: Path,
    *,
    params: ExportParams,
    batches: list[Batch],
    counts: dict[str, Any],
    excluded: dict[str, int],
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Write `out`'s manifest, last: it describes every file written before it.

    Returns the manifest and every file's sha256 and size, the manifest's included.
    """
    files = {
        path.relative_to(out).as_posix(): _described(path)
        for path in sorted(p for p in out.rglob("*") if p.is_file())
    }
    manifest = _manifest(
        params=params, batches=batches, counts=counts, excluded=excluded, files=files
    )
    path = out / "manifest.json"
    path.write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return manifest, {**files, "manifest.json": _described(path)}


def _manifest(
    *,
    params: ExportParams,
    batches: list[Batch],
    counts: dict[str, Any],
    excluded: dict[str, int],
    files: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """The manifest's content; its keys in the order the file shows them."""
    return {
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
        "excluded": excluded,
        "files": files,
    }


def _described(path: Path) -> dict[str, Any]:
    """A file's entry in the manifest: its sha256 and size."""
    return {"sha256": _sha256(path), "bytes": path.stat().st_size}


def _sha256(path: Path) -> str:
    """The file's sha256, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
