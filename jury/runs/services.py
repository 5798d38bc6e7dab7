"""Jury runs: choose the dialogues, send chunks to the judges' queues, record votes,
decide, and report progress. Every step can run twice without changing the result."""

import os
import socket
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from accounts.models import User
from accounts.refusals import Refused
from annotation.facade import (
    Batch,
    Dialogue,
    Heartbeat,
    JuryDecision,
    Label,
    Leased,
    ModelVoteIn,
    VoteKind,
    enqueue,
    holder_name,
    human_majority,
    lost_text,
    max_attempts,
    record_jury_decision,
    record_model_votes,
    requeued_text,
)
from jury.backends import Backend, BackendError, BackendUnavailable, get_backend
from jury.models import (
    Judge,
    JudgePhase,
    JuryRun,
    RunChunk,
    RunDialogue,
    RunJudgeState,
    RunStatus,
    Scope,
)
from jury.presence import queue_listeners
from jury.rules.aggregation import JudgeVote, decide
from jury.rules.parsing import parse_output
from jury.rules.prompts import CategorySpec, build_messages, output_schema
from jury.runs.state import JudgeInput, RunState, Waiting, describe_run

# A failed chunk's error as stored (the page shows it; the worker log has it all).
ERROR_CHARS = 2000


class RunError(Refused):
    """A run cannot start or change as asked; the message says why."""


@dataclass(frozen=True)
class Selection:
    """The dialogues a run would judge, and those its scope found still waiting."""

    dialogue_ids: list[int]
    waiting: Waiting
    include_incomplete: bool = False

    @property
    def left_out(self) -> int:
        return 0 if self.include_incomplete else self.waiting.dialogues

    def waiting_text(self) -> str:
        return self.waiting.text(included=self.include_incomplete)


def scope_selection(
    *,
    batch: Batch,
    scope: str,
    sources: Sequence[str] | None = None,
    include_incomplete: bool = False,
) -> Selection:
    """The dialogues a run would judge: responses only; by default those whose human
    votes are complete (the batch's `labels_required`) and whose majority is unsafe
    (the Aegis rule), or every response.

    A dialogue still waiting for votes whose votes so far say unsafe is counted in
    `waiting`, and judged only with `include_incomplete`. Refusals need no human
    vote and are never candidates; gold items count like any dialogue.
    """
    candidates = Dialogue.objects.for_annotators().filter(
        batch=batch, response__isnull=False
    )
    if sources:
        candidates = candidates.filter(source__in=list(sources))
    if scope == Scope.ALL_RESPONSES:
        ids = list(candidates.order_by("pk").values_list("pk", flat=True))
        return Selection(dialogue_ids=ids, waiting=Waiting())
    votes: dict[int, Counter[str]] = defaultdict(Counter)
    for dialogue_id, label, n in (
        Label.objects.human()
        .filter(dialogue__in=candidates)
        .order_by()
        .values("dialogue_id", "label")
        .annotate(n=Count("pk"))
        .values_list("dialogue_id", "label", "n")
    ):
        if label is not None:  # human votes always carry one
            votes[dialogue_id][label] += n
    required = batch.labels_required
    chosen: list[int] = []
    waiting: Counter[int] = Counter()
    for dialogue_id, counts in votes.items():
        if human_majority(list(counts.elements()), batch.needs_caution_policy) != (
            "unsafe"
        ):
            continue
        given = counts.total()
        if given < required:
            waiting[given] += 1
        if given >= required or include_incomplete:
            chosen.append(dialogue_id)
    return Selection(
        dialogue_ids=sorted(chosen),
        waiting=Waiting(
            dialogues=waiting.total(),
            vote_counts=tuple(sorted(waiting)),
            labels_required=required,
        ),
        include_incomplete=include_incomplete,
    )


def select_dialogues(
    *,
    batch: Batch,
    scope: str,
    sources: Sequence[str] | None = None,
    include_incomplete: bool = False,
) -> list[int]:
    """The ids `scope_selection` picks."""
    return scope_selection(
        batch=batch,
        scope=scope,
        sources=sources,
        include_incomplete=include_incomplete,
    ).dialogue_ids


def nothing_to_judge(scope: str, selection: Selection) -> str:
    """Why a selection is empty, with what its scope left out."""
    if scope != Scope.UNSAFE_MAJORITY:
        return "No dialogue to judge: no response in this batch."
    message = (
        "No dialogue to judge: no response in this batch has an unsafe human majority"
    )
    message += "." if selection.include_incomplete else " with complete votes yet."
    if selection.left_out:
        message += f" {selection.waiting_text()}."
    return message


def start_run(
    *,
    batch: Batch,
    judges: Sequence[Judge],
    scope: str = Scope.UNSAFE_MAJORITY,
    sources: Sequence[str] | None = None,
    include_incomplete: bool = False,
    chunk_size: int = 16,
    by: User | None = None,
    enqueue: bool = True,
) -> JuryRun:
    """Create a run over the dialogues the scope selects now; its chunks are queued
    once the run is committed (unless `enqueue` is off, for in-process runs).

    A judge with no worker on its queue is accepted: the chunks wait in the queue
    for one (the run page says so)."""
    if not judges:
        raise RunError("Choose at least one judge.")
    missing = [f"{j.name} ({j.unavailable_reason})" for j in judges if not j.available]
    if missing:
        raise RunError("Not available: " + "; ".join(missing) + ".")
    selection = scope_selection(
        batch=batch,
        scope=scope,
        sources=sources,
        include_incomplete=include_incomplete,
    )
    if not selection.dialogue_ids:
        raise RunError(nothing_to_judge(scope, selection))
    with transaction.atomic():
        run = JuryRun.objects.create(
            batch=batch,
            scope=scope,
            sources=list(sources or []),
            include_incomplete=selection.include_incomplete,
            waiting_for_votes=selection.waiting.as_json(),
            chunk_size=chunk_size,
            created_by=by,
        )
        run.judges.set(judges)
        RunDialogue.objects.bulk_create(
            RunDialogue(run=run, dialogue_id=d) for d in selection.dialogue_ids
        )
        if enqueue:
            run_id = run.pk
            transaction.on_commit(lambda: enqueue_missing(run_id=run_id))
    return run


def missing_work(run: JuryRun) -> list[tuple[Judge, list[int]]]:
    """(judge, chunk of dialogue ids) for every vote the run still lacks."""
    targets = list(
        RunDialogue.objects.filter(run=run)
        .order_by("dialogue_id")
        .values_list("dialogue_id", flat=True)
    )
    voted: dict[str, set[int]] = defaultdict(set)
    for judge_name, dialogue_id in Label.objects.filter(
        kind=VoteKind.MODEL, run_key=run.key
    ).values_list("judge", "dialogue_id"):
        voted[judge_name].add(dialogue_id)
    work: list[tuple[Judge, list[int]]] = []
    for judge in run.judges.order_by("name"):
        todo = [d for d in targets if d not in voted[judge.name]]
        for start in range(0, len(todo), run.chunk_size):
            work.append((judge, todo[start : start + run.chunk_size]))
    return work


def enqueue_missing(*, run_id: int) -> int:
    """Queue one task per missing chunk and judge, on the judge's queue."""
    run = JuryRun.objects.get(pk=run_id)
    if run.status != RunStatus.RUNNING:
        return 0
    work = missing_work(run)
    for judge, chunk in work:
        enqueue.send(
            "jury.judge_chunk", run.pk, judge.pk, chunk, queue=judge.queue_name
        )
    return len(work)


def run_in_process(*, run: JuryRun) -> None:
    """Judge every missing chunk here and now (the command's --sync); a judge whose
    backend fails fails the run, as in a worker."""
    for judge, chunk in missing_work(run):
        try:
            judge_chunk(run_id=run.pk, judge_id=judge.pk, dialogue_ids=chunk)
        except (BackendError, BackendUnavailable) as exc:
            record_failure(run_id=run.pk, judge_id=judge.pk, error=error_text(exc))
            raise RunError(f"judge {judge.name} failed: {exc}") from exc
    finish_if_complete(run)


def cancel_run(*, run: JuryRun) -> JuryRun:
    """Stop a run: queued chunks find it cancelled and do nothing."""
    JuryRun.move_status(run.pk, RunStatus.CANCELLED)
    run.refresh_from_db()
    return run


def resume_run(*, run: JuryRun) -> JuryRun:
    """Start a cancelled, failed (or stalled) run again: only what is missing is
    queued; the failed judges' errors are cleared."""
    with transaction.atomic():
        # The row as it is now, locked: a worker may have finished it meanwhile.
        if JuryRun.objects.select_for_update().get(pk=run.pk).status == (
            RunStatus.DONE
        ):
            raise RunError("This run is complete.")
        JuryRun.move_status(run.pk, RunStatus.RUNNING, error="")
        RunJudgeState.objects.filter(run=run, phase=JudgePhase.FAILED).delete()
        # A lead's resume starts the count of lost workers again.
        RunJudgeState.objects.filter(run=run).update(attempts=0)
        RunChunk.objects.filter(run=run).exclude(
            lease_expires_at__gte=timezone.now()
        ).delete()
        run_id = run.pk
        transaction.on_commit(lambda: enqueue_missing(run_id=run_id))
    run.refresh_from_db()
    return run


def error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]


def record_failure(*, run_id: int, judge_id: int, error: str) -> None:
    """A chunk failed for good (not a transport error being retried): the judge
    shows the error and the run fails; its remaining chunks then do nothing."""
    judge = Judge.objects.get(pk=judge_id)
    with transaction.atomic():
        RunJudgeState.objects.update_or_create(
            run_id=run_id,
            judge=judge,
            defaults={"phase": JudgePhase.FAILED, "error": error[:ERROR_CHARS]},
        )
        JuryRun.move_status(
            run_id, RunStatus.FAILED, error=f"{judge.name}: {error}"[:ERROR_CHARS]
        )


def _ready_backend(run: JuryRun, judge: Judge, *, worker: str) -> Backend:
    """The judge's backend with its model loaded, its state recorded on the way.

    The process that ran the judge's last chunk has the model loaded already: one
    read, no write. Any other process records "loading" first (the first load of a
    local model takes a while), then "running"; the rate restarts with a judge
    that was not running.
    """
    me, pid = worker or socket.gethostname(), os.getpid()
    state = RunJudgeState.objects.filter(run=run, judge=judge).first()
    was_running = state is not None and state.phase == JudgePhase.RUNNING
    if was_running and state and (state.worker, state.worker_pid) == (me, pid):
        return get_backend(judge.config())
    _write_state(
        run,
        judge,
        phase=JudgePhase.LOADING,
        worker=me,
        worker_pid=pid,
        loading_since=timezone.now(),
        error="",
    )
    backend = get_backend(judge.config())
    load = getattr(backend, "load", None)  # backends with a local model have one
    if callable(load):
        load()
    fields: dict[str, Any] = {"phase": JudgePhase.RUNNING}
    if not was_running:
        fields["running_since"] = timezone.now()
        fields["votes_at_start"] = Label.objects.filter(
            kind=VoteKind.MODEL, run_key=run.key, judge=judge.name
        ).count()
    _write_state(run, judge, **fields)
    return backend


def _write_state(run: JuryRun, judge: Judge, **fields: Any) -> None:
    RunJudgeState.objects.update_or_create(run=run, judge=judge, defaults=fields)


def judge_chunk(
    *, run_id: int, judge_id: int, dialogue_ids: Sequence[int], worker: str = ""
) -> int:
    """One judge's votes on a chunk of a run; returns how many votes were new.

    Dialogues the judge already voted on in this run are not judged again, so a
    redelivered task (a worker killed mid-chunk) only completes what is missing.
    `worker` names the Celery worker (its hostname) in the judge's state.
    """
    run = JuryRun.objects.select_related("batch__taxonomy").get(pk=run_id)
    if run.status in (RunStatus.CANCELLED, RunStatus.FAILED):
        return 0
    judge = Judge.objects.get(pk=judge_id)
    done = set(
        Label.objects.filter(
            kind=VoteKind.MODEL,
            run_key=run.key,
            judge=judge.name,
            dialogue_id__in=list(dialogue_ids),
        ).values_list("dialogue_id", flat=True)
    )
    todo = list(
        Dialogue.objects.filter(
            pk__in=[d for d in dialogue_ids if d not in done]
        ).order_by("pk")
    )
    written = 0
    if todo:
        holder = holder_name(worker)
        chunk_id = _take_lease(run, judge, dialogue_ids, holder)
        try:
            with Heartbeat(RunChunk, chunk_id, holder):
                backend = _ready_backend(run, judge, worker=worker)
                written = record_model_votes(
                    run_key=run.key, votes=_judge(run, judge, todo, backend)
                )
        finally:
            RunChunk.objects.filter(pk=chunk_id, lease_holder=holder).delete()
    decide_dialogues(run=run, dialogue_ids=dialogue_ids)
    finish_if_complete(run)
    return written


def _take_lease(
    run: JuryRun, judge: Judge, dialogue_ids: Sequence[int], holder: str
) -> int:
    """The chunk's lease, taken by `holder`; the chunk row's id. A re-queued or
    redelivered chunk finds its row again (and its attempts)."""
    chunk, _ = RunChunk.objects.get_or_create(
        run=run,
        key=RunChunk.key_of(judge.pk, dialogue_ids),
        defaults={"judge": judge, "dialogue_ids": sorted(dialogue_ids)},
    )
    RunChunk.objects.filter(pk=chunk.pk).update(
        **Leased.lease_fields(holder, attempts=chunk.attempts)
    )
    return chunk.pk


def reap_lost_chunks(*, now: datetime | None = None) -> int:
    """Chunks of running runs whose worker was lost (the lease ran out): each is
    queued again on its judge's queue, up to AEGIS_JOB_MAX_ATTEMPTS starts, then
    the judge and its run fail with an error that says so. Returns how many.

    Safe against the broker's own late redelivery of the lost chunk: a chunk only
    judges the dialogues its judge has no vote on yet, and a vote is written once
    under its unique key (dialogue, judge, run)."""
    now = now or timezone.now()
    expired = Q(lease_expires_at__lt=now, run__status=RunStatus.RUNNING)
    reaped = 0
    for chunk_id in RunChunk.objects.filter(expired).values_list("pk", flat=True):
        with transaction.atomic():
            chunk = (
                RunChunk.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("judge")
                .filter(expired, pk=chunk_id)
                .first()
            )
            if chunk is None:
                continue
            reaped += 1
            if chunk.attempts >= max_attempts():
                error = lost_text(chunk.lease_holder, chunk.attempts)
                record_failure(
                    run_id=chunk.run_id, judge_id=chunk.judge_id, error=error
                )
                chunk.delete()
                continue
            _requeue(chunk)
    return reaped


def _requeue(chunk: RunChunk) -> None:
    attempt = chunk.attempts + 1
    RunChunk.objects.filter(pk=chunk.pk).update(attempts=attempt, lease_expires_at=None)
    RunJudgeState.objects.filter(
        run_id=chunk.run_id, judge_id=chunk.judge_id, attempts__lt=attempt
    ).update(attempts=attempt)
    enqueue.later(
        "jury.judge_chunk",
        chunk.run_id,
        chunk.judge_id,
        list(chunk.dialogue_ids),
        queue=chunk.judge.queue_name,
    )


def _judge(
    run: JuryRun, judge: Judge, dialogues: list[Dialogue], backend: Backend
) -> list[ModelVoteIn]:
    taxonomy = run.batch.taxonomy
    categories = list(taxonomy.categories.active().order_by("order"))
    specs = [
        CategorySpec(
            code=c.code,
            name=c.name,
            unsafe_when=c.unsafe_when,
            allowed_when=c.allowed_when,
        )
        for c in categories
    ]
    schema = output_schema([c.name for c in categories])
    conversations = [
        build_messages(categories=specs, turns=d.turns, version=judge.prompt_version)
        for d in dialogues
    ]
    generations = backend.generate(conversations, schema=schema)
    index = taxonomy.category_index()
    votes = []
    for dialogue, generation in zip(dialogues, generations, strict=True):
        failure = getattr(generation, "error", "")
        parsed = None if failure else parse_output(generation.text, index)
        valid = bool(parsed and parsed.valid)
        votes.append(
            ModelVoteIn(
                dialogue_id=dialogue.pk,
                judge=judge.name,
                valid=valid,
                label=parsed.label if parsed and valid else None,
                categories=parsed.categories if parsed and valid else (),
                raw_output=generation.text,
                latency_ms=generation.latency_ms,
                prompt_tokens=generation.prompt_tokens,
                completion_tokens=generation.completion_tokens,
                details={
                    "prompt_version": judge.prompt_version,
                    "unknown_categories": list(parsed.unknown) if parsed else [],
                    "error": failure or (parsed.error if parsed else ""),
                },
            )
        )
    return votes


def decide_dialogues(*, run: JuryRun, dialogue_ids: Iterable[int]) -> int:
    """Store the decision of every given dialogue that has all its judges' votes.

    Called after a chunk's votes are committed, so the last judge to finish a
    dialogue always sees every vote; deciding twice writes the same row.
    """
    judges = set(run.judges.values_list("name", flat=True))
    by_dialogue: dict[int, list[JudgeVote]] = defaultdict(list)
    labels = (
        Label.objects.filter(
            kind=VoteKind.MODEL, run_key=run.key, dialogue_id__in=list(dialogue_ids)
        )
        .prefetch_related("label_categories__category")
        .order_by("dialogue_id", "judge")
    )
    for label in labels:
        by_dialogue[label.dialogue_id].append(
            JudgeVote(
                judge=label.judge,
                valid=label.valid,
                label=label.label,
                categories=tuple(
                    lc.category.name for lc in label.label_categories.all()
                ),
            )
        )
    decided = 0
    for dialogue_id, votes in by_dialogue.items():
        if {v.judge for v in votes} != judges:
            continue
        outcome = decide(votes)
        record_jury_decision(
            dialogue_id=dialogue_id,
            run_key=run.key,
            decision=outcome.decision,
            categories=outcome.categories,
            valid_votes=outcome.valid_votes,
            total_votes=outcome.total_votes,
            agreement=outcome.agreement,
            reason=outcome.reason,
        )
        decided += 1
    return decided


def finish_if_complete(run: JuryRun) -> bool:
    progress = run_progress(run)
    if progress.votes < progress.expected:
        return False
    JuryRun.move_status(run.pk, RunStatus.DONE)
    return True


@dataclass(frozen=True)
class RunProgress:
    dialogues: int
    judges: int
    votes: int
    valid: int
    invalid: int
    decisions: dict[str, int]
    # Votes per judge name (judges with none are absent).
    by_judge: dict[str, int] | None = None

    @property
    def expected(self) -> int:
        return self.dialogues * self.judges

    @property
    def percent(self) -> int:
        return 100 if not self.expected else int(100 * self.votes / self.expected)


def run_progress(run: JuryRun) -> RunProgress:
    """Counts from the database (a few aggregate queries, whatever the run's size);
    the run keeps its votes and their expected number as its `counts`."""
    by_judge = {
        row["judge"]: row
        for row in Label.objects.filter(kind=VoteKind.MODEL, run_key=run.key)
        .order_by()
        .values("judge")
        .annotate(n=Count("pk"), valid=Count("pk", filter=Q(valid=True)))
    }
    votes = sum(row["n"] for row in by_judge.values())
    valid = sum(row["valid"] for row in by_judge.values())
    decisions = Counter(
        dict(
            JuryDecision.objects.filter(run_key=run.key)
            .values("decision")
            .annotate(n=Count("pk"))
            .values_list("decision", "n")
        )
    )
    progress = RunProgress(
        dialogues=RunDialogue.objects.filter(run=run).count(),
        judges=run.judges.count(),
        votes=votes,
        valid=valid,
        invalid=votes - valid,
        decisions=dict(decisions),
        by_judge={name: row["n"] for name, row in by_judge.items()},
    )
    run.counts = (progress.votes, progress.expected)  # the run's done and total
    return progress


def run_state(
    run: JuryRun, progress: RunProgress, *, now: datetime | None = None
) -> RunState:
    """The run in words (`jury.runs.state`): three queries on top of the progress."""
    now = now or timezone.now()
    judges = list(run.judges.order_by("name"))
    states = {s.judge_id: s for s in RunJudgeState.objects.filter(run=run)}
    listeners = queue_listeners([j.queue_name for j in judges], now=now)
    by_judge = progress.by_judge or {}
    inputs = []
    for judge in judges:
        state = states.get(judge.pk)
        inputs.append(
            JudgeInput(
                name=judge.name,
                queue=judge.queue_name,
                expected=progress.dialogues,
                votes=by_judge.get(judge.name, 0),
                phase=state.phase if state else None,
                listener=listeners[judge.queue_name],
                worker=state.worker if state else "",
                loading_since=state.loading_since if state else None,
                running_since=state.running_since if state else None,
                votes_at_start=state.votes_at_start if state else 0,
                error=state.error if state else "",
                requeued=requeued_text(state.attempts) if state else "",
            )
        )
    return describe_run(
        status=run.status,
        error=run.error,
        created_at=run.created_at,
        finished_at=run.finished_at,
        votes=progress.votes,
        expected=progress.expected,
        judges=inputs,
        now=now,
    )
