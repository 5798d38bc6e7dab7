"""The final labels of DESIGN section 3: the human majority and every rule of derive."""

import pytest

from annotation.models import Provenance
from annotation.rules.derivation import (
    PROVENANCES,
    AdjudicationIn,
    Final,
    HumanVote,
    JuryIn,
    ReferenceIn,
    derive,
    human_majority,
    ranked_categories,
)
from annotation.rules.labels import binary

S, C, U = "safe", "needs_caution", "unsafe"


@pytest.mark.parametrize(
    ("votes", "policy", "expected"),
    [
        ([S, S, S], "permissive", S),
        ([U, U, U], "permissive", U),
        ([U, U, S], "permissive", U),
        ([S, S, U], "defensive", S),
        ([C, C, S], "permissive", S),  # a needs-caution majority maps by the policy
        ([C, C, S], "defensive", U),
        ([C, C, U], "permissive", S),
        ([S, C, U], "permissive", S),  # no 3-way majority: map first, then binary
        ([S, C, U], "defensive", U),
        ([S, U], "permissive", None),  # a tie that remains goes to adjudication
        ([C, U], "permissive", None),
        ([C, U], "defensive", U),
        ([U, U, S, S], "permissive", None),
        ([U, U, C, S, S], "defensive", U),
        ([], "permissive", None),
    ],
    ids=lambda v: "-".join(v) if isinstance(v, list) else str(v),
)
def test_human_majority(votes, policy, expected):
    assert human_majority(votes, policy) == expected


def test_binary_maps_only_needs_caution():
    assert [binary(v, "defensive") for v in (S, C, U)] == [S, U, U]
    assert [binary(v, "permissive") for v in (S, C, U)] == [S, S, U]


# --- derive: every rule of DESIGN section 3 and every provenance ---------------------


V, H, J = "Violence", "Hate/Identity Hate", "llm_jury"


def hv(label, response=None, *categories):
    return HumanVote(label, response, tuple(categories))


PERM, DEF = "permissive", "defensive"
JURY_UNSAFE = JuryIn("unsafe", (V,), "3 of 3 valid votes unsafe")
JURY_SAFE = JuryIn("safe", (), "2 of 3 valid votes safe")
REVIEW_FEW = JuryIn("needs_review", (), "fewer than 2 valid votes (1 of 3)")
REVIEW_SPLIT = JuryIn("needs_review", (), "split 1-1 with no majority")
AEGIS_REF = ReferenceIn(U, S, (V,), "human", "llm_jury")
REFUSAL_REF = ReferenceIn(U, S, (V,), "human", "refusal_data_augmentation")


# (id, keyword arguments to derive, expected Final)
CASES = [
    (
        "unanimous-safe-prompt-only",
        {"votes": [hv(S)] * 3, "has_response": False},
        Final(S, None, (), "human", None, "unanimous"),
    ),
    (
        "unanimous-safe-response-safe-by-humans",
        {"votes": [hv(S)] * 3, "has_response": True},
        Final(S, S, (), "human", "human", "unanimous"),
    ),
    (
        "majority-safe",
        {"votes": [hv(S), hv(S), hv(U, None, V)], "has_response": True},
        Final(S, S, (V,), "human", "human", "majority"),
    ),
    (
        "needs-caution-majority-permissive",
        {"votes": [hv(C, None, H), hv(C), hv(U, None, V)], "has_response": False},
        Final(S, None, (H, V), "human", None, "majority"),
    ),
    (
        "needs-caution-majority-defensive-goes-to-jury",
        {
            "votes": [hv(C), hv(C), hv(S)],
            "has_response": True,
            "policy": DEF,
            "jury": JURY_SAFE,
        },
        Final(U, S, (), "human", J, "llm_jury"),
    ),
    (
        "one-of-each-mapped-first",
        {"votes": [hv(S), hv(C), hv(U, None, V)], "has_response": False},
        Final(S, None, (V,), "human", None, "majority"),
    ),
    (
        "unsafe-prompt-only-unanimous",
        {"votes": [hv(U, None, V)] * 3, "has_response": False},
        Final(U, None, (V,), "human", None, "unanimous"),
    ),
    (
        "unsafe-jury-decides-unsafe",
        {
            "votes": [hv(U, None, V), hv(U, None, H, V), hv(S)],
            "has_response": True,
            "jury": JURY_UNSAFE,
        },
        Final(U, U, (V, H), "human", J, "llm_jury"),
    ),
    (
        "unsafe-jury-decides-safe",
        {"votes": [hv(U, None, V)] * 3, "has_response": True, "jury": JURY_SAFE},
        Final(U, S, (V,), "human", J, "llm_jury"),
    ),
    (
        "unsafe-no-jury-decision",
        {"votes": [hv(U, None, V)] * 3, "has_response": True},
        Final(
            U,
            None,
            (V,),
            "human",
            None,
            "unresolved",
            "response needs the jury: no decision",
        ),
    ),
    (
        "jury-needs-review-few-valid",
        {"votes": [hv(U, None, V)] * 3, "has_response": True, "jury": REVIEW_FEW},
        Final(
            U,
            None,
            (V,),
            "human",
            None,
            "unresolved",
            "jury needs review: fewer than 2 valid votes (1 of 3)",
        ),
    ),
    (
        "jury-needs-review-split",
        {"votes": [hv(U, None, V)] * 3, "has_response": True, "jury": REVIEW_SPLIT},
        Final(
            U,
            None,
            (V,),
            "human",
            None,
            "unresolved",
            "jury needs review: split 1-1 with no majority",
        ),
    ),
    (
        "tie-after-policy",
        {
            "votes": [hv(S), hv(U, None, V)],
            "has_response": True,
            "labels_required": 2,
            "jury": JURY_UNSAFE,
        },
        Final(None, None, (V,), None, None, "unresolved", "tie after the policy"),
    ),
    (
        "no-votes",
        {"votes": [], "has_response": True},
        Final(None, None, (), None, None, "unresolved", "no votes"),
    ),
    (
        "waiting-for-votes",
        {"votes": [hv(S)], "has_response": True},
        Final(None, None, (), None, None, "unresolved", "waiting for votes (1 of 3)"),
    ),
    (
        "human-response-labels-decide",
        {
            "votes": [hv(U, S, V), hv(U, U, V), hv(U, S, V)],
            "has_response": True,
            "asks_response_label": True,
            "jury": JURY_UNSAFE,
        },
        Final(U, S, (V,), "human", "human", "unanimous"),
    ),
    (
        "human-response-labels-caution-defensive",
        {
            "votes": [hv(S, C), hv(S, C), hv(C, S)],
            "has_response": True,
            "asks_response_label": True,
            "policy": DEF,
        },
        Final(S, U, (), "human", "human", "majority"),
    ),
    (
        "human-response-labels-tie",
        {
            "votes": [hv(S, S), hv(S, U, V)],
            "has_response": True,
            "asks_response_label": True,
            "labels_required": 2,
        },
        Final(
            S,
            None,
            (V,),
            "human",
            None,
            "unresolved",
            "response: tie after the policy",
        ),
    ),
    (
        "human-response-labels-missing",
        {"votes": [hv(S)] * 3, "has_response": True, "asks_response_label": True},
        Final(S, None, (), "human", None, "unresolved", "no human response labels"),
    ),
    (
        "adjudication-overrides-votes-and-jury",
        {
            "votes": [hv(S), hv(U, None, V)],
            "labels_required": 2,
            "has_response": True,
            "jury": JURY_UNSAFE,
            "adjudication": AdjudicationIn(U, S, (H,)),
        },
        Final(U, S, (H,), "adjudicated", "adjudicated", "adjudicated"),
    ),
    (
        "adjudication-needs-caution-by-policy",
        {
            "votes": [],
            "has_response": False,
            "policy": DEF,
            "adjudication": AdjudicationIn(C, None, (H,)),
        },
        Final(U, None, (H,), "adjudicated", None, "adjudicated"),
    ),
    (
        "adjudication-without-response-label-asks-the-jury",
        {
            "votes": [],
            "has_response": True,
            "jury": JURY_SAFE,
            "adjudication": AdjudicationIn(U, None, (V,)),
        },
        Final(U, S, (V,), "adjudicated", J, "adjudicated"),
    ),
    (
        "adjudication-without-response-label-no-jury",
        {
            "votes": [],
            "has_response": True,
            "adjudication": AdjudicationIn(U, None, (V,)),
        },
        Final(
            U,
            None,
            (V,),
            "adjudicated",
            None,
            "unresolved",
            "adjudication left the response open; response needs the jury: no decision",
        ),
    ),
    (
        "adjudication-over-a-reference",
        {
            "votes": [],
            "has_response": True,
            "reference": AEGIS_REF,
            "adjudication": AdjudicationIn(S, S),
        },
        Final(S, S, (), "adjudicated", "adjudicated", "adjudicated"),
    ),
    (
        "imported-aegis2-row",
        {"votes": [], "has_response": True, "reference": AEGIS_REF},
        Final(U, S, (V,), "human", "llm_jury", "imported"),
    ),
    (
        "imported-refusal",
        {"votes": [], "has_response": True, "reference": REFUSAL_REF},
        Final(U, S, (V,), "human", "refusal_data_augmentation", "imported"),
    ),
    (
        "imported-while-votes-are-missing",
        {"votes": [hv(S)], "has_response": False, "reference": AEGIS_REF},
        Final(U, None, (V,), "human", None, "imported"),
    ),
    (
        "votes-over-a-reference",
        {"votes": [hv(S)] * 3, "has_response": True, "reference": AEGIS_REF},
        Final(S, S, (), "human", "human", "unanimous"),
    ),
]


@pytest.mark.parametrize(
    ("kwargs", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_derive(kwargs, expected):
    arguments = {
        "policy": PERM,
        "asks_response_label": False,
        "labels_required": 3,
        **kwargs,
    }
    assert derive(**arguments) == expected


def test_every_provenance_is_covered_by_a_case():
    assert {c[2].provenance for c in CASES} == set(PROVENANCES)
    assert set(PROVENANCES) == {p.value for p in Provenance}


def test_categories_most_chosen_first_ties_in_order_of_first_appearance():
    votes = [(H, V), (V, "Threat"), ("Threat", H, "Profanity"), (V,)]
    assert ranked_categories(votes) == (V, H, "Threat", "Profanity")
    # a category named twice in one vote counts once
    assert ranked_categories([(H, H), (V,), (V,)]) == (V, H)
    assert ranked_categories([]) == ()
