"""Which split each prompt goes to: grouped, stratified, seeded (DESIGN section 6).

Pure functions over plain values. A *group* is every row of one prompt (its
original dialogues, other responses to it, refusals): a group lands in one split as
a whole, so no prompt is in two splits. Groups are stratified by their *stratum*
(prompt label and primary category) and ordered within it by a hash of the seed and
the group's key, so the same data and seed always give the same assignment, whatever
order the rows were read in and whatever Python's hash seed is.

Assignment is a greedy fill: each group goes to the split that is furthest below its
share, counting both the group's stratum (which keeps every stratum's proportions)
and all rows so far (which keeps small strata from all rounding into the largest
split). A group that holds a refusal never goes to test.
"""

import hashlib
from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from accounts.refusals import Refused

SPLITS = ("train", "validation", "test")
DEFAULT_RATIOS = (0.8, 0.1, 0.1)


class BadRatios(Refused, ValueError):
    """Split ratios that are not three non-negative shares adding up to 1."""


def parse_ratios(text: str | Sequence[float]) -> tuple[float, float, float]:
    """Three shares (train, validation, test) from "0.8,0.1,0.1" or a sequence.

    Raises BadRatios naming what is wrong.
    """
    if isinstance(text, str):
        parts = [p.strip() for p in text.split(",")]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise BadRatios(
                f"ratios must be three numbers like 0.8,0.1,0.1, not {text!r}"
            ) from None
    else:
        values = [float(v) for v in text]
    if len(values) != 3:
        raise BadRatios(
            f"ratios need three shares (train, validation, test), got {len(values)}"
        )
    if any(v < 0 or v != v for v in values):
        raise BadRatios(f"ratios cannot be negative: {values}")
    if abs(sum(values) - 1) > 1e-6:
        raise BadRatios(f"ratios must add up to 1, not {sum(values):g}: {values}")
    if values[0] <= 0:
        raise BadRatios("the train share must be above 0")
    return values[0], values[1], values[2]


@dataclass(frozen=True)
class Group:
    """One prompt's rows as the split sees them."""

    key: str
    stratum: Hashable
    rows: int
    has_refusal: bool = False


def _order(seed: int, key: str) -> bytes:
    return hashlib.sha256(f"{seed}\x00{key}".encode()).digest()


def _stratum_order(stratum: Hashable) -> str:
    return repr(stratum)


def assign(
    groups: Sequence[Group], *, seed: int, ratios: Sequence[float] = DEFAULT_RATIOS
) -> dict[str, str]:
    """The split of every group, by group key.

    Keys must be unique. Deterministic in (the set of groups, seed, ratios).
    """
    shares = parse_ratios(ratios)
    by_stratum: dict[Hashable, list[Group]] = defaultdict(list)
    for group in groups:
        by_stratum[group.stratum].append(group)
    total = [0, 0, 0]
    out: dict[str, str] = {}
    for stratum in sorted(by_stratum, key=_stratum_order):
        members = sorted(by_stratum[stratum], key=lambda g: _order(seed, g.key))
        here = [0, 0, 0]
        for group in members:
            allowed = (0, 1) if group.has_refusal else (0, 1, 2)
            n_here = sum(here) + group.rows
            n_all = sum(total) + group.rows
            # How far each split would be below its share once this group is in.
            room = {
                i: (shares[i] * n_here - here[i]) + (shares[i] * n_all - total[i])
                for i in allowed
                if shares[i] > 0 or i == 0
            }
            best = max(room, key=lambda i: (room[i], -i))
            here[best] += group.rows
            total[best] += group.rows
            out[group.key] = SPLITS[best]
    return out
