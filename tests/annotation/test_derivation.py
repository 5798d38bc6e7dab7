"""The human majority of DESIGN section 3 (the part the jury needs now)."""

import pytest

from annotation.derivation import binary, human_majority

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
