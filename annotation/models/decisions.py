"""What is decided about a dialogue: the jury's decisions, the final labels, leads'
adjudications, and the mapping of "Other" texts to categories."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from annotation.models.dialogues import Dialogue
from annotation.models.labels import LabelValue
from taxonomy.models import Category, Taxonomy


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
