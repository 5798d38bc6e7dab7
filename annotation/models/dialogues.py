"""Dialogues: what gets labelled, the originals and the augmentations made from them."""

import random

from django.db import models
from django.db.models import Q

from annotation.models.batches import Batch


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
