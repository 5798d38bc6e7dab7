"""Jury runs: choose the dialogues, send chunks to the judges' queues, record votes,
decide, and report progress. Every step can run twice without changing the result."""

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from accounts.models import User
from annotation.derivation import human_majority
from annotation.model_votes import ModelVoteIn, record_jury_decision, record_model_votes
from annotation.models import Batch, Dialogue, JuryDecision, Label, VoteKind
from jury.aggregation import JudgeVote, decide
from jury.backends import get_backend
from jury.models import Judge, JuryRun, RunDialogue, RunStatus, Scope
from jury.parsing import parse_output
from jury.prompts import CategorySpec, build_messages, output_schema


class RunError(Exception):
    """A run cannot start or change as asked; the message says why."""


def select_dialogues(
    *, batch: Batch, scope: str, sources: Sequence[str] | None = None
) -> list[int]:
    """The ids of the dialogues a run would judge: responses only; by default those
    whose human majority is unsafe (the Aegis rule), or every response."""
    candidates = Dialogue.objects.for_annotators().filter(
        batch=batch, response__isnull=False
    )
    if sources:
        candidates = candidates.filter(source__in=list(sources))
    if scope == Scope.ALL_RESPONSES:
        return list(candidates.order_by("pk").values_list("pk", flat=True))
    votes: dict[int, list[str]] = defaultdict(list)
    for dialogue_id, label in (
        Label.objects.human()
        .filter(dialogue__in=candidates)
        .values_list("dialogue_id", "label")
    ):
        if label is not None:  # human votes always carry one
            votes[dialogue_id].append(label)
    policy = batch.needs_caution_policy
    return sorted(
        d for d, labels in votes.items() if human_majority(labels, policy) == "unsafe"
    )


def start_run(
    *,
    batch: Batch,
    judges: Sequence[Judge],
    scope: str = Scope.UNSAFE_MAJORITY,
    sources: Sequence[str] | None = None,
    chunk_size: int = 16,
    by: User | None = None,
    enqueue: bool = True,
) -> JuryRun:
    """Create a run over the dialogues the scope selects now; its chunks are queued
    once the run is committed (unless `enqueue` is off, for in-process runs)."""
    if not judges:
        raise RunError("Choose at least one judge.")
    missing = [j.name for j in judges if not j.available]
    if missing:
        raise RunError(
            "Not available (disabled, or the model's environment variable is unset): "
            + ", ".join(missing)
        )
    dialogue_ids = select_dialogues(batch=batch, scope=scope, sources=sources)
    if not dialogue_ids:
        raise RunError(
            "No dialogue to judge: no response in this batch"
            + (
                " has an unsafe human majority yet."
                if scope == Scope.UNSAFE_MAJORITY
                else "."
            )
        )
    with transaction.atomic():
        run = JuryRun.objects.create(
            batch=batch,
            scope=scope,
            sources=list(sources or []),
            chunk_size=chunk_size,
            created_by=by,
        )
        run.judges.set(judges)
        RunDialogue.objects.bulk_create(
            RunDialogue(run=run, dialogue_id=d) for d in dialogue_ids
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
    from jury.tasks import judge_chunk_task

    run = JuryRun.objects.get(pk=run_id)
    if run.status != RunStatus.RUNNING:
        return 0
    work = missing_work(run)
    for judge, chunk in work:
        judge_chunk_task.apply_async((run.pk, judge.pk, chunk), queue=judge.queue_name)
    return len(work)


def run_in_process(*, run: JuryRun) -> None:
    """Judge every missing chunk here and now (the command's --sync)."""
    for judge, chunk in missing_work(run):
        judge_chunk(run_id=run.pk, judge_id=judge.pk, dialogue_ids=chunk)
    finish_if_complete(run)


def cancel_run(*, run: JuryRun) -> JuryRun:
    """Stop a run: queued chunks find it cancelled and do nothing."""
    JuryRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
        status=RunStatus.CANCELLED
    )
    run.refresh_from_db()
    return run


def resume_run(*, run: JuryRun) -> JuryRun:
    """Start a cancelled (or stalled) run again: only what is missing is queued."""
    if run.status == RunStatus.DONE:
        raise RunError("This run is complete.")
    with transaction.atomic():
        JuryRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
        run_id = run.pk
        transaction.on_commit(lambda: enqueue_missing(run_id=run_id))
    run.refresh_from_db()
    return run


def judge_chunk(*, run_id: int, judge_id: int, dialogue_ids: Sequence[int]) -> int:
    """One judge's votes on a chunk of a run; returns how many votes were new.

    Dialogues the judge already voted on in this run are not judged again, so a
    redelivered task (a worker killed mid-chunk) only completes what is missing.
    """
    run = JuryRun.objects.select_related("batch__taxonomy").get(pk=run_id)
    if run.status == RunStatus.CANCELLED:
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
        written = record_model_votes(run_key=run.key, votes=_judge(run, judge, todo))
    decide_dialogues(run=run, dialogue_ids=dialogue_ids)
    finish_if_complete(run)
    return written


def _judge(run: JuryRun, judge: Judge, dialogues: list[Dialogue]) -> list[ModelVoteIn]:
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
    generations = get_backend(judge.config()).generate(conversations, schema=schema)
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
    JuryRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
        status=RunStatus.DONE, finished_at=timezone.now()
    )
    return True


@dataclass(frozen=True)
class RunProgress:
    dialogues: int
    judges: int
    votes: int
    valid: int
    invalid: int
    decisions: dict[str, int]

    @property
    def expected(self) -> int:
        return self.dialogues * self.judges

    @property
    def percent(self) -> int:
        return 100 if not self.expected else int(100 * self.votes / self.expected)


def run_progress(run: JuryRun) -> RunProgress:
    """Counts from the database (a few aggregate queries, whatever the run's size)."""
    votes = Label.objects.filter(kind=VoteKind.MODEL, run_key=run.key).aggregate(
        n=Count("pk"), valid=Count("pk", filter=Q(valid=True))
    )
    decisions = Counter(
        dict(
            JuryDecision.objects.filter(run_key=run.key)
            .values("decision")
            .annotate(n=Count("pk"))
            .values_list("decision", "n")
        )
    )
    return RunProgress(
        dialogues=RunDialogue.objects.filter(run=run).count(),
        judges=run.judges.count(),
        votes=votes["n"],
        valid=votes["valid"],
        invalid=votes["n"] - votes["valid"],
        decisions=dict(decisions),
    )
