"""The demo set-up behind `make run`: users, the `demo` batch and its dialogues."""

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.db import transaction

from accounts.models import Role, User
from annotation.imports import ImportResult, import_dialogues
from annotation.models import Assignment, Batch
from taxonomy.models import Taxonomy

DEMO_FILE = Path(__file__).resolve().parent / "demo" / "dialogues.json"
DEMO_BATCH = "demo"
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
    return DemoResult(users_created=created, batch=batch, imported=imported)
