"""Batches: the set of dialogues a team labels, its settings and status, and who
is assigned to it."""

from django.conf import settings
from django.core.validators import (
    MaxValueValidator,
    MinValueValidator,
    RegexValidator,
)
from django.db import models
from django.db.models import Count, Q
from django.db.models.functions import Coalesce

from accounts.refusals import Conflict
from taxonomy.models import Taxonomy


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


def _related_model(model: type[models.Model], relation: str) -> type[models.Model]:
    """The model at the other end of one of `model`'s reverse relations."""
    related = model._meta.get_field(relation).related_model
    assert isinstance(related, type)
    return related


class BatchQuerySet(models.QuerySet["Batch"]):
    def with_counts(self) -> "BatchQuerySet":
        """Dialogue and label counts in one query (subqueries, not a join product).

        Dialogues and labels are reached through the batch's reverse relations:
        their modules import this one, so this one does not import them.
        """
        dialogue = _related_model(self.model, "dialogues")
        label = _related_model(dialogue, "labels")
        dialogues = (
            dialogue._default_manager.filter(batch=models.OuterRef("pk"))
            .order_by()
            .values("batch")
            .annotate(n=Count("pk"))
            .values("n")
        )
        labels = (
            label._default_manager.filter(dialogue__batch=models.OuterRef("pk"))
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
