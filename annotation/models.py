"""Batches, dialogues, every vote on them (human, model, imported) and import jobs."""

import random

from django.conf import settings
from django.core.validators import (
    MaxValueValidator,
    MinValueValidator,
    RegexValidator,
)
from django.db import models
from django.db.models import Count, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.refusals import Conflict
from taxonomy.models import Category, Taxonomy


class LabelValue(models.TextChoices):
    SAFE = "safe", "Safe"
    NEEDS_CAUTION = "needs_caution", "Needs caution"
    UNSAFE = "unsafe", "Unsafe"


class NeedsCautionPolicy(models.TextChoices):
    # Aegis 2.0's release mapped needs_caution to safe ("permissive").
    PERMISSIVE = "permissive", "Permissive (needs caution counts as safe)"
    DEFENSIVE = "defensive", "Defensive (needs caution counts as unsafe)"


class BatchStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"
    ARCHIVED = "archived", "Archived"


# Batch names appear in URLs and file names.
BATCH_NAME_PATTERN = r"^(?!new$)[\w][\w .\-]*$"  # "new" is the create page's URL


class TransitionRefused(Conflict):
    """A batch status change that its transitions map does not allow."""

    def __init__(self, batch: "Batch", status: str) -> None:
        allowed = ", ".join(sorted(Batch.TRANSITIONS[batch.status])) or "nothing"
        super().__init__(
            f"Batch {batch.name} is {batch.status}; it can go to {allowed}, "
            f"not {status}."
        )
        self.current = batch.status
        self.requested = status


class BatchQuerySet(models.QuerySet["Batch"]):
    def with_counts(self) -> "BatchQuerySet":
        """Dialogue and label counts in one query (subqueries, not a join product)."""
        dialogues = (
            Dialogue.objects.filter(batch=models.OuterRef("pk"))
            .order_by()
            .values("batch")
            .annotate(n=Count("pk"))
            .values("n")
        )
        labels = (
            Label.objects.filter(dialogue__batch=models.OuterRef("pk"))
            .order_by()
            .values("dialogue__batch")
            .annotate(n=Count("pk"))
            .values("n")
        )
        annotators = (
            Assignment.objects.filter(batch=models.OuterRef("pk"))
            .order_by()
            .values("batch")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return self.annotate(
            n_dialogues=Coalesce(models.Subquery(dialogues), 0),
            n_labels=Coalesce(models.Subquery(labels), 0),
            n_annotators=Coalesce(models.Subquery(annotators), 0),
        )


class Batch(models.Model):
    """A set of dialogues labelled against one taxonomy version by assigned annotators."""

    name = models.CharField(
        max_length=100,
        unique=True,
        validators=[
            RegexValidator(
                BATCH_NAME_PATTERN,
                "Use letters, digits, spaces, dots, dashes and underscores only.",
            )
        ],
    )
    taxonomy = models.ForeignKey(
        Taxonomy, on_delete=models.PROTECT, related_name="batches"
    )
    labels_required = models.PositiveSmallIntegerField(
        default=3, validators=[MinValueValidator(1)]
    )
    needs_caution_policy = models.CharField(
        max_length=16,
        choices=NeedsCautionPolicy.choices,
        default=NeedsCautionPolicy.PERMISSIVE,
    )
    asks_response_label = models.BooleanField(
        default=False, help_text="Annotators also label the response on its own."
    )
    instructions = models.TextField(blank=True, default="", help_text="Markdown.")
    status = models.CharField(
        max_length=16, choices=BatchStatus.choices, default=BatchStatus.ACTIVE
    )
    # What the stored final labels were derived from, as of the last derive_batch
    # (annotation.final_labels.services.inputs_stamp): an export re-derives when it differs.
    final_labels_stamp = models.CharField(max_length=64, blank=True, default="")
    reservation_minutes = models.PositiveSmallIntegerField(
        default=30,
        validators=[MinValueValidator(1)],
        help_text="How long a dialogue stays reserved for one annotator.",
    )
    break_reminder_minutes = models.PositiveSmallIntegerField(
        default=50,
        validators=[MinValueValidator(1)],
        help_text="Remind annotators to rest after this much continuous work.",
    )
    # The share of requests for work that serve a gold item the annotator has not
    # labelled yet (annotation.review.gold.services); 0 mixes none in.
    gold_rate = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Share of requests that serve a gold item (0 to 1).",
    )
    annotators = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        through="Assignment",
        related_name="batches",
        blank=True,
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = BatchQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "name"]
        verbose_name_plural = "batches"
        constraints = [
            models.CheckConstraint(
                condition=Q(labels_required__gte=1),
                name="batch_labels_required_positive",
            ),
            models.CheckConstraint(
                condition=Q(reservation_minutes__gte=1),
                name="batch_reservation_minutes_positive",
            ),
            models.CheckConstraint(
                condition=Q(gold_rate__gte=0) & Q(gold_rate__lte=1),
                name="batch_gold_rate_share",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    # Archived is where finished batches rest; a lead may bring one back to active.
    TRANSITIONS: dict[str, frozenset[str]] = {
        BatchStatus.ACTIVE: frozenset({BatchStatus.PAUSED, BatchStatus.ARCHIVED}),
        BatchStatus.PAUSED: frozenset({BatchStatus.ACTIVE, BatchStatus.ARCHIVED}),
        BatchStatus.ARCHIVED: frozenset({BatchStatus.ACTIVE}),
    }

    @property
    def is_active(self) -> bool:
        return self.status == BatchStatus.ACTIVE

    def set_status(self, status: str) -> None:
        """The one way to change the status; raises TransitionRefused."""
        if status not in self.TRANSITIONS.get(self.status, frozenset()):
            raise TransitionRefused(self, status)
        self.status = status
        self.save(update_fields=["status"])


class Assignment(models.Model):
    batch = models.ForeignKey(
        Batch, on_delete=models.CASCADE, related_name="assignments"
    )
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments"
    )
    assigned_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["batch", "annotator"], name="assignment_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.annotator_id} on {self.batch_id}"


class Augmentation(models.TextChoices):
    NONE = "", "Original"
    REFUSAL = "refusal", "Refusal (data augmentation)"
    GENERATED_RESPONSE = "gen_response", "Generated response"


def shuffle_key() -> int:
    """A random position in the batch's shuffled order (see `annotation.labelling.queue`)."""
    return random.getrandbits(31)


# What annotators label: the source's dialogues and responses a model generated for
# prompts that had none (new content); refusals are labelled safe by construction.
LABELLED_BY_HUMANS = (Augmentation.NONE, Augmentation.GENERATED_RESPONSE)


class DialogueQuerySet(models.QuerySet["Dialogue"]):
    def originals(self) -> "DialogueQuerySet":
        return self.filter(augmentation=Augmentation.NONE)

    def for_annotators(self) -> "DialogueQuerySet":
        """The dialogues that need human votes (originals and generated responses)."""
        return self.filter(augmentation__in=LABELLED_BY_HUMANS)


class Dialogue(models.Model):
    """A user prompt, optionally answered by an assistant, possibly over several turns.

    `turns` is the whole conversation; `prompt` and `response` are its last user turn
    and the assistant turn that answers it, the pair that gets labelled.
    """

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="dialogues")
    external_id = models.CharField(max_length=255)
    source = models.CharField(max_length=64, blank=True, default="")
    augmentation = models.CharField(
        max_length=16,
        choices=Augmentation.choices,
        blank=True,
        default=Augmentation.NONE,
    )
    turns = models.JSONField()
    prompt = models.TextField()
    response = models.TextField(null=True, blank=True)
    # Redacted rows keep their place but not their text: the source may not be shared.
    redacted = models.BooleanField(default=False)
    reconstruction_id = models.CharField(max_length=255, null=True, blank=True)
    content_hash = models.CharField(max_length=64)
    metadata = models.JSONField(default=dict, blank=True)
    import_job = models.ForeignKey(
        "ImportJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The queue's bookkeeping: human votes, votes plus active reservations (never
    # above the required count), and the place of the dialogue in the batch's random
    # order. (batch, votes, shuffle_key) is indexed, so picking the next dialogue
    # never scans the batch.
    votes = models.PositiveSmallIntegerField(default=0)
    claimed = models.PositiveSmallIntegerField(default=0)
    shuffle_key = models.IntegerField(default=shuffle_key)
    # Set when a lead decides the final labels; annotators can no longer edit votes.
    adjudicated_at = models.DateTimeField(null=True, blank=True)
    # A gold item (its known answer is its GoldItem): served only by the gold pick, to
    # every annotator once, never by the regular pick. A database default, because
    # imports and batch copies insert rows in SQL without naming this column.
    is_gold = models.BooleanField(default=False, db_default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = DialogueQuerySet.as_manager()

    class Meta:
        ordering = ["batch", "id"]
        indexes = [
            models.Index(
                fields=["batch", "votes", "shuffle_key"], name="dialogue_queue_order"
            )
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["batch", "content_hash"],
                name="dialogue_unique_content_per_batch",
            ),
            models.UniqueConstraint(
                fields=["batch", "external_id"],
                condition=Q(augmentation=""),
                name="dialogue_unique_external_id_per_batch",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.batch_id}:{self.external_id}"

    @property
    def has_response(self) -> bool:
        return self.response is not None

    @property
    def is_adjudicated(self) -> bool:
        return self.adjudicated_at is not None


class VoteKind(models.TextChoices):
    HUMAN = "human", "Human"
    MODEL = "model", "Model (jury)"
    REFERENCE = "reference", "Imported reference label"
    # A lead's final word on a dialogue (DESIGN section 3): overrides the votes, which
    # stay; the comment says why. Agreement reports compare annotators with it.
    ADJUDICATED = "adjudicated", "Adjudicated by a lead"


class LabelQuerySet(models.QuerySet["Label"]):
    def human(self) -> "LabelQuerySet":
        return self.filter(kind=VoteKind.HUMAN)


class Label(models.Model):
    """One vote on a dialogue: a human's, a judge model's, or an imported final label.

    Human votes are dialogue-level (DESIGN section 3): `label` is required, categories
    are required when unsafe. A model vote may be invalid: then `label` is empty and
    `raw_output` holds what the model said.
    """

    dialogue = models.ForeignKey(
        Dialogue, on_delete=models.CASCADE, related_name="labels"
    )
    kind = models.CharField(max_length=16, choices=VoteKind.choices)
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="labels",
    )
    judge = models.CharField(max_length=100, blank=True, default="")
    run_key = models.CharField(max_length=64, blank=True, default="")
    label = models.CharField(
        max_length=16, choices=LabelValue.choices, null=True, blank=True
    )
    response_label = models.CharField(
        max_length=16, choices=LabelValue.choices, null=True, blank=True
    )
    categories = models.ManyToManyField(
        Category, through="LabelCategory", related_name="labels", blank=True
    )
    other_text = models.TextField(blank=True, default="")
    comment = models.TextField(blank=True, default="")
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True)
    valid = models.BooleanField(default=True)
    raw_output = models.TextField(blank=True, default="")
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    # What else a vote brought: a judge's unknown categories or parse error, ...
    details = models.JSONField(default=dict, blank=True)
    # For imported reference labels: where the released label came from.
    prompt_label_source = models.CharField(max_length=64, blank=True, default="")
    response_label_source = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = LabelQuerySet.as_manager()

    class Meta:
        ordering = ["dialogue", "id"]
        indexes = [
            models.Index(
                fields=["annotator", "-created_at"], name="label_annotator_recent"
            )
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["dialogue", "annotator"],
                condition=Q(kind="human"),
                name="label_one_human_vote_per_annotator",
            ),
            models.UniqueConstraint(
                fields=["dialogue", "judge", "run_key"],
                condition=Q(kind="model"),
                name="label_one_model_vote_per_run",
            ),
            models.UniqueConstraint(
                fields=["dialogue"],
                condition=Q(kind="reference"),
                name="label_one_reference_per_dialogue",
            ),
            models.UniqueConstraint(
                fields=["dialogue"],
                condition=Q(kind="adjudicated"),
                name="label_one_adjudication_per_dialogue",
            ),
            models.CheckConstraint(
                condition=~Q(kind="human") | Q(annotator__isnull=False),
                name="label_human_has_annotator",
            ),
            models.CheckConstraint(
                condition=~Q(kind="adjudicated")
                | (Q(annotator__isnull=False) & Q(valid=True)),
                name="label_adjudication_has_lead",
            ),
            models.CheckConstraint(
                condition=~Q(kind="model") | ~Q(judge=""),
                name="label_model_has_judge",
            ),
            models.CheckConstraint(
                # A NULL label would pass a bare IN check (SQL's unknown), hence isnull.
                condition=Q(valid=False)
                | (Q(label__isnull=False) & Q(label__in=[v.value for v in LabelValue])),
                name="label_valid_has_value",
            ),
            models.CheckConstraint(
                condition=Q(response_label__isnull=True)
                | Q(response_label__in=[v.value for v in LabelValue]),
                name="label_response_label_valid",
            ),
        ]

    def __str__(self) -> str:
        who = self.annotator_id or self.judge or self.kind
        return f"{self.dialogue_id} {who}: {self.label}"

    # Set by the services that just wrote the categories, so answering with the vote
    # does not read them back.
    category_names: list[str] | None = None

    def ordered_category_names(self) -> list[str]:
        """The vote's category names in the order the rater gave them."""
        if self.category_names is not None:
            return list(self.category_names)
        return [
            lc.category.name
            for lc in self.label_categories.select_related("category").order_by(
                "position"
            )
        ]


class LabelCategory(models.Model):
    """A category chosen in a vote; `position` keeps the order the rater gave."""

    label = models.ForeignKey(
        Label, on_delete=models.CASCADE, related_name="label_categories"
    )
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="+")
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["label", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["label", "category"], name="label_category_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.label_id}: {self.category_id}"


class JobStatus(models.TextChoices):
    PENDING = "pending", "Waiting for a worker"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Done"
    FAILED = "failed", "Failed"


class ImportKind(models.TextChoices):
    DIALOGUES = "dialogues", "Dialogues"
    LABELS = "labels", "Labels"


class ImportJobQuerySet(models.QuerySet["ImportJob"]):
    def unfinished(self) -> "ImportJobQuerySet":
        return self.filter(status__in=[JobStatus.PENDING, JobStatus.RUNNING])


class ImportJob(models.Model):
    """An upload being imported by a worker; its progress is what the page polls."""

    kind = models.CharField(
        max_length=16, choices=ImportKind.choices, default=ImportKind.DIALOGUES
    )
    batch_name = models.CharField(max_length=100)
    batch = models.ForeignKey(
        Batch, null=True, blank=True, on_delete=models.SET_NULL, related_name="imports"
    )
    format = models.CharField(max_length=32, blank=True, default="")
    options = models.JSONField(default=dict, blank=True)
    file_path = models.CharField(max_length=500)
    original_name = models.CharField(max_length=255)
    status = models.CharField(
        max_length=16, choices=JobStatus.choices, default=JobStatus.PENDING
    )
    phase = models.CharField(max_length=32, blank=True, default="")
    rows_total = models.PositiveIntegerField(null=True, blank=True)
    rows_read = models.PositiveIntegerField(default=0)
    imported = models.PositiveIntegerField(default=0)
    skipped_duplicates = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)
    error_count = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = ImportJobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"import {self.pk} of {self.original_name} into {self.batch_name}"

    @property
    def percent(self) -> int:
        if self.status == JobStatus.SUCCEEDED:
            return 100
        if not self.rows_total:
            return 0
        return min(99, int(100 * self.rows_read / self.rows_total))

    @property
    def finished(self) -> bool:
        return self.status in (JobStatus.SUCCEEDED, JobStatus.FAILED)


class ReservationState(models.TextChoices):
    ACTIVE = "active", "Active"
    RELEASED = "released", "Released (expired or skipped)"
    DONE = "done", "Labelled"


class ReservationQuerySet(models.QuerySet["Reservation"]):
    def active(self) -> "ReservationQuerySet":
        return self.filter(state=ReservationState.ACTIVE)

    def live(self) -> "ReservationQuerySet":
        return self.active().filter(expires_at__gt=timezone.now())


class Reservation(models.Model):
    """A dialogue held for one annotator until they label it, skip it, or time runs out.

    One row per dialogue and annotator: reserving the same dialogue again reuses it.
    While `state` is active the reservation counts in `Dialogue.claimed`.
    """

    dialogue = models.ForeignKey(
        Dialogue, on_delete=models.CASCADE, related_name="reservations"
    )
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reservations"
    )
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="+")
    state = models.CharField(
        max_length=16, choices=ReservationState.choices, default=ReservationState.ACTIVE
    )
    reserved_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    objects = ReservationQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(
                fields=["annotator", "expires_at"],
                condition=Q(state="active"),
                name="reservation_active_mine",
            ),
            models.Index(
                fields=["batch", "expires_at"],
                condition=Q(state="active"),
                name="reservation_active_expiry",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["dialogue", "annotator"], name="reservation_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.dialogue_id} for {self.annotator_id} ({self.state})"


class Skip(models.Model):
    """An annotator passed on a dialogue; it goes to others and never back to them."""

    dialogue = models.ForeignKey(
        Dialogue, on_delete=models.CASCADE, related_name="skips"
    )
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="skips"
    )
    reason = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["dialogue", "annotator"], name="skip_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.annotator_id} skipped {self.dialogue_id}"


class FlagReason(models.TextChoices):
    BROKEN_TEXT = "broken_text", "Broken text"
    WRONG_LANGUAGE = "wrong_language", "Wrong language"
    GUIDELINE_UNCLEAR = "guideline_unclear", "Guideline unclear"
    OTHER = "other", "Other"


class FlagQuerySet(models.QuerySet["Flag"]):
    def open(self) -> "FlagQuerySet":
        return self.filter(resolved_at__isnull=True)


class Flag(models.Model):
    """An annotator's report that a dialogue needs a lead's eye."""

    dialogue = models.ForeignKey(
        Dialogue, on_delete=models.CASCADE, related_name="flags"
    )
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="flags"
    )
    reason = models.CharField(max_length=32, choices=FlagReason.choices)
    note = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    objects = FlagQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["dialogue", "annotator"], name="flag_unique"
            ),
            models.CheckConstraint(
                condition=Q(reason__in=[r.value for r in FlagReason]),
                name="flag_reason_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.dialogue_id} flagged by {self.annotator_id}: {self.reason}"


class LabelEdit(models.Model):
    """One change to a vote: who made it, when, and the value before and after."""

    label = models.ForeignKey(Label, on_delete=models.CASCADE, related_name="edits")
    edited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    edited_at = models.DateTimeField(auto_now_add=True)
    before = models.JSONField()
    after = models.JSONField()

    class Meta:
        ordering = ["label", "edited_at"]

    def __str__(self) -> str:
        return f"edit of {self.label_id} at {self.edited_at:%Y-%m-%d %H:%M}"


class JuryVerdict(models.TextChoices):
    SAFE = "safe", "Safe"
    UNSAFE = "unsafe", "Unsafe"
    NEEDS_REVIEW = "needs_review", "Needs human review"


class JuryDecision(models.Model):
    """What a jury run decided about a dialogue's response (DESIGN section 4).

    Written by the jury through `annotation.facade`, read by derivation and
    export; `annotation` never imports `jury`, so the run is named by its key.
    """

    dialogue = models.ForeignKey(
        Dialogue, on_delete=models.CASCADE, related_name="jury_decisions"
    )
    run_key = models.CharField(max_length=64)
    decision = models.CharField(max_length=16, choices=JuryVerdict.choices)
    categories = models.JSONField(default=list, blank=True)
    valid_votes = models.PositiveSmallIntegerField()
    total_votes = models.PositiveSmallIntegerField()
    agreement = models.FloatField(null=True, blank=True)
    reason = models.CharField(max_length=200, blank=True, default="")
    decided_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["dialogue", "run_key"]
        constraints = [
            models.UniqueConstraint(
                fields=["dialogue", "run_key"], name="jury_decision_unique"
            ),
            models.CheckConstraint(
                condition=Q(decision__in=[v.value for v in JuryVerdict]),
                name="jury_decision_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.dialogue_id} {self.run_key}: {self.decision}"


class AgreementReport(models.Model):
    """A batch's agreement report (annotation.agreement.services), computed in Celery for large
    batches and kept until the batch changes.

    `fingerprint` sums up what the report reads (votes, their edits, decisions,
    dialogues, the batch's policy); a report whose fingerprint no longer matches the
    batch is stale and is computed again on the next request.
    """

    batch = models.OneToOneField(
        Batch, on_delete=models.CASCADE, related_name="agreement_report"
    )
    fingerprint = models.CharField(max_length=64, blank=True, default="")
    status = models.CharField(
        max_length=16, choices=JobStatus.choices, default=JobStatus.PENDING
    )
    data = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    task_id = models.CharField(max_length=64, blank=True, default="")
    requested_at = models.DateTimeField(null=True, blank=True)
    computed_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)

    def __str__(self) -> str:
        return f"agreement of {self.batch_id} ({self.status})"


class AuditStatus(models.TextChoices):
    OPEN = "open", "In review"
    DONE = "done", "Reviewed"


class AuditRefused(Conflict):
    """An audit status change that its transitions map does not allow."""


class AuditQuerySet(models.QuerySet["Audit"]):
    def with_progress(self) -> "AuditQuerySet":
        """`n_items` and `n_reviewed` per audit, in the same query."""
        return self.annotate(
            n_items=Count("items"),
            n_reviewed=Count("items", filter=Q(items__reviewed_at__isnull=False)),
        )


class Audit(models.Model):
    """A lead's review of a random sample of a batch's finished dialogues.

    The sample is drawn once (annotation.review.audits.services.draw_sample) from `population`
    finished dialogues with `seed`, so the same seed over the same dialogues draws the
    same items again.
    """

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="audits")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    rate = models.FloatField(
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Share of the finished dialogues drawn (of each annotator's when "
        "per annotator).",
    )
    per_annotator = models.BooleanField(default=False)
    seed = models.BigIntegerField()
    population = models.PositiveIntegerField(
        default=0, help_text="Finished dialogues the sample was drawn from."
    )
    status = models.CharField(
        max_length=16, choices=AuditStatus.choices, default=AuditStatus.OPEN
    )

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(rate__gt=0) & Q(rate__lte=1), name="audit_rate_share"
            ),
            models.CheckConstraint(
                condition=Q(status__in=[s.value for s in AuditStatus]),
                name="audit_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"audit {self.pk} of {self.batch_id}"

    # Done when every item is reviewed; reopened if a lead takes one back.
    TRANSITIONS: dict[str, frozenset[str]] = {
        AuditStatus.OPEN: frozenset({AuditStatus.DONE}),
        AuditStatus.DONE: frozenset({AuditStatus.OPEN}),
    }

    def set_status(self, status: str) -> None:
        """The one way to change the status; raises AuditRefused."""
        if status not in self.TRANSITIONS.get(self.status, frozenset()):
            raise AuditRefused(f"Audit {self.pk} is {self.status}; not {status}.")
        self.status = status
        self.save(update_fields=["status"])


class AuditItem(models.Model):
    """One sampled dialogue of an audit; `position` is its place in the review order."""

    audit = models.ForeignKey(Audit, on_delete=models.CASCADE, related_name="items")
    dialogue = models.ForeignKey(
        Dialogue, on_delete=models.CASCADE, related_name="audit_items"
    )
    position = models.PositiveIntegerField()
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["audit", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["audit", "dialogue"], name="audit_item_unique_dialogue"
            ),
            models.UniqueConstraint(
                fields=["audit", "position"], name="audit_item_unique_position"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.audit_id}#{self.position}: {self.dialogue_id}"

    @property
    def is_reviewed(self) -> bool:
        return self.reviewed_at is not None


class Verdict(models.TextChoices):
    AGREE = "agree", "Agree"
    DISAGREE = "disagree", "Disagree"


class FeedbackQuerySet(models.QuerySet["Feedback"]):
    def for_annotator(self, annotator: object) -> "FeedbackQuerySet":
        return self.filter(annotator=annotator)

    def unread(self) -> "FeedbackQuerySet":
        return self.filter(read_at__isnull=True)


class Feedback(models.Model):
    """A lead's word on one vote: agree or disagree, a note, a guideline reference.

    `annotator` is the vote's annotator (empty for a judge's vote), copied so their
    unread count is one indexed probe; the annotator reads it on their Feedback page.
    """

    audit_item = models.ForeignKey(
        AuditItem,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="feedback",
    )
    label = models.ForeignKey(Label, on_delete=models.CASCADE, related_name="feedback")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="feedback",
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    verdict = models.CharField(max_length=16, choices=Verdict.choices)
    text = models.TextField(blank=True, default="")
    guideline_ref = models.CharField(
        max_length=200,
        blank=True,
        default="",
        help_text="Where in the guidelines, e.g. §2.3 Violence vs. Criminal Planning.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    read_at = models.DateTimeField(null=True, blank=True)

    objects = FeedbackQuerySet.as_manager()

    class Meta:
        ordering = ["-updated_at", "-pk"]
        verbose_name_plural = "feedback"
        indexes = [
            models.Index(
                fields=["annotator"],
                condition=Q(read_at__isnull=True),
                name="feedback_unread",
            ),
            models.Index(
                fields=["annotator", "-updated_at"], name="feedback_annotator_recent"
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["audit_item", "label"],
                condition=Q(audit_item__isnull=False),
                name="feedback_one_per_vote_and_audit_item",
            ),
            models.CheckConstraint(
                condition=Q(verdict__in=[v.value for v in Verdict]),
                name="feedback_verdict_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.verdict} on {self.label_id} by {self.author_id}"


class GoldItem(models.Model):
    """The known answer of a gold dialogue, which annotators' votes are scored against.

    Exists exactly when `dialogue.is_gold` is set: `annotation.review.gold.services` writes both
    under the dialogue's row lock.
    """

    dialogue = models.OneToOneField(
        Dialogue, on_delete=models.CASCADE, related_name="gold_item"
    )
    label = models.CharField(max_length=16, choices=LabelValue.choices)
    response_label = models.CharField(
        max_length=16, choices=LabelValue.choices, null=True, blank=True
    )
    categories = models.ManyToManyField(Category, related_name="+", blank=True)
    other_text = models.TextField(blank=True, default="")
    note = models.TextField(
        blank=True, default="", help_text="Why this is the answer (leads only)."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["dialogue"]
        constraints = [
            models.CheckConstraint(
                condition=Q(label__in=[v.value for v in LabelValue]),
                name="gold_label_valid",
            ),
            models.CheckConstraint(
                condition=Q(response_label__isnull=True)
                | Q(response_label__in=[v.value for v in LabelValue]),
                name="gold_response_label_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"gold {self.dialogue_id}: {self.label}"


class Provenance(models.TextChoices):
    UNANIMOUS = "unanimous", "Unanimous"
    MAJORITY = "majority", "Majority"
    LLM_JURY = "llm_jury", "Response decided by the LLM jury"
    ADJUDICATED = "adjudicated", "Adjudicated by a lead"
    IMPORTED = "imported", "Imported reference label"
    UNRESOLVED = "unresolved", "Unresolved"


class FinalLabelQuerySet(models.QuerySet["FinalLabel"]):
    def resolved(self) -> "FinalLabelQuerySet":
        return self.exclude(provenance=Provenance.UNRESOLVED)

    def unresolved(self) -> "FinalLabelQuerySet":
        return self.filter(provenance=Provenance.UNRESOLVED)


class FinalLabel(models.Model):
    """A dialogue's final labels as derived from its votes (annotation.rules.derivation).

    Written only by `annotation.final_labels.services`, which derives it again whenever the
    votes change; `votes_fingerprint` is a hash of everything the derivation read,
    so an unchanged dialogue is not written again. An adjudicated dialogue's row is
    the adjudication's (it is its source), whatever the votes say.
    """

    dialogue = models.OneToOneField(
        Dialogue, on_delete=models.CASCADE, related_name="final_label"
    )
    prompt_label = models.CharField(max_length=16, null=True, blank=True)
    response_label = models.CharField(max_length=16, null=True, blank=True)
    # Names of the batch's taxonomy version, most often chosen first.
    violated_categories = models.JSONField(default=list, blank=True)
    prompt_label_source = models.CharField(max_length=64, null=True, blank=True)
    response_label_source = models.CharField(max_length=64, null=True, blank=True)
    provenance = models.CharField(max_length=16, choices=Provenance.choices)
    unresolved_reason = models.CharField(max_length=200, blank=True, default="")
    votes_fingerprint = models.CharField(max_length=64)
    computed_at = models.DateTimeField()

    objects = FinalLabelQuerySet.as_manager()

    class Meta:
        ordering = ["dialogue"]
        constraints = [
            models.CheckConstraint(
                condition=Q(provenance__in=[p.value for p in Provenance]),
                name="final_label_provenance_valid",
            ),
            models.CheckConstraint(
                condition=Q(provenance="unresolved", unresolved_reason__gt="")
                | (~Q(provenance="unresolved") & Q(unresolved_reason="")),
                name="final_label_reason_iff_unresolved",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.dialogue_id}: {self.prompt_label}/{self.response_label} " + (
            f"({self.provenance})"
        )


class Confidence(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"


class AdjudicationReason(models.TextChoices):
    AMBIGUOUS = "ambiguous", "Ambiguous"
    GUIDELINE_GAP = "guideline_gap", "Guideline gap"
    ANNOTATOR_ERROR = "annotator_error", "Annotator error"
    EDGE_CASE = "edge_case", "Edge case"
    SUBJECTIVE = "subjective", "Subjective"
    # Set by the bulk acceptance of unanimous dialogues, never chosen on the form.
    UNANIMOUS_ACCEPTED = "unanimous_accepted", "Unanimous, accepted in bulk"


class AdjudicationQuerySet(models.QuerySet["Adjudication"]):
    def current(self) -> "AdjudicationQuerySet":
        """The decisions in force (not reopened): at most one per dialogue."""
        return self.filter(reopened_at__isnull=True)


class Adjudication(models.Model):
    """One decision of a lead on a dialogue's final labels: the history of them.

    Rows are never deleted; reopening a decision marks it (`reopened_at`) and a new
    decision is a new row. The decision in force is also the dialogue's
    kind="adjudicated" Label, which derivation reads (`annotation.adjudication.services`
    writes both under the dialogue's row lock).
    """

    dialogue = models.ForeignKey(
        Dialogue, on_delete=models.CASCADE, related_name="adjudications"
    )
    lead = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    prompt_label = models.CharField(max_length=16, choices=LabelValue.choices)
    response_label = models.CharField(
        max_length=16, choices=LabelValue.choices, null=True, blank=True
    )
    # Names of the batch's taxonomy version, in the order the lead gave them.
    categories = models.JSONField(default=list, blank=True)
    confidence = models.CharField(max_length=16, choices=Confidence.choices)
    reason = models.CharField(max_length=32, choices=AdjudicationReason.choices)
    note = models.TextField(blank=True, default="")
    guideline_update = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    reopened_at = models.DateTimeField(null=True, blank=True)
    reopened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    objects = AdjudicationQuerySet.as_manager()

    class Meta:
        ordering = ["dialogue", "created_at", "id"]
        constraints = [
            # The service refuses a second decision under the dialogue's lock; this
            # is the database's word on it.
            models.UniqueConstraint(
                fields=["dialogue"],
                condition=Q(reopened_at__isnull=True),
                name="adjudication_one_current_per_dialogue",
            ),
            models.CheckConstraint(
                condition=Q(prompt_label__in=[v.value for v in LabelValue]),
                name="adjudication_prompt_label_valid",
            ),
            models.CheckConstraint(
                condition=Q(response_label__isnull=True)
                | Q(response_label__in=[v.value for v in LabelValue]),
                name="adjudication_response_label_valid",
            ),
            models.CheckConstraint(
                condition=Q(confidence__in=[v.value for v in Confidence]),
                name="adjudication_confidence_valid",
            ),
            models.CheckConstraint(
                condition=Q(reason__in=[v.value for v in AdjudicationReason]),
                name="adjudication_reason_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.dialogue_id} by {self.lead_id}: {self.prompt_label}"

    @property
    def is_current(self) -> bool:
        return self.reopened_at is None


class OtherMappingQuerySet(models.QuerySet["OtherMapping"]):
    def for_taxonomy(self, taxonomy: Taxonomy) -> "OtherMappingQuerySet":
        return self.filter(taxonomy=taxonomy)


class OtherMapping(models.Model):
    """A lead's decision on one group of "Other" free texts (DESIGN section 2).

    `text` is the normalised form (`annotation.other.services.normalise`) that groups the
    texts; `category` is the fine-grained category the group stands for, or null to
    keep it as Other. Derivation reads the mapping, so final labels and exports use
    the category; the votes keep their original text.
    """

    taxonomy = models.ForeignKey(
        Taxonomy, on_delete=models.CASCADE, related_name="other_mappings"
    )
    text = models.CharField(max_length=500)
    category = models.ForeignKey(
        Category,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="other_mappings",
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(default=timezone.now)

    objects = OtherMappingQuerySet.as_manager()

    class Meta:
        ordering = ["taxonomy", "text"]
        constraints = [
            models.UniqueConstraint(
                fields=["taxonomy", "text"], name="other_mapping_text_unique"
            )
        ]

    def __str__(self) -> str:
        target = self.category.name if self.category is not None else "Other"
        return f"{self.text!r} -> {target}"


class ExportQuerySet(models.QuerySet["ExportSnapshot"]):
    def unfinished(self) -> "ExportQuerySet":
        return self.filter(status__in=[JobStatus.PENDING, JobStatus.RUNNING])


class ExportSnapshot(models.Model):
    """One export of training data: its parameters, progress and, once written, an
    immutable folder of files (DESIGN section 6) and its zip.

    A snapshot is never rewritten: a new export is a new row and a new folder.
    """

    batches = models.ManyToManyField(Batch, related_name="exports")
    # The batch names as they were when the export was asked for.
    batch_names = models.JSONField(default=list)
    seed = models.PositiveIntegerField(default=0)
    ratios = models.JSONField(default=list)
    # "" keeps each batch's own needs-caution policy.
    needs_caution_policy = models.CharField(
        max_length=16, blank=True, default="", choices=NeedsCautionPolicy.choices
    )
    include_refusals = models.BooleanField(default=True)
    topic_file = models.CharField(max_length=500, blank=True, default="")
    topic_name = models.CharField(max_length=255, blank=True, default="")
    status = models.CharField(
        max_length=16, choices=JobStatus.choices, default=JobStatus.PENDING
    )
    phase = models.CharField(max_length=32, blank=True, default="")
    steps_total = models.PositiveIntegerField(default=0)
    steps_done = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    # Where the files are, relative to MEDIA_ROOT.
    directory = models.CharField(max_length=500, blank=True, default="")
    zip_path = models.CharField(max_length=500, blank=True, default="")
    counts = models.JSONField(default=dict, blank=True)
    manifest_sha256 = models.CharField(max_length=64, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = ExportQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"export {self.pk} of {', '.join(self.batch_names)}"

    @property
    def percent(self) -> int:
        if self.status == JobStatus.SUCCEEDED:
            return 100
        if not self.steps_total:
            return 0
        return min(99, int(100 * self.steps_done / self.steps_total))

    @property
    def finished(self) -> bool:
        return self.status in (JobStatus.SUCCEEDED, JobStatus.FAILED)
