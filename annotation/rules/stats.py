"""Inter-rater agreement over a long table of votes, as pure numpy (no Django).

The agreement report needs Fleiss' kappa, Krippendorff's alpha (nominal), the mean
pairwise agreement, Cohen's kappa per rater pair and bootstrap intervals, on tables
of tens of thousands of items, many times per report. Two facts shape this module:

* Fleiss' kappa, alpha and percent agreement see the data only through the multiset
  of per-item count vectors (how many raters chose each category on an item). With a
  few raters and categories there are only a handful of distinct vectors, so every
  statistic is computed from a small pattern table: pattern frequencies (a row of
  weights) times per-pattern quantities. A bootstrap resample of items is then just
  another row of weights, drawn from a multinomial, and all resamples are computed
  in one matrix product. Point estimates use the same code with the observed
  frequencies, so a point estimate and its interval never disagree by construction.
* A statistic that is undefined (0/0: no pairable items, one category, unequal rater
  counts for Fleiss) is reported as a missing value with a reason, never as a 0 or 1
  that a reader would take for a measurement.

Items with fewer than two values carry no information about agreement and are left
out of every statistic.
"""

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

FLEISS_KAPPA = "fleiss_kappa"
KRIPPENDORFF_ALPHA = "krippendorff_alpha"
PERCENT_AGREEMENT = "percent_agreement"
STATISTICS = (FLEISS_KAPPA, KRIPPENDORFF_ALPHA, PERCENT_AGREEMENT)
# The statistics whose bootstrap interval the summary reports.
INTERVAL_STATISTICS = (FLEISS_KAPPA, KRIPPENDORFF_ALPHA)

# Most bins a counting pass may allocate before sorting takes over (crowd data: many
# raters, few votes each, would otherwise allocate raters^2 x values^2 bins).
_DENSE_LIMIT = 1 << 24


def _dense(bins: int, n_keys: int) -> bool:
    """Whether counting ``n_keys`` keys into ``bins`` bins beats sorting them."""
    return bins <= min(_DENSE_LIMIT, 4 * n_keys + (1 << 16))


@dataclass(frozen=True, eq=False)
class Votes:
    """Encoded long table: parallel int arrays + the labels of the codes.

    One row per vote: ``items[j]`` rated by ``raters[j]`` gave ``values[j]``, each an
    index into the matching ``*_keys`` tuple. Missing votes are simply absent. The
    arrays are made read-only so the cached pattern table stays true (``eq=False``:
    comparing arrays element-wise has no single truth value).
    """

    items: IntArray
    raters: IntArray
    values: IntArray
    item_keys: tuple[Hashable, ...]
    rater_keys: tuple[Hashable, ...]
    value_keys: tuple[Hashable, ...]

    def __post_init__(self) -> None:
        columns = {}
        for name, keys in (
            ("items", self.item_keys),
            ("raters", self.rater_keys),
            ("values", self.value_keys),
        ):
            column = _code_array(getattr(self, name), name, len(keys))
            column.flags.writeable = False
            columns[name] = column
            object.__setattr__(self, name, column)
        lengths = {len(column) for column in columns.values()}
        if len(lengths) > 1:
            raise ValueError("items, raters and values must have the same length")
        for name in ("item_keys", "rater_keys", "value_keys"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        _check_no_duplicates(self.items, self.raters, self.item_keys, self.rater_keys)

    @property
    def n_items(self) -> int:
        """Items known to the table, pairable or not."""
        return len(self.item_keys)

    @property
    def n_raters(self) -> int:
        """Raters known to the table, whether or not they voted on a pairable item."""
        return len(self.rater_keys)

    @property
    def n_values(self) -> int:
        """Categories, including any that nobody chose (they still count for k)."""
        return len(self.value_keys)

    def counts(self) -> IntArray:
        """The n_items x n_values matrix of how many raters chose each category."""
        flat = np.bincount(
            self.items * self.n_values + self.values,
            minlength=self.n_items * self.n_values,
        )
        return flat.astype(np.int64).reshape(self.n_items, self.n_values)

    @cached_property
    def item_sizes(self) -> IntArray:
        """How many values each item has (an item is pairable from two on)."""
        return np.bincount(self.items, minlength=self.n_items).astype(np.int64)

    @cached_property
    def patterns(self) -> "Patterns":
        """The distinct count vectors of the pairable items, with their frequency."""
        return _patterns(self.counts()[self.item_sizes >= 2])


def encode(
    rows: Iterable[tuple[Hashable, Hashable, Hashable]],
    values: Sequence[Hashable] | None = None,
) -> Votes:
    """Code rows of (item, rater, value) into a ``Votes`` table.

    A value of None is a missing vote: the row is dropped, but its item and rater
    still get a code (a report can say that an item had no votes) and it still counts
    for the duplicate check, since two rows for one (item, rater) are a data error
    whatever they hold. ``values`` fixes the categories and their order; without it
    they are coded in order of first appearance, like items and raters.
    """
    fixed = values is not None
    value_index: dict[Hashable, int] = {}
    if values is not None:
        value_index = {value: code for code, value in enumerate(values)}
        if len(value_index) != len(values):
            raise ValueError("values lists a category twice")
        if None in value_index:
            raise ValueError("None cannot be a category: it marks a missing vote")
    item_index: dict[Hashable, int] = {}
    rater_index: dict[Hashable, int] = {}
    item_codes: list[int] = []
    rater_codes: list[int] = []
    value_codes: list[int] = []
    for item, rater, value in rows:
        item_codes.append(item_index.setdefault(item, len(item_index)))
        rater_codes.append(rater_index.setdefault(rater, len(rater_index)))
        if value is None:
            value_codes.append(-1)
            continue
        code = value_index.get(value)
        if code is None:
            if fixed:
                raise ValueError(f"value {value!r} is not one of the given values")
            code = value_index[value] = len(value_index)
        value_codes.append(code)
    items = np.array(item_codes, dtype=np.int64)
    raters = np.array(rater_codes, dtype=np.int64)
    coded = np.array(value_codes, dtype=np.int64)
    item_keys, rater_keys = tuple(item_index), tuple(rater_index)
    _check_no_duplicates(items, raters, item_keys, rater_keys)
    present = coded >= 0
    return Votes(
        items=items[present],
        raters=raters[present],
        values=coded[present],
        item_keys=item_keys,
        rater_keys=rater_keys,
        value_keys=tuple(value_index),
    )


def from_arrays(
    items: npt.ArrayLike,
    raters: npt.ArrayLike,
    values: npt.ArrayLike,
    *,
    item_keys: Sequence[Hashable] | None = None,
    rater_keys: Sequence[Hashable] | None = None,
    value_keys: Sequence[Hashable] | None = None,
) -> Votes:
    """A ``Votes`` table from already-coded non-negative integer arrays (no missing).

    The fast path for data that is coded already (a query's ids, a benchmark). Keys
    default to the codes themselves, up to the largest code used; pass ``value_keys``
    to count categories nobody chose.
    """
    coded = [np.asarray(column) for column in (items, raters, values)]
    keys = [
        tuple(given)
        if given is not None
        else tuple(range(int(column.max()) + 1 if column.size else 0))
        for given, column in zip(
            (item_keys, rater_keys, value_keys), coded, strict=True
        )
    ]
    return Votes(
        items=coded[0],
        raters=coded[1],
        values=coded[2],
        item_keys=keys[0],
        rater_keys=keys[1],
        value_keys=keys[2],
    )


@dataclass(frozen=True)
class Stat:
    """A statistic's value, or None with the reason it is undefined.

    The value is always a plain finite float, so it goes into JSON as is; the
    invariant (reason set exactly when value is None) is checked here rather than
    trusted at every call site.
    """

    value: float | None
    reason: str | None = None

    def __post_init__(self) -> None:
        if (self.value is None) == (self.reason is None):
            raise ValueError("a Stat has either a value or a reason, not both")
        if self.value is not None:
            value = float(self.value)
            if not np.isfinite(value):
                raise ValueError(f"a Stat value must be finite, got {value}")
            object.__setattr__(self, "value", value)


@dataclass(frozen=True)
class Patterns:
    """Distinct per-item count vectors of the pairable items, and how often each occurs.

    Every quantity a statistic needs is per pattern, so a statistic over any
    weighting of the patterns (the data, or a bootstrap resample) is a matrix product.
    """

    counts: FloatArray  # P x K count vectors, as floats for the matrix products
    freq: IntArray  # P, how many items have each vector

    @property
    def n_units(self) -> int:
        """Pairable items."""
        return int(self.freq.sum())

    @cached_property
    def sizes(self) -> FloatArray:
        """Values per item of each pattern (m)."""
        sizes: FloatArray = self.counts.sum(axis=1)
        return sizes

    @cached_property
    def agreeing_pairs(self) -> FloatArray:
        """Ordered pairs of values on the item that agree: sum over c of c(c-1)."""
        pairs: FloatArray = (self.counts * (self.counts - 1)).sum(axis=1)
        return pairs

    @cached_property
    def pair_agreement(self) -> FloatArray:
        """Share of the item's rater pairs that agree (Fleiss' P_i)."""
        return self.agreeing_pairs / (self.sizes * (self.sizes - 1))

    @cached_property
    def coincidences(self) -> FloatArray:
        """The item's contribution to the diagonal of Krippendorff's coincidence matrix."""
        return self.agreeing_pairs / (self.sizes - 1)

    def category_totals(self) -> FloatArray:
        """How often each category was chosen over the pairable items."""
        return self.freq.astype(np.float64) @ self.counts


def _patterns(counts: IntArray) -> Patterns:
    """Collapse identical count rows.

    Rows are keyed by a mixed-radix integer (base = largest row sum + 1) because
    ``np.unique(axis=0)`` sorts a structured view and is ten times slower; the row
    form is the fallback when the key would overflow int64.
    """
    n_values = counts.shape[1]
    if counts.shape[0] == 0:
        return Patterns(
            counts=np.zeros((0, n_values)), freq=np.zeros(0, dtype=np.int64)
        )
    base = int(counts.sum(axis=1).max()) + 1
    if base**n_values >= 2**62:
        rows, freq = np.unique(counts, axis=0, return_counts=True)
        return Patterns(counts=rows.astype(np.float64), freq=freq.astype(np.int64))
    powers = base ** np.arange(n_values, dtype=np.int64)
    keys = counts @ powers
    if _dense(base**n_values, counts.shape[0]):
        tally = np.bincount(keys)
        distinct = np.flatnonzero(tally)
        freq = tally[distinct]
    else:
        distinct, freq = np.unique(keys, return_counts=True)
    rows = (distinct[:, None] // powers) % base
    return Patterns(counts=rows.astype(np.float64), freq=freq.astype(np.int64))


# Each statistic is a function of (patterns, weights B x P) -> B values, NaN where
# the resample makes it undefined. Undefined denominators are exact integers held in
# floats (all terms are integer counts well below 2**53), so `== 0` is exact.


def _percent_batch(p: Patterns, weights: FloatArray) -> FloatArray:
    """Fleiss' P-bar: the mean over items of the share of agreeing rater pairs."""
    percent: FloatArray = (weights @ p.pair_agreement) / weights.sum(axis=1)
    return percent


def _fleiss_batch(p: Patterns, weights: FloatArray) -> FloatArray:
    """Fleiss' kappa, (P-bar - P_e) / (1 - P_e), both scaled by (N n)^2 to stay exact.

    Assumes every item has n = sizes[0] values: ``_fleiss_reason`` refuses the data
    before any call otherwise, and a resample of such data keeps that property.
    """
    n_units = weights.sum(axis=1)
    totals = weights @ p.counts
    chance = np.einsum("bk,bk->b", totals, totals)  # P_e * (N n)^2
    scale = (n_units * p.sizes[0]) ** 2
    observed = (weights @ p.pair_agreement) / n_units * scale  # P-bar * (N n)^2
    return _ratio(observed - chance, scale - chance)


def _alpha_batch(p: Patterns, weights: FloatArray) -> FloatArray:
    """Nominal alpha, 1 - (n - 1)(n - sum o_cc) / (n^2 - sum n_c^2).

    n is the number of pairable values, o_cc the coincidence diagonal, n_c the
    category totals; the denominator is n(n-1) D_e, zero when one category is used.
    """
    n = weights @ p.sizes
    agreeing = weights @ p.coincidences
    totals = weights @ p.counts
    expected = n * n - np.einsum("bk,bk->b", totals, totals)
    return _ratio(expected - (n - 1) * (n - agreeing), expected)


def _ratio(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    """numerator / denominator, NaN where the denominator is 0."""
    out = np.full(numerator.shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def _no_pairs_reason(v: Votes) -> str | None:
    """Why no statistic can be computed, if no item has two values."""
    if v.patterns.n_units:
        return None
    if np.unique(v.raters).size < 2:
        return "fewer than two raters gave a value; agreement needs two"
    return "no item has values from two raters; agreement needs pairs"


def _single_category_reason(v: Votes, what: str) -> str | None:
    """Why a chance-corrected statistic is 0/0 when only one category is used."""
    used = np.flatnonzero(v.patterns.category_totals())
    if used.size > 1:
        return None
    return f"only one category ({v.value_keys[used[0]]!r}) was used; {what}"


def _fleiss_reason(v: Votes) -> str | None:
    """Why Fleiss' kappa is undefined on this table, or None."""
    reason = _no_pairs_reason(v)
    if reason:
        return reason
    sizes = v.patterns.sizes
    if np.any(sizes != sizes[0]):
        return (
            f"items have {int(sizes.min())} to {int(sizes.max())} raters; "
            "Fleiss' kappa needs the same number on every item"
        )
    return _single_category_reason(v, "chance agreement is 1, so Fleiss' kappa is 0/0")


def _alpha_reason(v: Votes) -> str | None:
    """Why Krippendorff's alpha is undefined on this table, or None."""
    return _no_pairs_reason(v) or _single_category_reason(
        v, "expected disagreement D_e is 0, so alpha is 0/0"
    )


@dataclass(frozen=True)
class _Statistic:
    reason: Callable[[Votes], str | None]
    batch: Callable[[Patterns, FloatArray], FloatArray]


_STATISTICS = {
    FLEISS_KAPPA: _Statistic(_fleiss_reason, _fleiss_batch),
    KRIPPENDORFF_ALPHA: _Statistic(_alpha_reason, _alpha_batch),
    PERCENT_AGREEMENT: _Statistic(_no_pairs_reason, _percent_batch),
}


def _statistic(name: str) -> _Statistic:
    try:
        return _STATISTICS[name]
    except KeyError:
        raise ValueError(
            f"unknown statistic {name!r}; expected one of {', '.join(STATISTICS)}"
        ) from None


def _point(v: Votes, name: str) -> Stat:
    """A statistic on the observed data: the batch function with the observed weights."""
    statistic = _statistic(name)
    reason = statistic.reason(v)
    if reason:
        return Stat(None, reason)
    weights = v.patterns.freq.astype(np.float64)[None, :]
    value = float(statistic.batch(v.patterns, weights)[0])
    if not np.isfinite(value):
        return Stat(None, f"{name} is not a finite number on this data")
    return Stat(value)


def fleiss_kappa(v: Votes) -> Stat:
    """Fleiss' kappa over the pairable items (each must have the same number of raters)."""
    return _point(v, FLEISS_KAPPA)


def krippendorff_alpha(v: Votes) -> Stat:
    """Krippendorff's alpha for nominal data; missing values are allowed."""
    return _point(v, KRIPPENDORFF_ALPHA)


def percent_agreement(v: Votes) -> Stat:
    """Mean over pairable items of the share of agreeing rater pairs (Fleiss' P-bar).

    Not chance-corrected, so it is defined even when one category is used (it is
    then a genuine 1).
    """
    return _point(v, PERCENT_AGREEMENT)


def _cohen_batch(confusion: IntArray) -> FloatArray:
    """Cohen's kappa of each K x K confusion matrix (Q x K x K), NaN where p_e = 1.

    Scaled by n^2 so that the undefined case is an exact integer zero.
    """
    n = confusion.sum(axis=(1, 2))
    agreeing = np.trace(confusion, axis1=1, axis2=2)
    chance = np.einsum("qk,qk->q", confusion.sum(axis=2), confusion.sum(axis=1))
    return _ratio(
        (n * agreeing - chance).astype(np.float64), (n * n - chance).astype(np.float64)
    )


def _cohen_stat(confusion: IntArray, kappa: float) -> Stat:
    """A pair's kappa as a Stat, with the reason when it is undefined."""
    if not confusion.any():
        return Stat(None, "no item has a value from both raters")
    if not np.isfinite(kappa):
        return Stat(
            None,
            "both raters gave the same single label to every item; chance agreement "
            "is 1, so Cohen's kappa is 0/0",
        )
    return Stat(kappa)


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> Stat:
    """Cohen's kappa of two aligned label sequences.

    A None in either sequence is a missing label (as in ``encode``) and drops that
    position, so the statistic is over the items both raters labelled.
    """
    if len(a) != len(b):
        raise ValueError(f"label sequences differ in length: {len(a)} and {len(b)}")
    index: dict[Hashable, int] = {}
    pairs = [
        (index.setdefault(x, len(index)), index.setdefault(y, len(index)))
        for x, y in zip(a, b, strict=True)
        if x is not None and y is not None
    ]
    k = max(len(index), 1)
    coded = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    confusion = np.bincount(coded[:, 0] * k + coded[:, 1], minlength=k * k)
    confusion = confusion.astype(np.int64).reshape(1, k, k)
    return _cohen_stat(confusion[0], float(_cohen_batch(confusion)[0]))


def cohen_kappa_codes(a: npt.ArrayLike, b: npt.ArrayLike, n_values: int) -> Stat:
    """``cohen_kappa`` of two aligned arrays of codes 0..n_values-1 (no missing).

    The fast path for coded data: one bincount, no Python loop over the items.
    """
    x = _code_array(a, "a", n_values)
    y = _code_array(b, "b", n_values)
    if x.size != y.size:
        raise ValueError(f"label sequences differ in length: {x.size} and {y.size}")
    k = max(n_values, 1)
    confusion = np.bincount(x * k + y, minlength=k * k).astype(np.int64)
    confusion = confusion.reshape(1, k, k)
    return _cohen_stat(confusion[0], float(_cohen_batch(confusion)[0]))


def pairwise_cohen(v: Votes) -> dict[tuple[Hashable, Hashable], Stat]:
    """Cohen's kappa for every rater pair (a before b by rater index), on shared items.

    Each pair's votes come from one pass over the item-sorted table (a value meets
    the values d places later on the same item, for each d up to the most raters on
    an item), so the work grows with the co-rated pairs, not with items x raters^2.
    """
    r, k = v.n_raters, v.n_values
    pairs, cells = _co_rated(v)
    if _dense(r * r * k * k, pairs.size):
        flat = np.bincount(pairs * (k * k) + cells, minlength=r * r * k * k)
        confusion = flat.astype(np.int64).reshape(r * r, k, k)
        slot = np.arange(r * r).reshape(r, r)
    else:
        pair_codes, inverse = np.unique(pairs, return_inverse=True)
        flat = np.bincount(inverse * (k * k) + cells, minlength=pair_codes.size * k * k)
        confusion = flat.astype(np.int64).reshape(pair_codes.size, k, k)
        slot = np.full((r, r), -1, dtype=np.int64)
        slot.flat[pair_codes] = np.arange(pair_codes.size)
    kappas = _cohen_batch(confusion)
    empty = np.zeros((k, k), dtype=np.int64)
    result: dict[tuple[Hashable, Hashable], Stat] = {}
    for i in range(r):
        for j in range(i + 1, r):
            s = int(slot[i, j])
            pair_confusion = confusion[s] if s >= 0 else empty
            kappa = float(kappas[s]) if s >= 0 else float("nan")
            result[(v.rater_keys[i], v.rater_keys[j])] = _cohen_stat(
                pair_confusion, kappa
            )
    return result


def _co_rated(v: Votes) -> tuple[IntArray, IntArray]:
    """Every pair of votes on one item, as (rater pair a * R + b, cell x * K + y).

    a < b are the raters and x, y their values on the item.
    """
    r, k = v.n_raters, v.n_values
    order = _pair_order(v.items, v.raters, r)
    items, raters, values = v.items[order], v.raters[order], v.values[order]
    pairs: list[IntArray] = [np.zeros(0, dtype=np.int64)]
    cells: list[IntArray] = [np.zeros(0, dtype=np.int64)]
    most = int(v.item_sizes.max()) if v.item_sizes.size else 0
    for d in range(1, most):
        same = np.flatnonzero(items[d:] == items[:-d])
        pairs.append(raters[same] * r + raters[same + d])
        cells.append(values[same] * k + values[same + d])
    return np.concatenate(pairs), np.concatenate(cells)


def _pair_order(items: IntArray, raters: IntArray, n_raters: int) -> IntArray:
    """Order of the rows by (item, rater); a counting sort when the key space is small."""
    keys = items * n_raters + raters
    if keys.size < 2 or bool(np.all(keys[1:] > keys[:-1])):
        return np.arange(keys.size)
    space = int(keys.max()) + 1
    if _dense(space, keys.size):
        position = np.full(space, -1, dtype=np.int64)
        position[keys] = np.arange(keys.size)
        return position[position >= 0]
    return np.argsort(keys, kind="stable").astype(np.int64)


def _check_no_duplicates(
    items: IntArray,
    raters: IntArray,
    item_keys: Sequence[Hashable],
    rater_keys: Sequence[Hashable],
) -> None:
    """Refuse two votes by one rater on one item, naming them."""
    duplicate = _first_duplicate(items, raters, len(rater_keys))
    if duplicate is not None:
        raise ValueError(
            f"duplicate vote for item {item_keys[items[duplicate]]!r} "
            f"by rater {rater_keys[raters[duplicate]]!r}"
        )


def _first_duplicate(items: IntArray, raters: IntArray, n_raters: int) -> int | None:
    """Index of a row whose (item, rater) pair occurs on another row, or None."""
    if items.size < 2:
        return None
    keys = items * n_raters + raters
    space = int(keys.max()) + 1
    if _dense(space, keys.size):
        tally = np.bincount(keys, minlength=space)
        if int(tally.max()) < 2:
            return None
        return int(np.flatnonzero(tally[keys] > 1)[0])
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    repeats = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])
    return int(order[repeats[0] + 1]) if repeats.size else None


def _code_array(column: npt.ArrayLike, name: str, n_codes: int) -> IntArray:
    """A 1-D int64 copy of a code column, checked to index its key tuple."""
    array = np.asarray(column)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if array.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer codes, not {array.dtype}")
    array = array.astype(np.int64)  # a copy, so freezing it cannot freeze the caller's
    low, high = int(array.min()), int(array.max())
    if low < 0 or high >= n_codes:
        raise ValueError(
            f"{name} codes must lie in 0..{n_codes - 1}, found {low}..{high}"
        )
    return array


def _resample_weights(p: Patterns, n_resamples: int, seed: int) -> FloatArray:
    """B x P pattern counts of item resamples with replacement.

    Drawing N items with replacement and counting their patterns is exactly a
    multinomial over the patterns with the observed frequencies.
    """
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(p.n_units, p.freq / p.n_units, size=n_resamples)
    return draws.astype(np.float64)


def _interval(
    values: FloatArray, level: float
) -> tuple[tuple[float, float] | None, str | None]:
    """Percentile interval of the defined resample values, or None and why not."""
    defined = values[np.isfinite(values)]
    undefined = values.size - defined.size
    if undefined * 2 > values.size:
        return None, (
            f"the statistic is undefined on {undefined} of {values.size} resamples"
        )
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(defined, [tail, 1.0 - tail])
    return (float(low), float(high)), None


def summary(v: Votes, *, n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """The agreement report's numbers, JSON-ready.

    ``n_items`` counts pairable items and ``n_raters`` the raters with a value on
    one. Every null number has an entry in ``reason``, keyed by its field
    (``"ci95.fleiss_kappa"`` for an interval); ``reason`` is absent when nothing is
    null. Both intervals come from the same resamples. ``n_resamples=0`` skips them.
    """
    p = v.patterns
    pairable_votes = v.item_sizes[v.items] >= 2
    n_raters = int(
        np.count_nonzero(np.bincount(v.raters[pairable_votes], minlength=v.n_raters))
    )
    points = {name: _point(v, name) for name in STATISTICS}
    reasons: dict[str, str] = {
        name: stat.reason for name, stat in points.items() if stat.reason is not None
    }
    wanted = [name for name in INTERVAL_STATISTICS if points[name].value is not None]
    weights = (
        _resample_weights(p, n_resamples, seed) if wanted and n_resamples else None
    )
    ci95: dict[str, list[float] | None] = {}
    for name in INTERVAL_STATISTICS:
        ci95[name] = None
        why: str | None
        if points[name].value is None:
            why = f"no interval: {points[name].reason}"
        elif weights is None:
            why = "no interval: no resamples were requested"
        else:
            interval, why = _interval(_statistic(name).batch(p, weights), 0.95)
            ci95[name] = list(interval) if interval is not None else None
        if why is not None:
            reasons[f"ci95.{name}"] = why
    result: dict[str, Any] = {
        "n_items": p.n_units,
        "n_raters": n_raters,
        **{name: points[name].value for name in STATISTICS},
        "ci95": ci95,
    }
    if reasons:
        result["reason"] = reasons
    return result
