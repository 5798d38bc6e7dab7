"""The demo set-up behind `make run`: users, the `demo` batch and its dialogues, and
`demo-reviewed`, the same dialogues already labelled by three imported reviewers, for
the leads' screens (agreement, adjudication, Other, exports).

The reviewers' votes are written data, next to each dialogue in
`demo/dialogues.json` (`reviews`: label, categories, Other text, comment), and so
are their flags (`flags`); only the time each vote took is computed, from each
reviewer's pace and the dialogue's length (`review_ms`).
"""

import csv
import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import transaction

from accounts.models import Role, User
from annotation.imports.services import ImportResult, import_dialogues, import_labels
from annotation.models import Assignment, Batch, Flag
from taxonomy.models import Taxonomy

DEMO_FILE = Path(__file__).resolve().parent / "demo" / "dialogues.json"
DEMO_BATCH = "demo"
REVIEWED_BATCH = "demo-reviewed"
REVIEWERS = ("reviewer-a", "reviewer-b", "reviewer-c")
# What stays out of the database: annotators of `demo` are blind to our answers.
ANSWER_KEYS = ("expected", "categories", "reviews", "flags")
# Seconds per vote: a fixed part plus a part per 1,000 characters of dialogue.
# reviewer-a reads everything twice, reviewer-b skims, reviewer-c is in between.
PACE = {
    "reviewer-a": (50.0, 30.0),
    "reviewer-b": (12.0, 8.0),
    "reviewer-c": (28.0, 15.0),
}
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


def demo_rows() -> list[dict[str, Any]]:
    """The demo dialogues with our answers and the reviewers' votes."""
    rows: list[dict[str, Any]] = json.loads(DEMO_FILE.read_text(encoding="utf-8"))
    return rows


def seed_demo() -> DemoResult:
    """Create (or complete) the demo users and batch; running it again changes nothing."""
    created = _seed_users()
    with transaction.atomic():
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
    rows = demo_rows()
    with tempfile.TemporaryDirectory() as tmp:
        path = _write_dialogues(rows, Path(tmp))
        imported = import_dialogues(
            path=path, batch_name=DEMO_BATCH, fmt="jsonl", display_name="demo"
        )
        reviewed = _seed_reviewed(path, rows, Path(tmp))
    return DemoResult(
        users_created=created, batch=batch, imported=imported, reviewed=reviewed
    )


def _write_dialogues(rows: list[dict[str, Any]], folder: Path) -> Path:
    """The dialogues as a JSONL file to import, without our answers."""
    path = folder / "demo.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            public = {k: v for k, v in row.items() if k not in ANSWER_KEYS}
            fh.write(json.dumps(public, ensure_ascii=False) + "\n")
    return path


def differs_from_file(batch: Batch) -> bool:
    """Whether the batch's dialogues are not exactly those of the demo file (it was
    seeded from an older file): a dry-run import finds any missing, the count any
    extra."""
    rows = demo_rows()
    with tempfile.TemporaryDirectory() as tmp:
        check = import_dialogues(
            path=_write_dialogues(rows, Path(tmp)),
            batch_name=batch.name,
            fmt="jsonl",
            display_name="demo",
            dry_run=True,
        )
    return bool(check.imported or check.error_count) or batch.dialogues.count() != (
        len(rows)
    )


def _seed_users() -> list[str]:
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
    return created


def dialogue_length(row: dict[str, Any]) -> int:
    """Characters an annotator reads: every turn, or the prompt and response."""
    if "turns" in row:
        return sum(len(turn["content"]) for turn in row["turns"])
    return len(row["prompt"]) + len(row.get("response") or "")


def review_ms(row: dict[str, Any], reviewer: str) -> int:
    """How long the reviewer took on the dialogue: their pace for its length, times
    a factor between 0.8 and 1.25 that is fixed per (dialogue, reviewer), so the
    demo is the same on every machine (no random state)."""
    fixed, per_thousand = PACE[reviewer]
    seconds = fixed + per_thousand * dialogue_length(row) / 1000
    digest = hashlib.sha256(f"{row['id']}/{reviewer}".encode()).digest()
    factor = 0.8 + 0.45 * int.from_bytes(digest[:4], "big") / 2**32
    return round(seconds * factor * 1000)


def reviewer_votes(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The reviewers' votes as rows of a labels file (`import_labels`), as written
    in each dialogue's `reviews`."""
    votes = []
    for row in rows:
        for reviewer in REVIEWERS:
            vote = row["reviews"][reviewer]
            votes.append(
                {
                    "dialogue_id": row["id"],
                    "annotator": reviewer,
                    "label": vote["label"],
                    "categories": ", ".join(vote.get("categories", [])),
                    "other_text": vote.get("other", ""),
                    "comment": vote.get("comment", ""),
                    "time_spent_ms": str(review_ms(row, reviewer)),
                }
            )
    return votes


def _seed_reviewed(dialogues: Path, rows: list[dict], tmp: Path) -> ImportResult | None:
    """The `demo-reviewed` batch with its reviewers' votes and flags, once."""
    if Batch.objects.filter(name=REVIEWED_BATCH).exists():
        return None
    lead = User.objects.get(username="lead")
    with transaction.atomic():
        batch = Batch.objects.create(
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
        _flag(batch, rows)
    return result


def _flag(batch: Batch, rows: list[dict[str, Any]]) -> None:
    """The reviewers' flags. Written directly: `queue.flag_dialogue` is the
    annotator's action in the app (consent, reservation), and the reviewers are
    imported raters who never logged in."""
    ids = dict(batch.dialogues.values_list("external_id", "pk"))
    users = dict(
        User.objects.filter(username__in=REVIEWERS).values_list("username", "pk")
    )
    Flag.objects.bulk_create(
        [
            Flag(
                dialogue_id=ids[row["id"]],
                annotator_id=users[flag["by"]],
                reason=flag["reason"],
                note=flag["note"],
            )
            for row in rows
            for flag in row.get("flags", [])
        ],
        ignore_conflicts=True,
    )
