"""Gold items (annotation.review.gold.services) and how the queue serves them (annotation.labelling.queue)."""

import random
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from accounts.models import User
from annotation.labelling.queue import (
    NothingToDo,
    VoteIn,
    gold_draw,
    release_expired,
    reserve_next,
    skip_dialogue,
    submit_label,
)
from annotation.models import (
    Augmentation,
    Batch,
    Dialogue,
    GoldItem,
    Label,
    LabelCategory,
    Reservation,
    VoteKind,
)
from annotation.review.gold.services import (
    GoldAnswer,
    GoldRefused,
    GoldVote,
    gold_accuracy,
    jaccard,
    mark_gold,
    score_gold_votes,
    unmark_gold,
)
from taxonomy.models import Category
from tests.factories import (
    AssignmentFactory,
    BatchFactory,
    DialogueFactory,
    LabelFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

SAFE = VoteIn(label="safe")
VIOLENCE = GoldAnswer(label="unsafe", categories=("Violence",))


def _annotator(username: str, *batches: Batch) -> User:
    user = UserFactory(
        username=username, content_warning_acknowledged_at=timezone.now()
    )
    for batch in batches:
        AssignmentFactory(batch=batch, annotator=user)
    return user


def _gold_batch(
    *, regular: int = 3, gold: int = 2, **kw: object
) -> tuple[Batch, list[Dialogue], list[Dialogue]]:
    batch = BatchFactory(**kw)
    plain = [DialogueFactory(batch=batch, external_id=f"r-{i}") for i in range(regular)]
    golden = [DialogueFactory(batch=batch, external_id=f"g-{i}") for i in range(gold)]
    for d in golden:
        mark_gold(dialogue=d, answer=VIOLENCE, by=None)
    return batch, plain, golden


def _work_through(annotator: User, rng: random.Random | None = None) -> list[int]:
    """Reserve and vote until nothing is left; the dialogues served, in order."""
    served = []
    while isinstance(got := reserve_next(annotator=annotator, rng=rng), Reservation):
        served.append(got.dialogue_id)
        submit_label(annotator=annotator, dialogue_id=got.dialogue_id, vote=SAFE)
    assert isinstance(got, NothingToDo)
    return served


class Coin(random.Random):
    """An rng whose draws are given: the gold pick is tried when a draw is below the
    batch's rate."""

    def __init__(self, *draws: float) -> None:
        super().__init__(0)
        self.draws = list(draws)

    def random(self) -> float:
        return self.draws.pop(0)


# --- marking ---------------------------------------------------------------------------


def test_marking_gold_stores_the_answer_and_flags_the_dialogue():
    batch = BatchFactory()
    dialogue = DialogueFactory(batch=batch)
    lead = UserFactory(username="lena", role="lead")

    gold = mark_gold(
        dialogue=dialogue,
        answer=GoldAnswer(
            label="unsafe",
            response_label="safe",
            categories=("S1", "Threat"),
            note=" plans an attack ",
        ),
        by=lead,
    )

    stored = GoldItem.objects.get()
    assert stored.pk == gold.pk
    assert (stored.label, stored.response_label, stored.note) == (
        "unsafe",
        "safe",
        "plans an attack",
    )
    assert sorted(c.name for c in stored.categories.all()) == ["Threat", "Violence"]
    assert stored.created_by == lead
    assert Dialogue.objects.get(pk=dialogue.pk).is_gold is True


def test_marking_again_changes_the_answer_and_unmarking_keeps_the_votes():
    batch = BatchFactory()
    dialogue = DialogueFactory(batch=batch)
    mark_gold(dialogue=dialogue, answer=VIOLENCE, by=None)
    vote = LabelFactory(dialogue=dialogue)

    mark_gold(dialogue=dialogue, answer=GoldAnswer(label="safe"), by=None)
    assert GoldItem.objects.get().label == "safe"
    assert not GoldItem.objects.get().categories.exists()

    assert unmark_gold(dialogue=dialogue) is True
    assert unmark_gold(dialogue=dialogue) is False
    assert GoldItem.objects.count() == 0
    assert Dialogue.objects.get(pk=dialogue.pk).is_gold is False
    assert Label.objects.get().pk == vote.pk


@pytest.mark.parametrize(
    ("answer", "field"),
    [
        (GoldAnswer(label="unsafe"), "categories"),
        (GoldAnswer(label="safe", categories=("Violence",)), "categories"),
        (GoldAnswer(label="maybe"), "label"),
        (GoldAnswer(label="unsafe", categories=("Other",)), "other_text"),
        (GoldAnswer(label="unsafe", categories=("Dragons",)), "categories"),
    ],
)
def test_an_answer_that_breaks_the_vote_rules_is_refused(answer, field):
    dialogue = DialogueFactory()

    with pytest.raises(GoldRefused) as refused:
        mark_gold(dialogue=dialogue, answer=answer, by=None)

    assert field in refused.value.by_field()
    assert GoldItem.objects.count() == 0
    assert Dialogue.objects.get(pk=dialogue.pk).is_gold is False


def test_a_refusal_cannot_be_gold_and_a_prompt_only_dialogue_has_no_response_label():
    refusal = DialogueFactory(augmentation=Augmentation.REFUSAL)
    prompt_only = DialogueFactory(response=None)

    with pytest.raises(GoldRefused, match="annotators never see"):
        mark_gold(dialogue=refusal, answer=GoldAnswer(label="safe"), by=None)
    with pytest.raises(GoldRefused, match="no response"):
        mark_gold(
            dialogue=prompt_only,
            answer=GoldAnswer(label="safe", response_label="safe"),
            by=None,
        )

    assert GoldItem.objects.count() == 0


# --- the queue -----------------------------------------------------------------------


def test_the_regular_pick_never_serves_a_gold_item():
    # given 3 regular and 2 gold dialogues, a gold rate of 0, and an rng that would
    # always try gold
    batch, plain, _ = _gold_batch()
    anna = _annotator("anna", batch)

    # when anna works until nothing is left
    served = _work_through(anna, rng=Coin(*[0.0] * 10))

    # then she got the regular ones only, and the gold ones were never claimed
    assert sorted(served) == sorted(d.pk for d in plain)
    assert list(
        Dialogue.objects.filter(is_gold=True).values_list("claimed", "votes")
    ) == [(0, 0), (0, 0)]


def test_a_gold_rate_of_1_serves_each_gold_item_to_each_annotator_once_first():
    # given 2 gold items in a batch of 3 regular ones that need 1 vote, rate 1.0
    batch, plain, golden = _gold_batch(labels_required=1, gold_rate=1.0)
    people = [_annotator(name, batch) for name in ("anna", "ben", "cleo")]
    gold_ids = {d.pk for d in golden}

    # when each works until nothing is left (default coin: seeded by user and time)
    served = {p.username: _work_through(p) for p in people}

    # then each got both gold items first, exactly once
    for name, got in served.items():
        assert set(got[:2]) == gold_ids, name
        assert sorted(got).count(golden[0].pk) == 1
        assert sorted(got).count(golden[1].pk) == 1
    # and each gold item has a vote of everyone, past the batch's required count
    for d in Dialogue.objects.filter(is_gold=True):
        assert (d.votes, d.claimed) == (3, 3)
    # while the regular ones got their one vote each, shared out
    regular = [d for got in served.values() for d in got if d not in gold_ids]
    assert sorted(regular) == sorted(d.pk for d in plain)


def test_the_coin_decides_between_the_gold_and_the_regular_pick():
    batch, plain, golden = _gold_batch(gold_rate=0.25)
    anna = _annotator("anna", batch)

    regular = reserve_next(annotator=anna, rng=Coin(0.25))  # not below the rate
    submit_label(annotator=anna, dialogue_id=regular.dialogue_id, vote=SAFE)
    gold = reserve_next(annotator=anna, rng=Coin(0.2499))

    assert regular.dialogue_id in {d.pk for d in plain}
    assert gold.dialogue_id in {d.pk for d in golden}


def test_the_default_coin_is_the_same_for_one_user_at_one_time():
    anna, ben = UserFactory(username="anna"), UserFactory(username="ben")
    now = timezone.now()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(timezone, "now", lambda: now)
        draws = [gold_draw(anna).random() for _ in range(2)]
        other = gold_draw(ben).random()

    assert draws[0] == draws[1]
    assert other != draws[0]


def test_a_gold_rate_of_0_never_serves_gold_even_when_nothing_else_is_left():
    batch, plain, golden = _gold_batch(regular=1, gold=1, gold_rate=0.0)
    anna = _annotator("anna", batch)

    served = _work_through(anna)

    assert served == [plain[0].pk]
    assert not Reservation.objects.filter(dialogue=golden[0]).exists()


def test_gold_skipped_or_already_labelled_is_not_served_again():
    batch, _, golden = _gold_batch(regular=0, gold=2, gold_rate=1.0)
    anna = _annotator("anna", batch)
    LabelFactory(dialogue=golden[0], annotator=anna)
    first = reserve_next(annotator=anna)
    assert first.dialogue_id == golden[1].pk
    skip_dialogue(annotator=anna, dialogue_id=golden[1].pk)

    assert reserve_next(annotator=anna) == NothingToDo(
        "done", "Nothing is left to label for you right now."
    )


def test_an_expired_gold_reservation_is_still_honoured_past_the_required_count():
    # given a gold item of a one-vote batch that anna and ben already labelled
    batch, _, (gold,) = _gold_batch(regular=0, gold=1, labels_required=1, gold_rate=1)
    for name in ("anna", "ben"):
        _work_through(_annotator(name, batch))
    cleo = _annotator("cleo", batch)
    held = reserve_next(annotator=cleo)
    assert held.dialogue_id == gold.pk
    # when cleo's reservation runs out before she votes
    Reservation.objects.filter(pk=held.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    release_expired(batch_ids=[batch.pk])

    # then her vote is still taken (a regular dialogue would have gone to others)
    submit_label(annotator=cleo, dialogue_id=gold.pk, vote=SAFE)
    assert Dialogue.objects.values_list("votes", "claimed").get(pk=gold.pk) == (3, 3)


def test_an_unmarked_gold_item_is_finished_once_it_has_its_votes():
    batch, _, (gold,) = _gold_batch(regular=0, gold=1, labels_required=2, gold_rate=1)
    for name in ("anna", "ben", "cleo"):
        _work_through(_annotator(name, batch))

    unmark_gold(dialogue=gold)
    dan = _annotator("dan", batch)

    assert isinstance(reserve_next(annotator=dan), NothingToDo)


def test_the_workspace_and_the_api_do_not_tell_a_gold_item_from_another():
    # given two batches with the same text, one dialogue of them gold
    client = Client()
    plain_batch = BatchFactory(name="plain")
    gold_batch, _, _ = _gold_batch(regular=0, gold=1, gold_rate=1.0, name="golden")
    text = Dialogue.objects.get(batch=gold_batch)
    DialogueFactory(
        batch=plain_batch, prompt=text.prompt, response=text.response, external_id="g-0"
    )
    anna = _annotator("anna", gold_batch)
    ben = _annotator("ben", plain_batch)

    pages, payloads = [], []
    for who in (anna, ben):
        client.force_login(who)
        pages.append(client.get("/work/").content.decode())
        payloads.append(client.post("/api/v1/queue/next").json())

    # then the pages differ only in ids, names and tokens, and say nothing of gold
    for page in pages:
        assert "gold" not in page.lower().replace("golden", "")
    assert payloads[0].keys() == payloads[1].keys()
    assert payloads[0]["dialogue"].keys() == payloads[1]["dialogue"].keys()
    assert "gold" not in str(payloads[0]).replace("golden", "")
    assert payloads[0]["dialogue"]["prompt"] == payloads[1]["dialogue"]["prompt"]


# --- accuracy --------------------------------------------------------------------------


def test_jaccard_of_sets():
    a, b = frozenset({"Violence", "Threat"}), frozenset({"Violence"})
    assert jaccard(a, b) == 0.5
    assert jaccard(frozenset(), frozenset()) == 1.0
    assert jaccard(a, frozenset()) == 0.0


def _cats(batch: Batch, *names: str) -> list[Category]:
    return [Category.objects.get(taxonomy=batch.taxonomy, name=n) for n in names]


def _vote(dialogue: Dialogue, who: User, label: str, *categories: str) -> Label:
    vote = LabelFactory(dialogue=dialogue, annotator=who, label=label)
    LabelCategory.objects.bulk_create(
        LabelCategory(label=vote, category=c, position=i)
        for i, c in enumerate(_cats(dialogue.batch, *categories))
    )
    return vote


def test_gold_accuracy_on_a_hand_made_example():
    # given three gold items and one regular dialogue
    batch = BatchFactory(name="scored")
    g1, g2, g3, regular = (
        DialogueFactory(batch=batch, external_id=i) for i in ("g1", "g2", "g3", "r")
    )
    mark_gold(
        dialogue=g1,
        answer=GoldAnswer(label="unsafe", categories=("Violence", "Threat")),
        by=None,
    )
    mark_gold(dialogue=g2, answer=GoldAnswer(label="safe"), by=None)
    mark_gold(
        dialogue=g3,
        answer=GoldAnswer(label="needs_caution", categories=("Harassment",)),
        by=None,
    )
    anna, ben = UserFactory(username="anna"), UserFactory(username="ben")
    # anna: label right on g1 (categories 1/2) and g2 (1), wrong on g3 (1/2)
    _vote(g1, anna, "unsafe", "Violence")
    _vote(g2, anna, "safe")
    _vote(g3, anna, "unsafe", "Harassment", "Profanity")
    # ben: wrong on g1, no categories (0)
    _vote(g1, ben, "safe")
    # not counted: votes on a regular dialogue, a judge's vote on a gold one
    _vote(regular, ben, "unsafe", "Violence")
    LabelFactory(
        dialogue=g1, kind=VoteKind.MODEL, annotator=None, judge="j", label="safe"
    )

    # when the accuracy is computed
    scores = gold_accuracy(batch)

    # then
    assert scores == {
        "anna": {
            "n": 3,
            "label_accuracy": pytest.approx(2 / 3),
            "category_jaccard": pytest.approx((0.5 + 1 + 0.5) / 3),
        },
        "ben": {"n": 1, "label_accuracy": 0.0, "category_jaccard": 0.0},
    }


def test_score_gold_votes_is_empty_without_votes():
    assert score_gold_votes([]) == {}
    vote = GoldVote("x", "safe", frozenset(), "safe", frozenset())
    assert score_gold_votes([vote]) == {
        "x": {"n": 1, "label_accuracy": 1.0, "category_jaccard": 1.0}
    }


# --- the command -------------------------------------------------------------------------


def test_mark_gold_command_marks_all_or_nothing_and_removes(capsys):
    batch = BatchFactory(name="cmd")
    for i in range(3):
        DialogueFactory(batch=batch, external_id=f"c-{i}")

    with pytest.raises(CommandError, match="not in batch cmd: nope"):
        call_command(
            "mark_gold", "--batch", "cmd", "--ids", "c-0,nope", "--label", "safe"
        )
    assert GoldItem.objects.count() == 0

    call_command(
        "mark_gold",
        "--batch=cmd",
        "--ids=c-0,c-1",
        "--label=unsafe",
        "--categories=S1,Threat",
        "--json",
    )
    assert capsys.readouterr().out.strip() == '{"batch": "cmd", "gold": 2}'
    assert sorted(
        Dialogue.objects.filter(is_gold=True).values_list("external_id", flat=True)
    ) == ["c-0", "c-1"]

    call_command("mark_gold", "--batch=cmd", "--ids=c-1", "--remove", "--json")
    assert capsys.readouterr().out.strip() == '{"batch": "cmd", "removed": 1}'
    assert list(GoldItem.objects.values_list("dialogue__external_id", flat=True)) == [
        "c-0"
    ]


def test_mark_gold_command_takes_the_answer_from_reference_labels():
    batch = BatchFactory(name="ref")
    with_ref = DialogueFactory(batch=batch, external_id="a")
    without = DialogueFactory(batch=batch, external_id="b")
    reference = LabelFactory(
        dialogue=with_ref, kind=VoteKind.REFERENCE, annotator=None, label="unsafe"
    )
    LabelCategory.objects.create(
        label=reference, category=_cats(batch, "Violence")[0], position=0
    )

    with pytest.raises(CommandError, match="no reference label: b"):
        call_command("mark_gold", "--batch=ref", "--ids=a,b", "--from-reference")
    call_command("mark_gold", "--batch=ref", "--ids=a", "--from-reference")

    gold = GoldItem.objects.get()
    assert gold.dialogue == with_ref
    assert gold.label == "unsafe"
    assert [c.name for c in gold.categories.all()] == ["Violence"]
    assert not Dialogue.objects.get(pk=without.pk).is_gold
