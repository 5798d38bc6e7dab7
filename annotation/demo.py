"""The demo set-up behind `make run`: users, the `demo` batch and its dialogues, and
`demo-reviewed`, the same dialogues already labelled by three imported reviewers, for
the leads' screens (agreement, adjudication, Other, exports)."""

import csv
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.db import transaction

from accounts.models import Role, User
from annotation.imports import ImportResult, import_dialogues, import_labels
from annotation.models import Assignment, Batch
from taxonomy.models import Taxonomy

DEMO_FILE = Path(__file__).resolve().parent / "demo" / "dialogues.json"
DEMO_BATCH = "demo"
REVIEWED_BATCH = "demo-reviewed"
REVIEWERS = ("reviewer-a", "reviewer-b", "reviewer-c")
# What the reviewers wrote with Other: three spellings of one thing, and another.
OTHER_TEXTS = ("phishing kit", "Phishing kit!", " PHISHING  kit ", "fake reviews")
DEMO_PASSWORD = "aegis-demo"
ANNOTATORS = [f"annotator{k}" for k in range(1, 13)]
INSTRUCTIONS = """\
Label each dialogue as a whole: **safe**, **needs caution** or **unsafe**.

- Unsafe: pick every category that applies (at least one). Use *Other* with a short
  description when none fits.
- Needs caution: borderline content; categories are optional.
- Judge the user's request *and* the assistant's answer: a harmful request answered
  with a refusal is still an unsafe dialogue.

Take a break whenever you need one; this text can be upsetting.
"""


@dataclass
class DemoResult:
    users_created: list[str]
    batch: Batch
    imported: ImportResult
    reviewed: ImportResult | None = None


def seed_demo() -> DemoResult:
    """Create (or complete) the demo users and batch; running it again changes nothing."""
    created: list[str] = []
    with transaction.atomic():
        for username, role in [
            *((name, Role.ANNOTATOR) for name in ANNOTATORS),
            ("lead", Role.LEAD),
            ("admin", Role.ADMIN),
        ]:
            user, was_created = User.objects.get_or_create(
                username=username,
                defaults={
                    "role": role,
                    "email": f"{username}@demo.aegis.local",
                    "is_staff": role == Role.ADMIN,
                    "is_superuser": role == Role.ADMIN,
                },
            )
            if was_created:
                user.set_password(DEMO_PASSWORD)
                user.save(update_fields=["password"])
                created.append(username)
        batch, _ = Batch.objects.get_or_create(
            name=DEMO_BATCH,
            defaults={
                "taxonomy": Taxonomy.objects.default(),
                "labels_required": 3,
                "instructions": INSTRUCTIONS,
                "created_by": User.objects.get(username="lead"),
            },
        )
        annotators = User.objects.filter(username__in=ANNOTATORS)
        Assignment.objects.bulk_create(
            [Assignment(batch=batch, annotator=user) for user in annotators],
            ignore_conflicts=True,
        )
    rows = json.loads(DEMO_FILE.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "demo.jsonl"
        with path.open("w", encoding="utf-8") as fh:
            for row in rows:
                # The expected answers stay out of the database: annotators are blind.
                public = {
                    k: v for k, v in row.items() if k not in ("expected", "categories")
                }
                fh.write(json.dumps(public, ensure_ascii=False) + "\n")
        imported = import_dialogues(
            path=path, batch_name=DEMO_BATCH, fmt="jsonl", display_name="demo"
        )
        reviewed = _seed_reviewed(path, rows, Path(tmp))
    return DemoResult(
        users_created=created, batch=batch, imported=imported, reviewed=reviewed
    )


def reviewer_votes(rows: list[dict]) -> list[dict[str, str]]:
    """Three reviewers' votes on the demo dialogues: mostly the expected answer, with
    a dissenter on every fifth dialogue (a split for adjudication) and Other with a
    free text on some unsafe ones (groups for the Other page)."""
    votes = []
    flip = {"safe": "unsafe", "unsafe": "safe", "needs_caution": "safe"}
    for i, row in enumerate(rows):
        for k, reviewer in enumerate(REVIEWERS):
            label = row["expected"]
            if i % 5 == 1 and k == 2:
                label = flip[label]
            categories = list(row.get("categories") or []) if label != "safe" else []
            other = ""
            if label == "unsafe" and i % 3 == 0 and k < 2 and "Other" not in categories:
                categories = [*categories, "Other"]
            if label == "unsafe" and not categories:
                categories = ["Other"]
            if "Other" in categories:
                other = OTHER_TEXTS[(i + k) % len(OTHER_TEXTS)]
            votes.append(
                {
                    "dialogue_id": row["id"],
                    "annotator": reviewer,
                    "label": label,
                    "categories": ", ".join(categories),
                    "other_text": other,
                    "time_spent_ms": str(20_000 + 1_000 * ((i * 7 + k * 3) % 40)),
                }
            )
    return votes


def _seed_reviewed(dialogues: Path, rows: list[dict], tmp: Path) -> ImportResult | None:
    """The `demo-reviewed` batch with its reviewers' votes, once."""
    if Batch.objects.filter(name=REVIEWED_BATCH).exists():
        return None
    lead = User.objects.get(username="lead")
    with transaction.atomic():
        Batch.objects.create(
            name=REVIEWED_BATCH,
            taxonomy=Taxonomy.objects.default(),
            labels_required=3,
            instructions=INSTRUCTIONS,
            created_by=lead,
        )
        import_dialogues(
            path=dialogues, batch_name=REVIEWED_BATCH, fmt="jsonl", display_name="demo"
        )
        labels = tmp / "reviewed-labels.csv"
        votes = reviewer_votes(rows)
        with labels.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(votes[0]))
            writer.writeheader()
            writer.writerows(votes)
        result = import_labels(
            path=labels, batch_name=REVIEWED_BATCH, create_annotators=True
        )
        if result.error_count:
            transaction.set_rollback(True)
    return result
