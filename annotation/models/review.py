"""How good the labels are: audits of a sample, feedback on votes, gold items and
the batch's agreement report."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Count, Q

from accounts.refusals import Conflict
from annotation.models.batches import Batch
from annotation.models.dialogues import Dialogue
from annotation.models.jobs import JobStatus, Leased
from annotation.models.labels import Label, LabelValue
from taxonomy.models import Category


class AgreementReport(Leased):
    """A batch's agreement report (annotation.agreement.services), computed in Celery for large
    batches and kept until the batch changes.

    `fingerprint` sums up what the report reads (votes, their edits, decisions,
    dialogues, the batch's policy); a report whose fingerprint no longer matches the
    batch is stale and is computed again on the next request. The worker computing
    it holds its lease (`Leased`); a reaper queues it again when that worker is lost.
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
