"""The leads' batch services (annotation.batches.services) and the assign_batch command."""

import json
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.models import User
from annotation.batches import services as batches
from annotation.models import (
    Assignment,
    Augmentation,
    Batch,
    BatchStatus,
    Dialogue,
    Flag,
    Label,
    Reservation,
    ReservationState,
    Skip,
    TransitionRefused,
)
from taxonomy.models import Taxonomy
from tests.factories import (
    AssignmentFactory,
    BatchFactory,
    DialogueFactory,
    LabelFactory,
    LeadFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

SETTINGS = {
    "labels_required": 3,
    "reservation_minutes": 30,
    "needs_caution_policy": "permissive",
    "asks_response_label": False,
    "instructions": "",
    "break_reminder_minutes": 50,
}


def create(name: str = "round-2", **overrides) -> Batch:
    arguments = {
        "name": name,
        "taxonomy": Taxonomy.objects.default(),
        "by": None,
        **SETTINGS,
        **overrides,
    }
    return batches.create_batch(**arguments)


def external_ids(batch: Batch) -> list[str]:
    return list(
        batch.dialogues.order_by("external_id").values_list("external_id", flat=True)
    )


# --- create_batch and copy_dialogues ------------------------------------------------


def test_create_batch_copies_originals_of_the_chosen_sources_without_votes():
    # given an imported batch with two sources, a refusal, and votes on every dialogue
    aegis = BatchFactory(name="aegis")
    kept = [
        DialogueFactory(batch=aegis, external_id="a1", source="aegis2", claimed=3),
        DialogueFactory(batch=aegis, external_id="a2", source="aegis2"),
    ]
    DialogueFactory(batch=aegis, external_id="x1", source="xstest")
    DialogueFactory(
        batch=aegis,
        external_id="a1",
        source="aegis2",
        augmentation=Augmentation.REFUSAL,
        response="I can't help with that.",
    )
    for d in aegis.dialogues.all():
        LabelFactory(dialogue=d, label="unsafe")
    lead = LeadFactory(username="lena")

    # when a lead creates a batch from its aegis2 originals
    batch = create(copy_from=[aegis], sources=["aegis2"], by=lead, labels_required=5)

    # then only those two dialogues are copied, unclaimed, with the same text
    assert batch.labels_required == 5
    assert batch.created_by == lead
    assert batch.status == BatchStatus.ACTIVE
    assert external_ids(batch) == ["a1", "a2"]
    copies = {d.external_id: d for d in batch.dialogues.all()}
    for original in kept:
        copy = copies[original.external_id]
        assert copy.pk != original.pk
        assert copy.turns == original.turns
        assert copy.prompt == original.prompt
        assert copy.response == original.response
        assert copy.content_hash == original.content_hash
        assert copy.source == "aegis2"
        assert copy.augmentation == ""
        assert copy.claimed == 0
        assert copy.adjudicated_at is None
        assert 0 <= copy.shuffle_key < 2**31
    # and no vote came along; the originals keep theirs
    assert Label.objects.filter(dialogue__batch=batch).count() == 0
    assert Label.objects.filter(dialogue__batch=aegis).count() == 4
    assert aegis.dialogues.count() == 4


def test_copying_from_two_batches_keeps_one_copy_of_shared_text():
    # given two batches that share one dialogue's text (under different ids)
    one = BatchFactory(name="one")
    two = BatchFactory(name="two")
    shared = DialogueFactory(
        batch=one, external_id="s1", prompt="Same text?", response=None
    )
    DialogueFactory(batch=one, external_id="o1")
    DialogueFactory(batch=two, external_id="s2", prompt="Same text?", response=None)
    DialogueFactory(batch=two, external_id="t1")
    assert shared.content_hash == two.dialogues.get(external_id="s2").content_hash

    # when both are copied into a new batch
    batch = create(copy_from=[one, two])

    # then the shared text is there once, from the first batch copied
    assert external_ids(batch) == ["o1", "s1", "t1"]


def test_copy_into_an_existing_batch_skips_text_and_ids_already_there():
    # given a target that already holds one text and one id of the source
    source = BatchFactory(name="source")
    target = BatchFactory(name="target")
    same_text = DialogueFactory(
        batch=source, external_id="d1", prompt="Known?", response=None
    )
    DialogueFactory(batch=source, external_id="d2", prompt="Taken id?")
    DialogueFactory(batch=source, external_id="d3", prompt="New?")
    DialogueFactory(batch=target, external_id="t1", prompt="Known?", response=None)
    DialogueFactory(batch=target, external_id="d2", prompt="Other text")
    assert target.dialogues.get(external_id="t1").content_hash == same_text.content_hash

    # when the source is copied into it
    result = batches.copy_dialogues(into=target, from_batches=[source])

    # then only the new dialogue arrives; the two clashes are counted, not written
    assert result == batches.CopyResult(copied=1, skipped=2)
    assert external_ids(target) == ["d2", "d3", "t1"]
    assert target.dialogues.get(external_id="d2").prompt == "Other text"


def test_copy_with_an_empty_source_list_copies_nothing():
    source = BatchFactory(name="source")
    DialogueFactory(batch=source)
    target = BatchFactory(name="target")

    result = batches.copy_dialogues(into=target, from_batches=[source], sources=[])

    assert result == batches.CopyResult(copied=0, skipped=0)
    assert target.dialogues.count() == 0


def test_create_batch_without_a_source_batch_is_empty():
    batch = create(instructions="# Read me\nBe careful.")

    assert batch.dialogues.count() == 0
    assert Batch.objects.get(name="round-2").instructions == "# Read me\nBe careful."


def test_create_batch_refuses_a_taken_name_and_writes_nothing():
    # given a batch called demo with a dialogue to copy
    demo = BatchFactory(name="demo")
    DialogueFactory(batch=demo)

    # when another batch called demo is created from it
    with pytest.raises(ValidationError) as refused:
        create("demo", copy_from=[demo])

    # then it is refused and nothing was added
    assert "name" in refused.value.message_dict
    assert Batch.objects.count() == 1
    assert Dialogue.objects.count() == 1


def test_create_batch_refuses_a_draft_taxonomy():
    draft = Taxonomy.objects.create(name="Aegis 2.0", version=99)

    with pytest.raises(ValidationError) as refused:
        create(taxonomy=draft)

    assert "taxonomy" in refused.value.message_dict
    assert not Batch.objects.filter(name="round-2").exists()


@pytest.mark.parametrize(
    "field", ["labels_required", "reservation_minutes", "break_reminder_minutes"]
)
def test_create_batch_refuses_counts_below_one(field: str):
    with pytest.raises(ValidationError):
        create(**{field: 0})

    assert not Batch.objects.filter(name="round-2").exists()


# --- update_batch_settings ----------------------------------------------------------


def test_update_batch_settings_changes_only_what_is_given():
    # given a batch with default settings
    batch = BatchFactory(name="demo", instructions="old")

    # when a lead changes three of them
    returned = batches.update_batch_settings(
        batch=batch,
        labels_required=5,
        needs_caution_policy="defensive",
        instructions="**new**",
    )

    # then those are stored and the rest stays
    stored = Batch.objects.get(pk=batch.pk)
    assert returned.labels_required == stored.labels_required == 5
    assert stored.needs_caution_policy == "defensive"
    assert stored.instructions == "**new**"
    assert stored.reservation_minutes == 30
    assert stored.break_reminder_minutes == 50
    assert stored.asks_response_label is False


def test_lowering_votes_required_below_votes_given_is_allowed():
    # given a dialogue with three votes in a 3-vote batch
    batch = BatchFactory(name="demo")
    dialogue = DialogueFactory(batch=batch, claimed=3)
    for _ in range(3):
        LabelFactory(dialogue=dialogue)

    # when the batch is lowered to one vote
    batches.update_batch_settings(batch=batch, labels_required=1)

    # then the change holds and no vote was touched
    assert Batch.objects.get(pk=batch.pk).labels_required == 1
    assert Label.objects.filter(dialogue=dialogue).count() == 3


def test_update_batch_settings_refuses_zero_votes_and_keeps_the_old_value():
    batch = BatchFactory(name="demo", labels_required=3)

    with pytest.raises(ValidationError) as refused:
        batches.update_batch_settings(batch=batch, labels_required=0)

    assert "labels_required" in refused.value.message_dict
    assert Batch.objects.get(pk=batch.pk).labels_required == 3


def test_update_batch_settings_refuses_fields_that_are_not_settings():
    batch = BatchFactory(name="demo")

    with pytest.raises(TypeError):
        batches.update_batch_settings(batch=batch, name="renamed")

    assert Batch.objects.get(pk=batch.pk).name == "demo"


# --- status -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "to"),
    [
        ("active", "paused"),
        ("paused", "active"),
        ("active", "archived"),
        ("paused", "archived"),
        ("archived", "active"),
    ],
)
def test_allowed_status_changes(start: str, to: str):
    batch = BatchFactory(status=start)

    returned = batches.set_batch_status(batch=batch, status=to)

    assert returned.status == to
    assert Batch.objects.get(pk=batch.pk).status == to


@pytest.mark.parametrize(
    ("start", "to"),
    [
        ("active", "active"),
        ("paused", "paused"),
        ("archived", "paused"),
        ("archived", "archived"),
        ("active", "deleted"),
    ],
)
def test_refused_status_changes_leave_the_batch_as_it_was(start: str, to: str):
    batch = BatchFactory(status=start)

    with pytest.raises(TransitionRefused) as refused:
        batches.set_batch_status(batch=batch, status=to)

    assert refused.value.current == start
    assert refused.value.requested == to
    assert Batch.objects.get(pk=batch.pk).status == start


def test_pause_and_resume():
    batch = BatchFactory()

    batches.set_batch_status(batch=batch, status="paused")
    assert Batch.objects.get(pk=batch.pk).status == "paused"

    batches.set_batch_status(batch=batch, status="active")
    assert Batch.objects.get(pk=batch.pk).status == "active"


def test_resuming_an_active_batch_is_refused():
    batch = BatchFactory()

    with pytest.raises(TransitionRefused):
        batches.set_batch_status(batch=batch, status="active")


# --- assignments ----------------------------------------------------------------------


def assigned(batch: Batch) -> list[str]:
    return sorted(batch.assignments.values_list("annotator__username", flat=True))


def test_assign_annotators_is_idempotent_and_only_adds():
    # given a batch with anna on it
    batch = BatchFactory()
    anna, ben, cleo = (UserFactory(username=n) for n in ("anna", "ben", "cleo"))
    AssignmentFactory(batch=batch, annotator=anna)
    first = Assignment.objects.get(batch=batch, annotator=anna)

    # when anna and ben are assigned, twice
    added = batches.assign_annotators(batch=batch, annotators=[anna, ben])
    again = batches.assign_annotators(batch=batch, annotators=[anna, ben])

    # then ben was added once, anna's assignment is the same row, cleo is not on it
    assert (added, again) == (1, 0)
    assert assigned(batch) == ["anna", "ben"]
    assert Assignment.objects.get(batch=batch, annotator=anna).pk == first.pk
    assert not Assignment.objects.filter(annotator=cleo).exists()


def test_assign_annotators_refuses_leads_and_inactive_people_and_assigns_nobody():
    # given an annotator, a lead and a deactivated annotator
    batch = BatchFactory()
    anna = UserFactory(username="anna")
    lena = LeadFactory(username="lena")
    gone = UserFactory(username="gone", is_active=False)

    # when all three are assigned
    with pytest.raises(batches.NotAnnotators) as refused:
        batches.assign_annotators(batch=batch, annotators=[anna, lena, gone])

    # then the two who cannot label are named and nobody was assigned
    assert refused.value.usernames == ["gone", "lena"]
    assert assigned(batch) == []


def test_unassign_releases_their_reservations_and_keeps_their_votes():
    # given anna and ben on a batch; anna holds a dialogue ben also holds, and voted
    now = timezone.now()
    batch = BatchFactory()
    anna, ben = UserFactory(username="anna"), UserFactory(username="ben")
    for person in (anna, ben):
        AssignmentFactory(batch=batch, annotator=person)
    held = DialogueFactory(batch=batch, claimed=3)
    voted = DialogueFactory(batch=batch, claimed=1)
    for person in (anna, ben):
        Reservation.objects.create(
            dialogue=held,
            annotator=person,
            batch=batch,
            reserved_at=now,
            expires_at=now + timedelta(minutes=30),
        )
    LabelFactory(dialogue=voted, annotator=anna)
    LabelFactory(dialogue=held, annotator=UserFactory(username="carl"))

    # when anna is taken off the batch
    removed = batches.unassign_annotators(batch=batch, annotators=[anna])

    # then her reservation is released and counted out; ben's stays; her vote stays
    assert removed == 1
    assert assigned(batch) == ["ben"]
    states = dict(
        Reservation.objects.filter(dialogue=held).values_list(
            "annotator__username", "state"
        )
    )
    assert states == {"anna": ReservationState.RELEASED, "ben": ReservationState.ACTIVE}
    assert Dialogue.objects.get(pk=held.pk).claimed == 2
    assert Dialogue.objects.get(pk=voted.pk).claimed == 1
    assert Label.objects.filter(annotator=anna).count() == 1


def test_unassigning_someone_not_on_the_batch_changes_nothing():
    batch = BatchFactory()
    AssignmentFactory(batch=batch, annotator=UserFactory(username="anna"))

    removed = batches.unassign_annotators(
        batch=batch, annotators=[UserFactory(username="ben")]
    )

    assert removed == 0
    assert assigned(batch) == ["anna"]


# --- daily caps -----------------------------------------------------------------------


def test_set_daily_cap_and_clear_it():
    anna = UserFactory(username="anna")

    batches.set_daily_caps(caps={anna: 40})
    assert User.objects.get(pk=anna.pk).daily_label_cap == 40

    batches.set_daily_caps(caps={anna: None})
    assert User.objects.get(pk=anna.pk).daily_label_cap is None


def test_set_daily_caps_writes_only_the_changed_ones():
    anna = UserFactory(username="anna", daily_label_cap=10)
    ben = UserFactory(username="ben", daily_label_cap=None)

    changed = batches.set_daily_caps(caps={anna: 10, ben: 25})

    assert changed == [ben]
    assert User.objects.get(pk=ben.pk).daily_label_cap == 25


@pytest.mark.parametrize("cap", [0, -3])
def test_a_daily_cap_below_one_is_refused(cap: int):
    anna = UserFactory(username="anna", daily_label_cap=10)

    with pytest.raises(ValidationError):
        batches.set_daily_caps(caps={anna: cap})

    assert User.objects.get(pk=anna.pk).daily_label_cap == 10


def test_a_lead_gets_no_daily_cap():
    lena = LeadFactory(username="lena")

    with pytest.raises(batches.NotAnnotators):
        batches.set_daily_caps(caps={lena: 5})

    assert User.objects.get(pk=lena.pk).daily_label_cap is None


# --- flags ------------------------------------------------------------------------------


def test_resolve_flag_records_who_and_when_once():
    # given an open flag
    flag = Flag.objects.create(
        dialogue=DialogueFactory(), annotator=UserFactory(), reason="broken_text"
    )
    lena, lars = LeadFactory(username="lena"), LeadFactory(username="lars")

    # when lena resolves it, then lars does
    first = batches.resolve_flag(flag=flag, by=lena)
    second = batches.resolve_flag(flag=flag, by=lars)

    # then lena's resolution stands
    stored = Flag.objects.get(pk=flag.pk)
    assert stored.resolved_by == lena
    assert stored.resolved_at == first.resolved_at == second.resolved_at
    assert Flag.objects.open().count() == 0


# --- assign_batch command ------------------------------------------------------------


def run(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("assign_batch", *args, stdout=out)
    return out.getvalue()


def test_command_assigns_named_annotators():
    # given a batch with ben already on it
    batch = BatchFactory(name="demo")
    UserFactory(username="anna")
    AssignmentFactory(batch=batch, annotator=UserFactory(username="ben"))

    # when anna and ben are assigned from the command line
    out = run("demo", "--annotators", "anna, ben")

    # then anna is added and the output says so
    assert out == "Assigned 1 to demo: anna\nAlready assigned: ben\n"
    assert assigned(batch) == ["anna", "ben"]


def test_command_all_assigns_every_active_annotator_and_nobody_else():
    batch = BatchFactory(name="demo")
    for name in ("anna", "ben"):
        UserFactory(username=name)
    UserFactory(username="gone", is_active=False)
    LeadFactory(username="lena")

    out = run("demo", "--all", "--json")

    assert json.loads(out) == {
        "batch": "demo",
        "assigned": ["anna", "ben"],
        "already": [],
    }
    assert assigned(batch) == ["anna", "ben"]


def test_command_names_unknown_users_and_assigns_nobody():
    batch = BatchFactory(name="demo")
    UserFactory(username="anna")

    with pytest.raises(CommandError) as refused:
        run("demo", "--annotators", "anna,zed,yan")

    assert str(refused.value) == "unknown users: zed, yan"
    assert assigned(batch) == []


def test_command_refuses_a_lead_and_assigns_nobody():
    batch = BatchFactory(name="demo")
    UserFactory(username="anna")
    LeadFactory(username="lena")

    with pytest.raises(CommandError, match="lena"):
        run("demo", "--annotators", "anna,lena")

    assert assigned(batch) == []


def test_command_refuses_an_unknown_batch():
    UserFactory(username="anna")

    with pytest.raises(CommandError, match="no batch named 'nope'"):
        run("nope", "--annotators", "anna")

    assert Assignment.objects.count() == 0


@pytest.mark.parametrize("args", [("demo",), ("demo", "--all", "--annotators", "anna")])
def test_command_needs_exactly_one_of_annotators_and_all(args: tuple[str, ...]):
    batch = BatchFactory(name="demo")
    UserFactory(username="anna")

    with pytest.raises(CommandError):
        run(*args)

    assert assigned(batch) == []


def test_skips_are_not_copied():
    # given a skipped dialogue
    source = BatchFactory(name="source")
    dialogue = DialogueFactory(batch=source)
    Skip.objects.create(dialogue=dialogue, annotator=UserFactory())

    # when it is copied
    batch = create(copy_from=[source])

    # then the copy carries no skip
    assert Skip.objects.filter(dialogue__batch=batch).count() == 0
    assert Skip.objects.count() == 1


def test_copy_works_with_the_debug_cursor_that_make_run_uses():
    # DEBUG logs each query by formatting it with its parameters: a bare % in the
    # SQL (SQLite's random key) broke that.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    source = BatchFactory(name="dbg-source")
    DialogueFactory(batch=source, external_id="x1")
    with CaptureQueriesContext(connection):
        batch = create(copy_from=[source])
    assert external_ids(batch) == ["x1"]
