"""Judges (configuration) and jury runs (DESIGN section 4).

The votes themselves are `annotation.Label` rows of kind "model", keyed by the run's
`key`; decisions are `annotation.JuryDecision` rows.
"""

import hashlib
import os
import re
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from annotation.facade import Job, Label, Leased, VoteKind
from jury.backends.base import JudgeConfig

ENV_REFERENCE = re.compile(r"^\$\{([A-Z0-9_]+)\}$")


class Backend(models.TextChoices):
    VLLM = "vllm", "vLLM (in the worker, GPU)"
    OPENAI = "openai", "OpenAI-compatible endpoint (e.g. vllm serve)"
    TRANSFORMERS = "transformers", "transformers (local model, CPU or GPU)"


class JudgeQuerySet(models.QuerySet["Judge"]):
    def enabled(self) -> "JudgeQuerySet":
        return self.filter(enabled=True)


class Judge(models.Model):
    """One judge slot: a model, how to reach it, how to sample, which queue runs it."""

    name = models.CharField(
        max_length=64,
        unique=True,
        validators=[
            RegexValidator(r"^[a-z0-9][a-z0-9.\-]*$", "Lowercase, digits, . and -")
        ],
    )
    backend = models.CharField(max_length=16, choices=Backend.choices)
    model = models.CharField(
        max_length=500,
        help_text="Path or name; ${ENV_VAR} takes it from the worker's environment.",
    )
    endpoint = models.CharField(max_length=500, blank=True, default="")
    api_key_env = models.CharField(
        max_length=100,
        blank=True,
        default="",
        help_text="Name of the env var, not the key.",
    )
    temperature = models.FloatField(default=0.0)
    max_tokens = models.PositiveIntegerField(
        default=256, validators=[MinValueValidator(8)]
    )
    prompt_version = models.CharField(max_length=32, default="aegis-jury-v1")
    queue = models.CharField(max_length=100, blank=True, default="")
    enabled = models.BooleanField(default=True)
    extra = models.JSONField(default=dict, blank=True, help_text="Backend options.")
    description = models.CharField(max_length=300, blank=True, default="")

    objects = JudgeQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(backend__in=[b.value for b in Backend]),
                name="judge_backend_valid",
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def queue_name(self) -> str:
        return self.queue or f"jury.{self.name}"

    def resolved_model(self) -> str:
        """The model path, with ${ENV_VAR} read now (in the process that runs it)."""
        found = ENV_REFERENCE.match(self.model.strip())
        if found:
            return os.environ.get(found.group(1), "")
        return self.model.strip()

    @property
    def model_variable(self) -> str:
        """The environment variable the model is read from ("" for a plain name)."""
        found = ENV_REFERENCE.match(self.model.strip())
        return found.group(1) if found else ""

    @property
    def available(self) -> bool:
        """Enabled, and its model named (an ${ENV_VAR} that is set)."""
        return self.enabled and bool(self.resolved_model())

    @property
    def unavailable_reason(self) -> str:
        """Why a run cannot use this judge, in words; "" when it can."""
        if not self.enabled:
            return "disabled in its configuration"
        if not self.resolved_model():
            if self.model_variable:
                return f"model not set: set {self.model_variable}"
            return "model not set"
        return ""

    def config(self) -> JudgeConfig:
        return JudgeConfig(
            name=self.name,
            backend=self.backend,
            model=self.resolved_model(),
            endpoint=self.endpoint,
            api_key_env=self.api_key_env,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            extra=dict(self.extra or {}),
        )


class Scope(models.TextChoices):
    UNSAFE_MAJORITY = "unsafe_majority", "Responses of dialogues the humans call unsafe"
    ALL_RESPONSES = (
        "all_responses",
        "Every response (pre-labels, hidden from annotators)",
    )


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    CANCELLED = "cancelled", "Cancelled"
    FAILED = "failed", "Failed"


# The moves a run's status may make (a run's status changes only through
# Job.set_status or Job.move_status, which check this map).
RUN_TRANSITIONS: dict[str, frozenset[str]] = {
    RunStatus.RUNNING: frozenset(
        {RunStatus.DONE, RunStatus.CANCELLED, RunStatus.FAILED}
    ),
    RunStatus.CANCELLED: frozenset({RunStatus.RUNNING}),
    RunStatus.FAILED: frozenset({RunStatus.RUNNING}),
    RunStatus.DONE: frozenset(),
}


class Run(Job):
    """What a jury run and a generation run share: RunStatus and its moves.

    Done and failed runs have a finished time; a cancelled run has none (it is
    stopped until a lead resumes it). `done` of `total` are votes or texts, which
    are counted, not stored: the service that counts them for a page sets `counts`,
    and a run read without them counts them when asked.
    """

    TRANSITIONS = RUN_TRANSITIONS
    FINISHED = frozenset({RunStatus.DONE, RunStatus.FAILED})
    SUCCEEDED = RunStatus.DONE

    counts: tuple[int, int] | None = None

    class Meta:
        abstract = True

    def count_progress(self) -> tuple[int, int]:
        """(done, total) from the database."""
        raise NotImplementedError

    def _counts(self) -> tuple[int, int]:
        if self.counts is None:
            self.counts = self.count_progress()
        return self.counts

    @property
    def done(self) -> int:
        return self._counts()[0]

    @property
    def total(self) -> int:
        return self._counts()[1]

    @property
    def percent(self) -> int:
        """100 once every vote or text is in, before the run is marked done."""
        return 100 if not self.total else int(100 * self.done / self.total)

    @property
    def phase(self) -> str:
        """Runs store no phase: jury.runs.state tells a jury run's from its judges."""
        return ""


class JuryRun(Run):
    """A jury run over a fixed set of a batch's dialogues with chosen judges; `done`
    of `total` are its votes of dialogues x judges."""

    batch = models.ForeignKey(
        "annotation.Batch", on_delete=models.CASCADE, related_name="jury_runs"
    )
    judges = models.ManyToManyField(Judge, related_name="runs")
    scope = models.CharField(max_length=32, choices=Scope.choices)
    sources = models.JSONField(default=list, blank=True)
    chunk_size = models.PositiveSmallIntegerField(
        default=16, validators=[MinValueValidator(1)]
    )
    status = models.CharField(
        max_length=16, choices=RunStatus.choices, default=RunStatus.RUNNING
    )
    # The "humans call unsafe" scope takes dialogues whose human votes are complete;
    # `include_incomplete` is the lead's choice to take those still waiting too.
    # `waiting_for_votes` is what the scope found waiting when the run started:
    # {"dialogues": n, "vote_counts": [1, 2], "labels_required": 3} (jury.runs.services).
    include_incomplete = models.BooleanField(default=False)
    waiting_for_votes = models.JSONField(default=dict, blank=True)
    # Why the run failed: the judge and the error of the chunk that failed.
    error = models.TextField(blank=True, default="")
    # Where the run's votes came from when no worker made them here, shown on its
    # page: the demo's run recorded once from the real CPU judges (jury.demo).
    note = models.CharField(max_length=300, blank=True, default="")
    dialogues = models.ManyToManyField(
        "annotation.Dialogue", through="RunDialogue", related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"jury run {self.pk} on {self.batch_id}"

    @property
    def key(self) -> str:
        """The run_key of its votes and decisions in `annotation`."""
        return f"jury-run-{self.pk}"

    def count_progress(self) -> tuple[int, int]:
        votes = Label.objects.filter(kind=VoteKind.MODEL, run_key=self.key).count()
        return votes, self.targets.count() * self.judges.count()

    def options(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "sources": self.sources,
            "chunk_size": self.chunk_size,
        }


class RunDialogue(models.Model):
    """A dialogue a run judges (fixed when the run starts)."""

    run = models.ForeignKey(JuryRun, on_delete=models.CASCADE, related_name="targets")
    dialogue = models.ForeignKey(
        "annotation.Dialogue", on_delete=models.CASCADE, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["run", "dialogue"], name="run_dialogue_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.run_id}: {self.dialogue_id}"


class JudgePhase(models.TextChoices):
    """What a judge's worker last said it was doing in a run (no row: queued)."""

    LOADING = "loading", "Loading the model"
    RUNNING = "running", "Running"
    FAILED = "failed", "Failed"


class RunJudgeState(models.Model):
    """One judge's state in a run, written by the worker that runs its chunks.

    `worker` and `worker_pid` name the process that last ran a chunk: a chunk run by
    another process loads the model again. The judge's rate is the votes written
    since `running_since` (`votes_at_start` were there before) over the time since.

    `attempts` is the highest attempt among the judge's chunks (`RunChunk`): 2 or
    more once a reaper queued one again after its worker was lost (the page says so).
    """

    run = models.ForeignKey(
        JuryRun, on_delete=models.CASCADE, related_name="judge_states"
    )
    judge = models.ForeignKey(Judge, on_delete=models.CASCADE, related_name="+")
    phase = models.CharField(max_length=16, choices=JudgePhase.choices)
    worker = models.CharField(max_length=255, blank=True, default="")
    worker_pid = models.PositiveIntegerField(null=True, blank=True)
    loading_since = models.DateTimeField(null=True, blank=True)
    running_since = models.DateTimeField(null=True, blank=True)
    votes_at_start = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    attempts = models.PositiveSmallIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["run", "judge__name"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "judge"], name="run_judge_state_unique"
            ),
            models.CheckConstraint(
                condition=Q(phase__in=[p.value for p in JudgePhase]),
                name="run_judge_state_phase_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.run_id}: {self.judge_id} {self.phase}"


class RunChunk(Leased):
    """A chunk of a jury run being judged: the row its worker's lease is on.

    The lease belongs to the chunk, the unit a worker takes and can lose: a judge's
    queue may hold more of its chunks, which another worker takes while the lost
    one's lease runs out. Written when a chunk starts (`key`: its judge and
    dialogues, so a re-queued or redelivered copy finds the same row and its
    attempts) and deleted when it ends; a row whose lease ran out is a chunk whose
    worker was lost.
    """

    run = models.ForeignKey(JuryRun, on_delete=models.CASCADE, related_name="chunks")
    judge = models.ForeignKey(Judge, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=80)
    dialogue_ids = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "key"], name="run_chunk_unique")
        ]

    def __str__(self) -> str:
        return f"{self.run_id}: chunk {self.key}"

    @staticmethod
    def key_of(judge_id: int, dialogue_ids: Sequence[int]) -> str:
        ids = ",".join(str(d) for d in sorted(dialogue_ids))
        return f"{judge_id}:{hashlib.sha1(ids.encode()).hexdigest()}"


class WorkerPresence(models.Model):
    """A Celery worker's last sign of life and the queues it consumes.

    Written every few seconds by the worker itself (jury.presence.PresenceStep), so
    it works on every broker, the embedded SQLite one included, which has no remote
    control to ask workers with.
    """

    hostname = models.CharField(max_length=255, unique=True)
    queues = models.JSONField(default=list)
    pid = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField()
    last_seen = models.DateTimeField()
    # Set by a warm shutdown; a killed worker just stops being seen.
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["hostname"]

    def __str__(self) -> str:
        return f"{self.hostname} ({', '.join(self.queues)})"


class GenerationKind(models.TextChoices):
    REFUSALS = "refusals", "Refusals for unsafe prompts"
    RESPONSES = "responses", "Responses for prompts without one"


class Strategy(models.TextChoices):
    """How a refusal deflects (DESIGN section 5); "" on a response's target."""

    DIRECT_REFUSAL = "direct_refusal", "Direct refusal"
    EDUCATIONAL_INSIGHT = "educational_insight", "Educational insight"
    SAFE_REFRAMING = "safe_reframing", "Safe reframing"


class TargetStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    WRITTEN = "written", "Written"
    DUPLICATE = "duplicate", "Duplicate (the batch already holds this text)"
    FAILED = "failed", "Failed"


class GenerationRunQuerySet(models.QuerySet["GenerationRun"]):
    def with_counts(self) -> "GenerationRunQuerySet":
        """Each run's target counts by status, in the same query."""
        pending = Q(targets__status=TargetStatus.PENDING)
        return self.annotate(
            n_targets=models.Count("targets"),
            n_pending=models.Count("targets", filter=pending),
            n_written=models.Count(
                "targets", filter=Q(targets__status=TargetStatus.WRITTEN)
            ),
            n_duplicates=models.Count(
                "targets", filter=Q(targets__status=TargetStatus.DUPLICATE)
            ),
            n_failed=models.Count(
                "targets", filter=Q(targets__status=TargetStatus.FAILED)
            ),
        )


class GenerationRun(Run):
    """A generation run: refusals or responses for a batch's prompts, fixed at start,
    written by one generator (a judge slot: its backend, model, queue and sampling);
    `done` of `total` are its finished targets of all."""

    batch = models.ForeignKey(
        "annotation.Batch", on_delete=models.CASCADE, related_name="generation_runs"
    )
    generator = models.ForeignKey(
        Judge, on_delete=models.PROTECT, related_name="generation_runs"
    )
    kind = models.CharField(max_length=16, choices=GenerationKind.choices)
    # Refusal strategies, in the order given; empty for responses.
    strategies = models.JSONField(default=list, blank=True)
    prompt_version = models.CharField(max_length=32)
    # None: the generator's own max_tokens (a judge's is sized for a short verdict).
    max_tokens = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(8)]
    )
    chunk_size = models.PositiveSmallIntegerField(
        default=8, validators=[MinValueValidator(1)]
    )
    status = models.CharField(
        max_length=16, choices=RunStatus.choices, default=RunStatus.RUNNING
    )
    # Why the run failed (its worker was lost too often); a target's own errors are
    # on the target.
    error = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = GenerationRunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=[k.value for k in GenerationKind]),
                name="generation_run_kind_valid",
            )
        ]

    def __str__(self) -> str:
        return f"generation run {self.pk} ({self.kind}) on {self.batch_id}"

    def count_progress(self) -> tuple[int, int]:
        pending = Q(status=TargetStatus.PENDING)
        counts = self.targets.aggregate(
            n=models.Count("pk"), pending=models.Count("pk", filter=pending)
        )
        return counts["n"] - counts["pending"], counts["n"]


class GenerationTarget(Leased):
    """One text a run writes: a refusal with one strategy, or one response.

    `dialogue` is the dialogue answered (the first of those that share the prompt);
    `prompt_hash` is the content hash of the prompt turns, so a prompt gets one
    target per strategy however many dialogues share it. `result` is the dialogue
    written, or for a duplicate the one that already held the text.

    The lease is on the targets of the chunk a worker is writing (a generation
    run's chunks share its queue; a chunk has no row of its own): pending targets
    whose lease ran out are what a lost worker left.
    """

    run = models.ForeignKey(
        GenerationRun, on_delete=models.CASCADE, related_name="targets"
    )
    dialogue = models.ForeignKey(
        "annotation.Dialogue", on_delete=models.CASCADE, related_name="+"
    )
    strategy = models.CharField(
        max_length=32, choices=Strategy.choices, blank=True, default=""
    )
    prompt_hash = models.CharField(max_length=64)
    status = models.CharField(
        max_length=16, choices=TargetStatus.choices, default=TargetStatus.PENDING
    )
    result = models.ForeignKey(
        "annotation.Dialogue",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # What the model said, verbatim (also when it failed or was a duplicate).
    output = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "id"]
        indexes = [
            models.Index(fields=["run", "status"], name="generation_target_status")
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "dialogue", "strategy"],
                name="generation_target_unique",
            ),
            models.UniqueConstraint(
                fields=["run", "prompt_hash", "strategy"],
                name="generation_target_one_per_prompt",
            ),
            models.CheckConstraint(
                condition=Q(status__in=[s.value for s in TargetStatus]),
                name="generation_target_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.run_id}: {self.dialogue_id} {self.strategy or 'response'}"
