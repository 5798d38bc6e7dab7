"""The queue's bookkeeping: reservations, skips and flags."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from annotation.models.batches import Batch
from annotation.models.dialogues import Dialogue


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
