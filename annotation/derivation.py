"""How votes become labels (DESIGN section 3), as pure functions over plain values."""

from collections import Counter
from collections.abc import Sequence

PERMISSIVE = "permissive"
DEFENSIVE = "defensive"


def binary(label: str, policy: str) -> str:
    """A 3-way label as safe/unsafe under the batch's needs-caution policy."""
    if label == "needs_caution":
        return "unsafe" if policy == DEFENSIVE else "safe"
    return label


def human_majority(labels: Sequence[str], policy: str) -> str | None:
    """The prompt label the human votes give: "safe", "unsafe", or None for a tie.

    The 3-way majority decides (a needs_caution majority is mapped by the policy);
    with no 3-way majority the votes are mapped by the policy first and the binary
    majority decides; a tie that remains is None (adjudication).
    """
    if not labels:
        return None
    counts = Counter(labels).most_common()
    top, n = counts[0]
    if n * 2 > len(labels):
        return binary(top, policy)
    mapped = Counter(binary(label, policy) for label in labels)
    if mapped["unsafe"] != mapped["safe"]:
        return "unsafe" if mapped["unsafe"] > mapped["safe"] else "safe"
    return None
