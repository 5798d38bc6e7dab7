"""Generation runs: refusals for unsafe prompts and responses for prompts without one
(DESIGN section 5), written by a generator model in chunks on its queue, with
progress from the database. Every step can run twice without changing the result.

Which prompts:
- refusals: original dialogues whose human majority (under the batch's
  needs-caution policy) is unsafe; a dialogue with no human vote yet counts when its
  imported reference label says the prompt is unsafe. Human votes, once there,
  decide alone.
- responses: original dialogues without a response.
Redacted dialogues have no text to answer and are left out. Dialogues that share a
prompt (the same turns up to the last user turn) get one set: the first of them is
the one answered. A prompt (and strategy) already answered by an earlier run of the
batch, or waiting in a running one, is not chosen again.

What is written, as new `annotation.Dialogue` rows with the external id of the
dialogue answered, source "generated", and turns = the prompt turns + the generated
assistant turn:
- a refusal: augmentation "refusal", metadata {strategy, generator, answers,
  generation_run}, and a reference label as the Aegis 2.0 release has for its
  refusals: prompt unsafe (source human, or the imported one), response safe with
  source `refusal_data_augmentation`, the prompt's violated categories. Refusals
  never go into the test split: export groups rows by prompt and `answers` names it.
- a response: augmentation "gen_response", metadata {generator, answers,
  generation_run}, no label: it is new content that needs human votes.
Text the batch already holds (same content hash) is not written again; its target
is a duplicate pointing at the dialogue that holds it. Empty output, an error from
the model, or text the database cannot store (a NUL character) fails the target,
with the error, and writes nothing; failed targets are not retried (a later run
chooses them again).
"""

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from accounts.models import User
from accounts.refusals import Refused
from annotation.facade import (
    Augmentation,
    Batch,
    Dialogue,
    Heartbeat,
    Label,
    LabelCategory,
    Leased,
    VoteKind,
    content_hash,
    enqueue,
    holder_name,
    human_majority,
    lost_text,
    max_attempts,
    prompt_and_response,
    recompute_on_commit,
    requeued_text,
)
from jury.backends import Generation, JudgeConfig, get_backend
from jury.generation.prompts import (
    GENERATION_PROMPT_VERSION,
    STRATEGIES,
    build_refusal_messages,
    build_response_messages,
    prompt_turns,
)
from jury.models import (
    GenerationKind,
    GenerationRun,
    GenerationTarget,
    Judge,
    RunStatus,
    TargetStatus,
)

GENERATED_SOURCE = "generated"
REFUSAL_LABEL_SOURCE = "refusal_data_augmentation"
# The Aegis 2.0 refusal generator (DESIGN section 5); a judge slot of that name.
DEFAULT_REFUSAL_GENERATOR = "gemma-2-27b"
EMPTY_OUTPUT = "empty output"
NUL_OUTPUT = "the output holds a NUL character, which the database cannot store"
# Reading a batch's turns in slices keeps a 100,000-dialogue batch out of memory.
_SLICE = 2000


class GenerationError(Refused):
    """A generation run cannot start or change as asked; the message says why."""


@dataclass(frozen=True)
class Choice:
    """A prompt a run would answer: the dialogue answered and its prompt's hash."""

    dialogue_id: int
    prompt_hash: str


def unsafe_prompt_ids(*, batch: Batch) -> list[int]:
    """Original, unredacted dialogues of the batch whose prompt is unsafe: by the
    human majority, or (no human vote yet) by the imported reference label."""
    originals = Dialogue.objects.originals().filter(batch=batch, redacted=False)
    votes: dict[int, list[str]] = defaultdict(list)
    for dialogue_id, label in (
        Label.objects.human()
        .filter(dialogue__in=originals)
        .values_list("dialogue_id", "label")
    ):
        if label is not None:  # human votes always carry one
            votes[dialogue_id].append(label)
    policy = batch.needs_caution_policy
    unsafe = {
        d for d, labels in votes.items() if human_majority(labels, policy) == "unsafe"
    }
    unsafe.update(
        d
        for d in Label.objects.filter(
            kind=VoteKind.REFERENCE, dialogue__in=originals, label="unsafe"
        ).values_list("dialogue_id", flat=True)
        if d not in votes
    )
    return sorted(unsafe)


def _choices(dialogue_ids: Sequence[int]) -> list[Choice]:
    """One choice per distinct prompt, the lowest dialogue id answering for it."""
    chosen: dict[str, int] = {}
    for start in range(0, len(dialogue_ids), _SLICE):
        rows = Dialogue.objects.filter(
            pk__in=dialogue_ids[start : start + _SLICE]
        ).values_list("pk", "turns")
        for pk, turns in rows:
            try:
                key = content_hash(prompt_turns(turns))
            except (ValueError, KeyError, TypeError):
                continue  # no user turn: nothing to answer
            if key not in chosen or pk < chosen[key]:
                chosen[key] = pk
    return sorted(
        (Choice(dialogue_id=d, prompt_hash=h) for h, d in chosen.items()),
        key=lambda c: c.dialogue_id,
    )


def select_targets(
    *, batch: Batch, kind: str, strategies: Sequence[str] = ()
) -> list[tuple[Choice, str]]:
    """(prompt, strategy) pairs a new run would write: "" is a response's strategy.

    Pairs that an earlier run of the batch wrote (or found already there), or that
    a running run still has pending, are left out.
    """
    if kind == GenerationKind.REFUSALS:
        ids = unsafe_prompt_ids(batch=batch)
        wanted = list(strategies)
    else:
        ids = list(
            Dialogue.objects.originals()
            .filter(batch=batch, redacted=False, response__isnull=True)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        wanted = [""]
    covered = set(
        GenerationTarget.objects.filter(run__batch=batch, run__kind=kind)
        .filter(
            Q(status__in=[TargetStatus.WRITTEN, TargetStatus.DUPLICATE])
            | Q(status=TargetStatus.PENDING, run__status=RunStatus.RUNNING)
        )
        .values_list("prompt_hash", "strategy")
    )
    return [
        (choice, strategy)
        for choice in _choices(ids)
        for strategy in wanted
        if (choice.prompt_hash, strategy) not in covered
    ]


def start_generation_run(
    *,
    batch: Batch,
    generator: Judge,
    kind: str,
    strategies: Sequence[str] | None = None,
    chunk_size: int = 8,
    max_tokens: int | None = None,
    by: User | None = None,
    enqueue: bool = True,
) -> GenerationRun:
    """Create a run over the prompts chosen now; its chunks are queued on the
    generator's queue once the run is committed (unless `enqueue` is off)."""
    if kind not in GenerationKind.values:
        raise GenerationError(f"Unknown kind {kind!r}: refusals or responses.")
    if kind == GenerationKind.REFUSALS:
        strategies = list(dict.fromkeys(strategies or STRATEGIES))
        unknown = [s for s in strategies if s not in STRATEGIES]
        if unknown:
            raise GenerationError(
                f"Unknown strategy {', '.join(unknown)} "
                f"(known: {', '.join(STRATEGIES)})."
            )
    elif strategies:
        raise GenerationError("Strategies are for refusals only.")
    else:
        strategies = []
    if not generator.available:
        raise GenerationError(
            f"Generator {generator.name} is not available (disabled, or its model's "
            "environment variable is unset)."
        )
    if chunk_size < 1:
        raise GenerationError("The chunk size must be at least 1.")
    if max_tokens is not None and max_tokens < 8:
        raise GenerationError("Max tokens must be at least 8.")
    pairs = select_targets(batch=batch, kind=kind, strategies=strategies)
    if not pairs:
        raise GenerationError(
            "Nothing to generate: "
            + (
                "no unsafe prompt in this batch lacks these refusals."
                if kind == GenerationKind.REFUSALS
                else "every prompt in this batch has a response."
            )
        )
    with transaction.atomic():
        run = GenerationRun.objects.create(
            batch=batch,
            generator=generator,
            kind=kind,
            strategies=strategies,
            prompt_version=GENERATION_PROMPT_VERSION,
            max_tokens=max_tokens,
            chunk_size=chunk_size,
            created_by=by,
        )
        GenerationTarget.objects.bulk_create(
            GenerationTarget(
                run=run,
                dialogue_id=choice.dialogue_id,
                prompt_hash=choice.prompt_hash,
                strategy=strategy,
            )
            for choice, strategy in pairs
        )
        if enqueue:
            run_id = run.pk
            transaction.on_commit(lambda: enqueue_missing(run_id=run_id))
    return run


def missing_chunks(run: GenerationRun) -> list[list[int]]:
    """The run's pending target ids, in chunks of its size."""
    pending = list(
        GenerationTarget.objects.filter(run=run, status=TargetStatus.PENDING)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    return [
        pending[start : start + run.chunk_size]
        for start in range(0, len(pending), run.chunk_size)
    ]


def enqueue_missing(*, run_id: int) -> int:
    """Queue one task per chunk still pending, on the generator's queue."""
    run = GenerationRun.objects.select_related("generator").get(pk=run_id)
    if run.status != RunStatus.RUNNING:
        return 0
    chunks = missing_chunks(run)
    for chunk in chunks:
        enqueue.send(
            "jury.generate_chunk", run.pk, chunk, queue=run.generator.queue_name
        )
    return len(chunks)


def run_in_process(*, run: GenerationRun) -> None:
    """Generate every pending chunk here and now (the command's --sync)."""
    for chunk in missing_chunks(run):
        generate_chunk(run_id=run.pk, target_ids=chunk)
    finish_if_complete(run)


def cancel_generation_run(*, run: GenerationRun) -> GenerationRun:
    """Stop a run: queued chunks find it cancelled and generate nothing."""
    GenerationRun.move_status(run.pk, RunStatus.CANCELLED)
    run.refresh_from_db()
    return run


def resume_generation_run(*, run: GenerationRun) -> GenerationRun:
    """Start a cancelled (or stalled) run again: only pending targets are queued."""
    if run.status == RunStatus.DONE:
        raise GenerationError("This run is complete.")
    if not run.generator.available:
        raise GenerationError(f"Generator {run.generator.name} is not available.")
    with transaction.atomic():
        # A lead's resume starts the count of lost workers again.
        GenerationRun.move_status(run.pk, RunStatus.RUNNING, error="")
        GenerationTarget.objects.filter(run=run, status=TargetStatus.PENDING).exclude(
            lease_expires_at__gte=timezone.now()
        ).update(attempts=0, lease_expires_at=None)
        run_id = run.pk
        transaction.on_commit(lambda: enqueue_missing(run_id=run_id))
    run.refresh_from_db()
    return run


def generator_config(run: GenerationRun) -> JudgeConfig:
    """The generator's configuration with the run's token budget, if it set one."""
    config = run.generator.config()
    return replace(config, max_tokens=run.max_tokens) if run.max_tokens else config


def generate_chunk(*, run_id: int, target_ids: Sequence[int], worker: str = "") -> int:
    """Generate a chunk of a run's targets; returns how many dialogues were written.

    Only pending targets are sent to the model, and each result is recorded under
    a lock on its target that checks it is still pending, so a redelivered task
    (or two deliveries at once, or a reaper's re-queue) writes every text at most
    once. The run's lease is held (`worker` names who) while the chunk runs.
    """
    run = GenerationRun.objects.select_related("batch", "generator").get(pk=run_id)
    if run.status in (RunStatus.CANCELLED, RunStatus.FAILED):
        return 0
    targets = list(
        GenerationTarget.objects.filter(
            run=run, pk__in=list(target_ids), status=TargetStatus.PENDING
        )
        .select_related("dialogue")
        .order_by("pk")
    )
    written = 0
    if targets:
        holder = holder_name(worker)
        ids = [t.pk for t in targets]
        attempts = max(t.attempts for t in targets)
        GenerationTarget.objects.filter(pk__in=ids).update(
            **Leased.lease_fields(holder, attempts=attempts)
        )
        try:
            with Heartbeat(GenerationTarget, ids, holder):
                written = _generate(run, targets)
        finally:
            GenerationTarget.objects.filter(pk__in=ids, lease_holder=holder).update(
                lease_expires_at=None
            )
    finish_if_complete(run)
    return written


def _generate(run: GenerationRun, targets: list[GenerationTarget]) -> int:
    written = 0
    sendable: list[tuple[GenerationTarget, list[dict[str, str]]]] = []
    conversations = []
    for target in targets:
        try:
            messages = _messages(run, target)
        except (ValueError, KeyError, TypeError) as exc:
            _record(run, target.pk, None, error=f"cannot build the prompt: {exc}")
            continue
        sendable.append((target, prompt_turns(target.dialogue.turns)))
        conversations.append(messages)
    if conversations:
        generations = get_backend(generator_config(run)).generate(
            conversations, schema=None
        )
        for (target, turns), generation in zip(sendable, generations, strict=True):
            written += _record(run, target.pk, generation, turns=turns)
    return written


def reap_lost_generation(*, now: datetime | None = None) -> int:
    """Pending targets of running generation runs whose worker was lost mid-chunk
    (the lease ran out): queued again, a chunk per run, up to
    AEGIS_JOB_MAX_ATTEMPTS starts, then the run fails with an error that says so.
    Returns how many runs. A target is written once (its lock and pending check),
    so the broker's late redelivery of the lost chunk writes nothing twice."""
    now = now or timezone.now()
    expired = Q(
        lease_expires_at__lt=now,
        status=TargetStatus.PENDING,
        run__status=RunStatus.RUNNING,
    )
    run_ids = set(
        GenerationTarget.objects.filter(expired).values_list("run_id", flat=True)
    )
    for run_id in sorted(run_ids):
        with transaction.atomic():
            targets = list(
                GenerationTarget.objects.select_for_update(
                    skip_locked=True, of=("self",)
                )
                .filter(expired, run_id=run_id)
                .order_by("pk")
            )
            if not targets:
                continue
            lost = max(targets, key=lambda t: t.attempts)
            if lost.attempts >= max_attempts():
                GenerationRun.move_status(
                    run_id,
                    RunStatus.FAILED,
                    error=lost_text(lost.lease_holder, lost.attempts),
                )
                continue
            ids = [t.pk for t in targets]
            GenerationTarget.objects.filter(pk__in=ids).update(
                attempts=lost.attempts + 1, lease_expires_at=None
            )
            run = GenerationRun.objects.select_related("generator").get(pk=run_id)
            enqueue.later(
                "jury.generate_chunk", run_id, ids, queue=run.generator.queue_name
            )
    return len(run_ids)


def _messages(run: GenerationRun, target: GenerationTarget) -> list[dict[str, str]]:
    turns = target.dialogue.turns
    if run.kind == GenerationKind.REFUSALS:
        return build_refusal_messages(
            turns=turns, strategy=target.strategy, version=run.prompt_version
        )
    return build_response_messages(turns=turns, version=run.prompt_version)


def _failure(generation: Generation) -> str:
    if generation.error:
        return generation.error
    if not generation.text.strip():
        return EMPTY_OUTPUT
    if "\x00" in generation.text:
        return NUL_OUTPUT
    return ""


@transaction.atomic
def _record(
    run: GenerationRun,
    target_id: int,
    generation: Generation | None,
    *,
    turns: list[dict[str, str]] | None = None,
    error: str = "",
) -> int:
    """Store one target's outcome if it is still pending; 1 if a dialogue was written.

    Lock order: the target row, then the dialogue insert (the batch's unique content
    hash settles a race between two targets that produced the same text).
    """
    target = (
        GenerationTarget.objects.select_for_update()
        .select_related("dialogue")
        .get(pk=target_id)
    )
    if target.status != TargetStatus.PENDING:
        return 0
    target.finished_at = timezone.now()
    if generation is not None:
        target.output = generation.text.replace("\x00", "\ufffd")
        target.latency_ms = generation.latency_ms
        target.prompt_tokens = generation.prompt_tokens
        target.completion_tokens = generation.completion_tokens
        error = _failure(generation)
    written = 0
    if error or generation is None or turns is None:
        target.status = TargetStatus.FAILED
        target.error = error
    else:
        full = [*turns, {"role": "assistant", "content": generation.text}]
        dialogue, created = _write_dialogue(run, target, full)
        target.result = dialogue
        target.status = TargetStatus.WRITTEN if created else TargetStatus.DUPLICATE
        written = int(created)
    target.save()
    return written


def _write_dialogue(
    run: GenerationRun, target: GenerationTarget, turns: list[dict[str, str]]
) -> tuple[Dialogue, bool]:
    """The new dialogue (and a refusal's label), or the one that holds this text."""
    digest = content_hash(turns)
    existing = Dialogue.objects.filter(batch=run.batch, content_hash=digest).first()
    if existing is not None:
        return existing, False
    answered = target.dialogue
    prompt, response = prompt_and_response(turns)
    refusal = run.kind == GenerationKind.REFUSALS
    metadata: dict[str, object] = {
        "generator": run.generator.name,
        "answers": answered.pk,
        "generation_run": run.pk,
    }
    if refusal:
        metadata = {"strategy": target.strategy, **metadata}
    try:
        with transaction.atomic():
            dialogue = Dialogue.objects.create(
                batch=run.batch,
                external_id=answered.external_id,
                source=GENERATED_SOURCE,
                augmentation=Augmentation.REFUSAL
                if refusal
                else Augmentation.GENERATED_RESPONSE,
                turns=turns,
                prompt=prompt,
                response=response,
                content_hash=digest,
                metadata=metadata,
            )
    except IntegrityError:
        # Another target wrote the same text between the check and the insert.
        return Dialogue.objects.get(batch=run.batch, content_hash=digest), False
    if refusal:
        _label_refusal(dialogue, answered)
    return dialogue, True


def _label_refusal(refusal: Dialogue, answered: Dialogue) -> Label:
    """The refusal's labels, as the Aegis 2.0 release gives its refusal rows."""
    human = list(
        Label.objects.human()
        .filter(dialogue=answered)
        .prefetch_related("label_categories")
        .order_by("pk")
    )
    if human:
        source = "human"
        counts: Counter[int] = Counter()
        for vote in human:  # most often chosen first; ties in the order given
            counts.update(lc.category_id for lc in vote.label_categories.all())
        category_ids = [c for c, _ in counts.most_common()]
    else:
        reference = (
            Label.objects.filter(dialogue=answered, kind=VoteKind.REFERENCE)
            .prefetch_related("label_categories")
            .first()
        )
        source = (reference.prompt_label_source if reference else "") or "human"
        category_ids = (
            [lc.category_id for lc in reference.label_categories.all()]
            if reference
            else []
        )
    label = Label.objects.create(
        dialogue=refusal,
        kind=VoteKind.REFERENCE,
        label="unsafe",
        response_label="safe",
        prompt_label_source=source,
        response_label_source=REFUSAL_LABEL_SOURCE,
    )
    LabelCategory.objects.bulk_create(
        LabelCategory(label=label, category_id=c, position=i)
        for i, c in enumerate(category_ids)
    )
    # The refusal's final label, in this worker once the label is committed.
    recompute_on_commit(refusal.pk)
    return label


def finish_if_complete(run: GenerationRun) -> bool:
    """Mark a running run done once no target is pending."""
    if GenerationTarget.objects.filter(run=run, status=TargetStatus.PENDING).exists():
        return False
    GenerationRun.move_status(run.pk, RunStatus.DONE)
    return True


@dataclass(frozen=True)
class GenerationProgress:
    targets: int
    pending: int
    written: int
    duplicates: int
    failed: int
    # strategy ("" for responses) -> (finished, targets)
    by_strategy: dict[str, tuple[int, int]]
    # The most starts among the pending targets: 2 or more once a reaper queued
    # their chunk again after its worker was lost.
    attempts: int = 0

    @property
    def finished(self) -> int:
        return self.targets - self.pending

    @property
    def requeued_text(self) -> str:
        """What the run's page says while a re-queued chunk is pending ("" else)."""
        return requeued_text(self.attempts) if self.pending else ""

    @property
    def percent(self) -> int:
        return 100 if not self.targets else int(100 * self.finished / self.targets)


_STATUS_COUNTS = {
    "targets": Count("pk"),
    "pending": Count("pk", filter=Q(status=TargetStatus.PENDING)),
    "written": Count("pk", filter=Q(status=TargetStatus.WRITTEN)),
    "duplicates": Count("pk", filter=Q(status=TargetStatus.DUPLICATE)),
    "failed": Count("pk", filter=Q(status=TargetStatus.FAILED)),
    "attempts": Max("attempts", filter=Q(status=TargetStatus.PENDING)),
}


def generation_progress(run: GenerationRun) -> GenerationProgress:
    """Counts from the database: two aggregate queries, whatever the run's size;
    the run keeps its finished targets and their number as its `counts`."""
    totals = GenerationTarget.objects.filter(run=run).aggregate(**_STATUS_COUNTS)
    by_strategy = {
        strategy: (n - pending, n)
        for strategy, n, pending in GenerationTarget.objects.filter(run=run)
        .values("strategy")
        .annotate(
            n=Count("pk"), pending=Count("pk", filter=Q(status=TargetStatus.PENDING))
        )
        .order_by("strategy")
        .values_list("strategy", "n", "pending")
    }
    totals["attempts"] = totals["attempts"] or 0  # None: nothing pending
    progress = GenerationProgress(by_strategy=by_strategy, **totals)
    run.counts = (progress.finished, progress.targets)  # the run's done and total
    return progress
