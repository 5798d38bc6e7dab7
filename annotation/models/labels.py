"""Votes on a dialogue (human, model, imported, adjudicated), their categories and
their edits."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from annotation.models.dialogues import Dialogue
from taxonomy.models import Category


class LabelValue(models.TextChoices):
    SAFE = "safe", "Safe"
    NEEDS_CAUTION = "needs_caution", "Needs caution"
    UNSAFE = "unsafe", "Unsafe"


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
