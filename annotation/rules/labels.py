"""The label vocabulary and the needs-caution policy (DESIGN section 3), in one place.

A vote's label is 3-way; a final label is binary, after the batch's policy maps
needs caution to safe (permissive, the Aegis 2.0 release's choice) or to unsafe
(defensive). Every other module builds on `binary` instead of restating it.
(`annotation.models.LabelValue` and `NeedsCautionPolicy` are the database's choices
for the same values; a test keeps them equal.)
"""

from collections.abc import Mapping

SAFE = "safe"
NEEDS_CAUTION = "needs_caution"
UNSAFE = "unsafe"
LABELS = (SAFE, NEEDS_CAUTION, UNSAFE)  # a vote's label, in this order everywhere
BINARY = (SAFE, UNSAFE)  # a final label
# The jury's decision on a response: a binary label, or no majority for a lead.
NEEDS_REVIEW = "needs_review"
JURY_DECISIONS = (*BINARY, NEEDS_REVIEW)

PERMISSIVE = "permissive"
DEFENSIVE = "defensive"
POLICIES = (PERMISSIVE, DEFENSIVE)


def binary(label: str, policy: str) -> str:
    """A 3-way label as safe/unsafe under the batch's needs-caution policy."""
    if label == NEEDS_CAUTION:
        return UNSAFE if policy == DEFENSIVE else SAFE
    return label


def binary_counts(counts: Mapping[str, int], policy: str) -> tuple[int, int]:
    """(safe, unsafe) votes after the policy, from counts of 3-way labels."""
    mapped = {SAFE: 0, UNSAFE: 0}
    for label, n in counts.items():
        mapped[binary(label, policy)] += n
    return mapped[SAFE], mapped[UNSAFE]
