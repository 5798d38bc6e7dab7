"""The label vocabulary and the needs-caution policy, in one place (rules.labels)."""

import pytest

from annotation.models import JuryVerdict, LabelValue, NeedsCautionPolicy
from annotation.rules.labels import (
    BINARY,
    JURY_DECISIONS,
    LABELS,
    POLICIES,
    binary,
    binary_counts,
)


def test_the_database_choices_are_the_rules_vocabulary():
    assert tuple(LabelValue.values) == LABELS
    assert tuple(NeedsCautionPolicy.values) == POLICIES
    assert tuple(JuryVerdict.values) == JURY_DECISIONS


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("permissive", ("safe", "safe", "unsafe")),
        ("defensive", ("safe", "unsafe", "unsafe")),
    ],
)
def test_binary_maps_needs_caution_by_the_policy(policy, expected):
    assert tuple(binary(label, policy) for label in LABELS) == expected
    assert set(expected) <= set(BINARY)


def test_binary_counts_are_the_votes_after_the_policy():
    counts = {"safe": 2, "needs_caution": 3, "unsafe": 1}

    assert binary_counts(counts, "permissive") == (5, 1)
    assert binary_counts(counts, "defensive") == (2, 4)
    assert binary_counts({}, "permissive") == (0, 0)
