"""The annotation app's models, one module per subdomain; every name is importable
from here, as it was when they were one module (migrations name
`annotation.models.shuffle_key`).

batches: batches and assignments; dialogues: what gets labelled; labels: votes,
their categories and edits; jobs: what imports, exports, jury and generation runs
share; imports: import jobs; queue: reservations, skips and flags; decisions: jury
decisions, final labels, adjudications and "Other" mappings; review: audits,
feedback, gold items and the agreement report; exports: export snapshots.
"""

from annotation.models.batches import (
    BATCH_NAME_PATTERN,
    Assignment,
    Batch,
    BatchQuerySet,
    BatchStatus,
    NeedsCautionPolicy,
    TransitionRefused,
)
from annotation.models.decisions import (
    Adjudication,
    AdjudicationQuerySet,
    AdjudicationReason,
    Confidence,
    FinalLabel,
    FinalLabelQuerySet,
    JuryDecision,
    JuryVerdict,
    OtherMapping,
    OtherMappingQuerySet,
    Provenance,
)
from annotation.models.dialogues import (
    LABELLED_BY_HUMANS,
    Augmentation,
    Dialogue,
    DialogueQuerySet,
    shuffle_key,
)
from annotation.models.exports import ExportQuerySet, ExportSnapshot
from annotation.models.imports import ImportJob, ImportJobQuerySet, ImportKind
from annotation.models.jobs import (
    JOB_TRANSITIONS,
    Job,
    JobRefused,
    JobStatus,
    Leased,
)
from annotation.models.labels import (
    Label,
    LabelCategory,
    LabelEdit,
    LabelQuerySet,
    LabelValue,
    VoteKind,
)
from annotation.models.queue import (
    Flag,
    FlagQuerySet,
    FlagReason,
    Reservation,
    ReservationQuerySet,
    ReservationState,
    Skip,
)
from annotation.models.review import (
    AgreementReport,
    Audit,
    AuditItem,
    AuditQuerySet,
    AuditRefused,
    AuditStatus,
    Feedback,
    FeedbackQuerySet,
    GoldItem,
    Verdict,
)

__all__ = [
    "BATCH_NAME_PATTERN",
    "JOB_TRANSITIONS",
    "LABELLED_BY_HUMANS",
    "Adjudication",
    "AdjudicationQuerySet",
    "AdjudicationReason",
    "AgreementReport",
    "Assignment",
    "Audit",
    "AuditItem",
    "AuditQuerySet",
    "AuditRefused",
    "AuditStatus",
    "Augmentation",
    "Batch",
    "BatchQuerySet",
    "BatchStatus",
    "Confidence",
    "Dialogue",
    "DialogueQuerySet",
    "ExportQuerySet",
    "ExportSnapshot",
    "Feedback",
    "FeedbackQuerySet",
    "FinalLabel",
    "FinalLabelQuerySet",
    "Flag",
    "FlagQuerySet",
    "FlagReason",
    "GoldItem",
    "ImportJob",
    "ImportJobQuerySet",
    "ImportKind",
    "Job",
    "JobRefused",
    "JobStatus",
    "JuryDecision",
    "JuryVerdict",
    "Label",
    "LabelCategory",
    "LabelEdit",
    "LabelQuerySet",
    "LabelValue",
    "Leased",
    "NeedsCautionPolicy",
    "OtherMapping",
    "OtherMappingQuerySet",
    "Provenance",
    "Reservation",
    "ReservationQuerySet",
    "ReservationState",
    "Skip",
    "TransitionRefused",
    "Verdict",
    "VoteKind",
    "shuffle_key",
]
