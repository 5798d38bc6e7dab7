"""Training-data exports: final labels to an immutable folder of files (DESIGN 6).

`write_export` is the whole export, run as the named steps of
`annotation.export.pipeline`: it brings the batches' final labels up to date, reads
every dialogue with its final label in one query (`rows`), assigns each prompt's rows
to a split (`split`, over `annotation.rules.splits`), writes each split's files
(`writers`), then the dataset card (`card`) and the manifest (`manifest`):

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

import io
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from annotation import enqueue

# The parameters and their refusal live below the pipeline, which takes them too;
# callers import them from here, with the services that take them.
from annotation.export.params import ExportParams, ExportProblem
from annotation.export.pipeline.card import card, card_categories
from annotation.export.pipeline.manifest import write_manifest
from annotation.export.pipeline.rows import read_rows, read_topic_file
from annotation.export.pipeline.split import (
    assign_splits,
    assign_topic_splits,
    split_counts,
)
from annotation.export.pipeline.writers import (
    category_blocks,
    make_folders,
    write_split,
)
from annotation.final_labels.services import derive_with_policy, refresh_batch
from annotation.leases import Heartbeat, holder_name
from annotation.models import Batch, ExportSnapshot, JobStatus, Leased
from annotation.rules.derivation import Final
from annotation.rules.splits import SPLITS, parse_ratios

__all__ = [
    "ExportParams",
    "ExportProblem",
    "ExportResult",
    "run_snapshot",
    "snapshot_bytes",
    "snapshot_params",
    "start_export",
    "write_export",
]


@dataclass
class ExportResult:
    """What `write_export` wrote: the folder, its counts and every file's hash."""

    out: Path
    counts: dict[str, Any]
    excluded: dict[str, int]
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)


Progress = Callable[[str, int, int], None]


def _no_progress(phase: str, done: int, total: int) -> None:
    return None


@dataclass
class _Steps:
    """The export's progress, reported as each step starts.

    A step reports its phase with how many steps came before it, of `total`.
    """

    progress: Progress
    total: int
    done: int = 0

    def start(self, phase: str) -> None:
        """Report that the step `phase` starts; the steps before it are done."""
        self.progress(phase, self.done, self.total)
        self.done += 1

    def finish(self) -> None:
        """Report that every step is done."""
        self.progress("done", self.total, self.total)


def _resolve_batches(names: Sequence[str]) -> list[Batch]:
    """The named batches, in that order; ExportProblem names one that is missing."""
    found = {b.name: b for b in Batch.objects.filter(name__in=names)}
    missing = [n for n in names if n not in found]
    if missing:
        raise ExportProblem(f"batches: no batch named {missing[0]!r}")
    return [found[n] for n in names]


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
    topics = read_topic_file(params.topic_file) if params.topic_file else []
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
    """Run the export's steps, in order, into `out` (write_export's work folder).

    Final labels -> read rows -> assign splits -> write each split -> card ->
    manifest. The final labels are brought up to date before the rows are read, so
    the read sees them; the manifest comes last because it hashes every other file.
    """
    # One step per batch's final labels, reading, splitting, one per split, the rest.
    steps = _Steps(progress, total=len(batches) + 2 + len(SPLITS) + 1)
    overrides = _final_labels(params, batches, steps)
    steps.start("reading")
    rows, excluded = read_rows(batches, overrides, refusals=params.include_refusals)
    steps.start("splitting")
    split_rows = assign_splits(rows, seed=params.seed, ratios=params.ratios)
    topic_split = assign_topic_splits(topics, seed=params.seed, ratios=params.ratios)
    taxonomy_ids = sorted({b.taxonomy_id for b in batches})
    blocks = category_blocks(taxonomy_ids)
    make_folders(out)
    for split in SPLITS:
        steps.start(f"writing {split}")
        write_split(out, split, split_rows[split], topic_split[split], blocks=blocks)
    steps.start("manifest")
    counts = split_counts(split_rows, {s: len(topic_split[s]) for s in SPLITS})
    excluded_counts = dict(sorted(excluded.items()))
    readme = card(
        params=params,
        batches=batches,
        counts=counts,
        excluded=excluded_counts,
        split_rows=split_rows,
        categories=card_categories(taxonomy_ids),
    )
    (out / "README.md").write_text(readme, encoding="utf-8")
    manifest, files = write_manifest(
        out, params=params, batches=batches, counts=counts, excluded=excluded_counts
    )
    steps.finish()
    return ExportResult(
        out=out, counts=counts, excluded=excluded_counts, files=files, manifest=manifest
    )


def _final_labels(
    params: ExportParams, batches: list[Batch], steps: _Steps
) -> dict[int, dict[int, Final]]:
    """Bring each batch's stored final labels up to date, one step per batch.

    Returns, by batch, the labels derived under the export's needs-caution policy
    where it is not the batch's own (the stored ones stay as they are).
    """
    overrides: dict[int, dict[int, Final]] = {}
    for batch in batches:
        steps.start(f"final labels of {batch.name}")
        refresh_batch(batch)
        policy = params.needs_caution_policy
        if policy and policy != batch.needs_caution_policy:
            overrides[batch.pk] = derive_with_policy(batch, policy)
    return overrides


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


def run_snapshot(snapshot_id: int, *, holder: str = "") -> ExportSnapshot:
    """Write a recorded export's folder and zip, reporting progress on the row,
    under a lease (`holder`: who writes it).

    Idempotent: a finished snapshot, or one another worker holds a live lease on,
    is returned as it is; a run that died half way starts again in a fresh
    temporary folder (the final folder appears by rename, whole or not at all) and
    the lost run's temporary folders are removed.
    """
    holder = holder or holder_name()
    with transaction.atomic():
        snapshot = ExportSnapshot.objects.select_for_update().get(pk=snapshot_id)
        if snapshot.finished or (
            snapshot.lease_live() and snapshot.lease_holder != holder
        ):
            return snapshot
        snapshot.set_status(
            JobStatus.RUNNING,
            started_at=timezone.now(),
            error="",
            **Leased.lease_fields(holder, attempts=snapshot.attempts),
        )
    try:
        with Heartbeat(ExportSnapshot, snapshot.pk, holder):
            _write_snapshot(snapshot)
    finally:
        ExportSnapshot.release_lease(snapshot.pk, holder)
    snapshot.refresh_from_db()
    return snapshot


def _write_snapshot(snapshot: ExportSnapshot) -> None:
    def progress(phase: str, done: int, total: int) -> None:
        ExportSnapshot.objects.filter(pk=snapshot.pk).update(
            phase=phase[:32], steps_done=done, steps_total=total
        )

    root = exports_root()
    root.mkdir(parents=True, exist_ok=True)
    name = f"export-{snapshot.pk:05d}"
    # What a lost worker left half written (this worker holds the lease now).
    for stale in root.glob(f".{name}-*"):
        shutil.rmtree(stale, onerror=_force_remove)
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
        snapshot.set_status(
            JobStatus.SUCCEEDED,
            phase="done",
            directory=f"exports/{name}",
            zip_path=f"exports/{name}.zip",
            counts={"splits": result.counts, "excluded": result.excluded},
            manifest_sha256=manifest_sha,
        )
    except ExportProblem as exc:
        snapshot.set_status(JobStatus.FAILED, error=str(exc))
    except Exception as exc:
        snapshot.set_status(
            JobStatus.FAILED, error=f"the export failed: {type(exc).__name__}: {exc}"
        )
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _force_remove(func: Callable[..., Any], path: str, _exc: object) -> None:
    os.chmod(os.path.dirname(path), 0o755)
    os.chmod(path, 0o755)
    func(path)


def snapshot_bytes(snapshot: ExportSnapshot) -> io.BufferedReader:
    """The snapshot's zip, opened for streaming."""
    return (Path(settings.MEDIA_ROOT) / snapshot.zip_path).open("rb")
