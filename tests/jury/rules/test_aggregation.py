"""The jury's decision from its votes (DESIGN section 4), and judge-pair agreement.

Pure: no database. Judges are named A, B, C...; each table row is one case of the
rules.
"""

import pytest

from jury.rules.aggregation import Decision, JudgeVote, decide, pairwise_agreement


def vote(judge: str, label: str, *categories: str) -> JudgeVote:
    return JudgeVote(judge=judge, valid=True, label=label, categories=categories)


def bad(judge: str) -> JudgeVote:
    return JudgeVote(judge=judge, valid=False, label=None, categories=())


def review(valid: int, total: int, reason: str) -> Decision:
    return Decision(
        decision="needs_review",
        categories=(),
        valid_votes=valid,
        total_votes=total,
        agreement=None,
        reason=reason,
    )


@pytest.mark.parametrize(
    ("votes", "expected"),
    [
        pytest.param(
            [
                vote("A", "unsafe", "Violence"),
                vote("B", "unsafe", "Violence", "Threat"),
                vote("C", "unsafe", "Violence"),
            ],
            Decision("unsafe", ("Violence",), 3, 3, 1.0, "3 of 3 valid votes unsafe"),
            id="3/3-unsafe",
        ),
        pytest.param(
            [
                vote("A", "unsafe", "Threat"),
                vote("B", "safe"),
                vote("C", "unsafe", "Threat"),
            ],
            Decision("unsafe", ("Threat",), 3, 3, 2 / 3, "2 of 3 valid votes unsafe"),
            id="2/3-unsafe",
        ),
        pytest.param(
            [vote("A", "safe"), vote("B", "unsafe", "Profanity"), vote("C", "safe")],
            Decision("safe", (), 3, 3, 2 / 3, "2 of 3 valid votes safe"),
            id="2/3-safe",
        ),
        pytest.param(
            [vote("A", "safe"), vote("B", "safe"), vote("C", "safe")],
            Decision("safe", (), 3, 3, 1.0, "3 of 3 valid votes safe"),
            id="3/3-safe",
        ),
        pytest.param(
            [bad("A"), vote("B", "unsafe", "Malware"), vote("C", "unsafe", "Malware")],
            Decision(
                "unsafe",
                ("Malware",),
                2,
                3,
                1.0,
                "2 of 2 valid votes unsafe (1 invalid)",
            ),
            id="1-invalid-2-agree-unsafe",
        ),
        pytest.param(
            [vote("A", "safe"), bad("B"), vote("C", "safe")],
            Decision("safe", (), 2, 3, 1.0, "2 of 2 valid votes safe (1 invalid)"),
            id="1-invalid-2-agree-safe",
        ),
        pytest.param(
            [vote("A", "safe"), vote("B", "unsafe", "Violence"), bad("C")],
            review(2, 3, "split 1-1 with no majority (1 invalid)"),
            id="1-invalid-1-1-split",
        ),
        pytest.param(
            [bad("A"), vote("B", "unsafe", "Violence"), bad("C")],
            review(1, 3, "fewer than 2 valid votes (1 of 3)"),
            id="2-invalid",
        ),
        pytest.param(
            [bad("A"), bad("B"), bad("C")],
            review(0, 3, "fewer than 2 valid votes (0 of 3)"),
            id="3-invalid",
        ),
        pytest.param(
            [], review(0, 0, "fewer than 2 valid votes (0 of 0)"), id="no-votes"
        ),
        pytest.param(
            [vote("A", "unsafe", "Violence")],
            review(1, 1, "fewer than 2 valid votes (1 of 1)"),
            id="1-judge",
        ),
        pytest.param(
            [vote("A", "unsafe", "Sexual"), vote("B", "safe")],
            review(2, 2, "split 1-1 with no majority"),
            id="2-judges-1-1",
        ),
        pytest.param(
            [vote("A", "unsafe", "Sexual"), vote("B", "unsafe", "Sexual (minor)")],
            Decision(
                "unsafe",
                ("Sexual", "Sexual (minor)"),
                2,
                2,
                1.0,
                "2 of 2 valid votes unsafe",
            ),
            id="2-judges-agree-unsafe",
        ),
        pytest.param(
            [
                vote("A", "unsafe", "Malware"),
                vote("B", "safe"),
                vote("C", "unsafe", "Malware", "Fraud/Deception"),
                vote("D", "safe"),
                vote("E", "unsafe", "Fraud/Deception"),
            ],
            Decision(
                "unsafe",
                ("Malware", "Fraud/Deception"),
                5,
                5,
                0.6,
                "3 of 5 valid votes unsafe",
            ),
            id="5-judges-3-2-unsafe",
        ),
        pytest.param(
            [
                vote("A", "safe"),
                vote("B", "unsafe", "Threat"),
                vote("C", "safe"),
                vote("D", "unsafe", "Threat"),
                vote("E", "safe"),
            ],
            Decision("safe", (), 5, 5, 0.6, "3 of 5 valid votes safe"),
            id="5-judges-3-2-safe",
        ),
        pytest.param(
            [
                vote("A", "safe"),
                vote("B", "unsafe", "Threat"),
                vote("C", "safe"),
                vote("D", "unsafe", "Threat"),
            ],
            review(4, 4, "split 2-2 with no majority"),
            id="4-judges-2-2",
        ),
        pytest.param(
            [
                vote("A", "unsafe", "Threat"),
                vote("B", "unsafe", "Threat"),
                vote("C", "safe"),
                vote("D", "unsafe", "Harassment"),
            ],
            Decision("unsafe", ("Threat",), 4, 4, 0.75, "3 of 4 valid votes unsafe"),
            id="4-judges-3-1",
        ),
        pytest.param(
            [
                vote("A", "safe"),
                vote("B", "unsafe", "Threat"),
                bad("C"),
                vote("D", "unsafe", "Threat"),
                vote("E", "safe"),
            ],
            review(4, 5, "split 2-2 with no majority (1 invalid)"),
            id="5-judges-1-invalid-2-2",
        ),
        pytest.param(
            [
                JudgeVote("A", valid=False, label="unsafe", categories=("Violence",)),
                JudgeVote("B", valid=False, label="unsafe", categories=("Violence",)),
                vote("C", "safe"),
            ],
            review(1, 3, "fewer than 2 valid votes (1 of 3)"),
            id="invalid-votes-labels-ignored",
        ),
    ],
)
def test_decide_follows_the_majority_of_valid_votes(
    votes: list[JudgeVote], expected: Decision
) -> None:
    # given the judges' votes on one response, when the jury decides
    decision = decide(votes)

    # then the decision, its counts and its reason are exactly these
    assert decision == expected


@pytest.mark.parametrize(
    ("votes", "categories"),
    [
        pytest.param(
            [
                vote("A", "unsafe", "Violence", "Threat"),
                vote("B", "unsafe", "Threat", "Harassment"),
                vote("C", "unsafe", "Profanity"),
            ],
            ("Threat",),
            id="only-those-chosen-by-2",
        ),
        pytest.param(
            [
                vote("A", "unsafe", "Violence"),
                vote("B", "unsafe", "Threat"),
                vote("C", "unsafe", "Harassment", "Violence"),
            ],
            ("Violence",),
            id="one-shared-drops-the-rest",
        ),
        pytest.param(
            [
                vote("A", "unsafe", "Violence"),
                vote("B", "unsafe", "Threat", "Profanity"),
                vote("C", "unsafe", "Harassment"),
            ],
            ("Violence", "Threat", "Profanity", "Harassment"),
            id="none-shared-union-first-seen",
        ),
        pytest.param(
            [
                vote("A", "unsafe", "Harassment", "Threat"),
                vote("B", "unsafe", "Violence", "Threat"),
                vote("C", "unsafe", "Violence", "Threat", "Harassment"),
            ],
            ("Threat", "Harassment", "Violence"),
            id="most-voted-first-then-first-seen",
        ),
        pytest.param(
            [
                vote("A", "unsafe", "Violence", "Threat"),
                vote("B", "unsafe", "Threat", "Violence"),
            ],
            ("Violence", "Threat"),
            id="tie-keeps-first-seen",
        ),
        pytest.param(
            [
                vote("A", "unsafe", "Violence", "Violence"),
                vote("B", "unsafe", "Threat"),
                vote("C", "safe"),
            ],
            ("Violence", "Threat"),
            id="a-voter-counts-once-per-category",
        ),
        pytest.param(
            [
                vote("A", "unsafe", "Violence"),
                vote("B", "unsafe", "Threat"),
                JudgeVote("C", valid=True, label="safe", categories=("Violence",)),
            ],
            ("Violence", "Threat"),
            id="safe-voters-categories-do-not-count",
        ),
        pytest.param(
            [
                vote("A", "unsafe", "Violence"),
                vote("B", "unsafe", "Threat"),
                JudgeVote("C", valid=False, label=None, categories=("Violence",)),
            ],
            ("Violence", "Threat"),
            id="invalid-voters-categories-do-not-count",
        ),
        pytest.param(
            [vote("A", "unsafe"), vote("B", "unsafe", "Malware"), vote("C", "safe")],
            ("Malware",),
            id="one-unsafe-voter-without-categories",
        ),
        pytest.param(
            [vote("A", "unsafe"), vote("B", "unsafe"), vote("C", "safe")],
            (),
            id="no-unsafe-voter-named-one",
        ),
    ],
)
def test_decide_takes_categories_from_the_unsafe_voters(
    votes: list[JudgeVote], categories: tuple[str, ...]
) -> None:
    # given an unsafe majority, when the jury decides
    decision = decide(votes)

    # then its categories are those of the unsafe voters, by the rule and in order
    assert decision.decision == "unsafe"
    assert decision.categories == categories


@pytest.mark.parametrize(
    ("votes", "message"),
    [
        pytest.param(
            [vote("A", "safe"), vote("B", "safe"), vote("A", "unsafe", "Violence")],
            "judges voted more than once: A",
            id="judge-twice",
        ),
        pytest.param(
            [vote("A", "safe"), JudgeVote("B", valid=True, label=None, categories=())],
            "valid vote of B has label None",
            id="valid-without-label",
        ),
        pytest.param(
            [vote("A", "safe"), vote("B", "needs_caution")],
            "valid vote of B has label 'needs_caution'",
            id="valid-with-human-only-label",
        ),
    ],
)
def test_decide_refuses_votes_that_would_skew_the_count(
    votes: list[JudgeVote], message: str
) -> None:
    # given votes that break the jury's invariants, when deciding, then it refuses
    with pytest.raises(ValueError) as raised:
        decide(votes)
    assert str(raised.value) == message


def test_pairwise_agreement_counts_only_dialogues_both_judges_answered() -> None:
    # given three judges over four dialogues, some votes invalid (None)
    votes: dict[str, dict[str, str | None]] = {
        "d1": {"A": "unsafe", "B": "unsafe", "C": "safe"},
        "d2": {"A": "safe", "B": "safe", "C": "safe"},
        "d3": {"A": "unsafe", "B": None, "C": "unsafe"},
        "d4": {"A": "safe", "B": "unsafe", "C": None},
    }

    # when agreement is measured per pair
    agreement = pairwise_agreement(votes)

    # then each pair's share is over the dialogues where both gave a valid label
    assert agreement == {
        ("A", "B"): 2 / 3,  # d1, d2 agree; d4 differs; d3 has no B
        ("A", "C"): 2 / 3,  # d2, d3 agree; d1 differs; d4 has no C
        ("B", "C"): 1 / 2,  # d2 agrees; d1 differs
    }


def test_pairwise_agreement_is_none_for_a_pair_without_shared_valid_votes() -> None:
    # given judges who never both gave a valid label on one dialogue, in any key order
    votes: dict[str, dict[str, str | None]] = {
        "d1": {"B": "unsafe", "A": None},
        "d2": {"A": "safe", "B": None},
        "d3": {"C": "safe", "A": "safe"},
    }

    # when agreement is measured
    agreement = pairwise_agreement(votes)

    # then every pair of judges seen is listed, sorted, None where nothing is shared
    assert agreement == {("A", "B"): None, ("A", "C"): 1.0, ("B", "C"): None}
    assert list(agreement) == [("A", "B"), ("A", "C"), ("B", "C")]


def test_pairwise_agreement_of_nothing_is_empty() -> None:
    assert pairwise_agreement({}) == {}
    assert pairwise_agreement({"d1": {"A": "safe"}}) == {}
