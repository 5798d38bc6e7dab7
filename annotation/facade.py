"""What the jury may use of `annotation`: its one published surface.

`jury` imports nothing else of this app (an import-linter contract says so), and
`annotation` never imports `jury`. The jury reads batches, dialogues and votes (the
models below), the human majority and a text's content hash (rules), and writes what
it decided here: model votes and decisions, idempotently. A redelivered task writes
the same rows again; unique constraints on (dialogue, judge, run) and (dialogue,
run) make the second write change nothing.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db import transaction

from annotation import enqueue
from annotation.demo import (
    ANNOTATORS,
    DEMO_PASSWORD,
    REVIEWED_BATCH,
    REVIEWERS,
    differs_from_file,
    seed_demo,
)
from annotation.final_labels.services import recompute_on_commit
from annotation.imports.formats import content_hash, prompt_and_response
from annotation.leases import Heartbeat, holder_name
from annotation.models import (
    Augmentation,
    Batch,
    Dialogue,
    ExportSnapshot,
    ImportJob,
    Job,
    JobStatus,
    JuryDecision,
    Label,
    LabelCategory,
    Leased,
    VoteKind,
)
from annotation.models.jobs import lost_text, max_attempts, requeued_text
from annotation.rules.derivation import human_majority
from taxonomy.models import Category

__all__ = [
    "ANNOTATORS",
    "DEMO_PASSWORD",
    "REVIEWED_BATCH",
    "REVIEWERS",
    "Augmentation",
    "Batch",
    "Dialogue",
    "ExportSnapshot",
    "Heartbeat",
    "ImportJob",
    "Job",
    "JobStatus",
    "JuryDecision",
    "Label",
    "LabelCategory",
    "Leased",
    "ModelVoteIn",
    "VoteKind",
    "content_hash",
    "differs_from_file",
    "enqueue",
    "holder_name",
    "human_majority",
    "lost_text",
    "max_attempts",
    "prompt_and_response",
    "recompute_on_commit",
    "record_jury_decision",
    "record_model_votes",
    "requeued_text",
    "seed_demo",
]


@dataclass(frozen=True)
class ModelVoteIn:
    dialogue_id: int
    judge: str
    valid: bool
    label: str | None
    categories: Sequence[str] = ()
    raw_output: str = ""
    latency_ms: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    details: dict[str, object] = field(default_factory=dict)


@transaction.atomic
def record_model_votes(*, run_key: str, votes: Sequence[ModelVoteIn]) -> int:
    """Store judges' votes for a run; returns how many were new.

    Votes already stored for the same (dialogue, judge, run) are left as they are.
    Categories are names of the dialogue's taxonomy version.
    """
    if not votes:
        return 0
    dialogue_ids = {v.dialogue_id for v in votes}
    judges = {v.judge for v in votes}
    existing = set(
        Label.objects.filter(
            kind=VoteKind.MODEL,
            run_key=run_key,
            judge__in=judges,
            dialogue_id__in=dialogue_ids,
        ).values_list("dialogue_id", "judge")
    )
    new = [v for v in votes if (v.dialogue_id, v.judge) not in existing]
    if not new:
        return 0
    Label.objects.bulk_create(
        [
            Label(
                dialogue_id=v.dialogue_id,
                kind=VoteKind.MODEL,
                judge=v.judge,
                run_key=run_key,
                valid=v.valid,
                label=v.label if v.valid else None,
                raw_output=v.raw_output,
                latency_ms=v.latency_ms,
                prompt_tokens=v.prompt_tokens,
                completion_tokens=v.completion_tokens,
                details=v.details,
            )
            for v in new
        ],
        ignore_conflicts=True,  # a concurrent redelivery wrote some of them first
    )
    written = {
        (d, j): pk
        for pk, d, j in Label.objects.filter(
            kind=VoteKind.MODEL,
            run_key=run_key,
            judge__in=judges,
            dialogue_id__in=[v.dialogue_id for v in new],
        ).values_list("pk", "dialogue_id", "judge")
    }
    taxonomy_of = dict(
        Dialogue.objects.filter(pk__in=dialogue_ids).values_list(
            "pk", "batch__taxonomy_id"
        )
    )
    category_ids = {
        (t, name): pk
        for pk, t, name in Category.objects.filter(
            taxonomy_id__in=set(taxonomy_of.values())
        ).values_list("pk", "taxonomy_id", "name")
    }
    LabelCategory.objects.bulk_create(
        [
            LabelCategory(
                label_id=written[(v.dialogue_id, v.judge)],
                category_id=category_ids[(taxonomy_of[v.dialogue_id], name)],
                position=position,
            )
            for v in new
            if v.valid
            for position, name in enumerate(v.categories)
        ],
        ignore_conflicts=True,
    )
    return len(new)


def record_jury_decision(
    *,
    dialogue_id: int,
    run_key: str,
    decision: str,
    categories: Sequence[str],
    valid_votes: int,
    total_votes: int,
    agreement: float | None,
    reason: str,
) -> JuryDecision:
    """Store (or refresh, identically) the jury's decision on a dialogue for a run;
    the dialogue's final label is derived again once this commits."""
    found, _ = JuryDecision.objects.update_or_create(
        dialogue_id=dialogue_id,
        run_key=run_key,
        defaults={
            "decision": decision,
            "categories": list(categories),
            "valid_votes": valid_votes,
            "total_votes": total_votes,
            "agreement": agreement,
            "reason": reason[:200],
        },
    )
    recompute_on_commit(dialogue_id)
    return found
