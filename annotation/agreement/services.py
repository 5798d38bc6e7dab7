"""A batch's agreement report: who agrees with whom, on what, and how much by chance.

The statistics are pure functions (`annotation.rules.stats`); this module reads a batch's
votes in a few bulk queries into numpy arrays and decides what they are computed on:

- `label`: the human dialogue label, 3-way; `label_binary`: the same after the
  batch's needs-caution policy; `response_label`: human response labels, where the
  batch has any; `imported_label`: raw labels of another scheme brought by an import
  (XSTest's compliance classes), where there are any; `categories`: each category
  of the batch's taxonomy as "chosen / not chosen" over every human vote.
- per annotator: votes, label distribution, time per dialogue, agreement with the
  majority of the *other* annotators, with adjudicated labels and with the jury,
  Cohen's kappa with each other annotator, gold accuracy, and warnings.
- the jury: its judges with each other, and judges and decisions against the human
  majority as confusion matrices.

Gold items are left out of the human statistics: every annotator labels each of
them, more votes than the batch asks for (Fleiss' kappa would be undefined); their
measure is each annotator's accuracy against the known answer (`gold`).

`build_report` returns plain JSON-ready data; `report_for` caches it in
`AgreementReport` until the batch's fingerprint changes, computing small batches in
the request and large ones in Celery (DESIGN section 7: nothing long in a request).
"""

import hashlib
import io
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Max, Q
from django.db.models.fields.json import KT
from django.db.models.functions import ExtractIsoYear, ExtractWeek
from django.utils import timezone

from accounts.models import User
from accounts.ordering import natural_sorted
from annotation import enqueue
from annotation.leases import Heartbeat, holder_name
from annotation.models import (
    AgreementReport,
    Batch,
    Dialogue,
    GoldItem,
    JobStatus,
    JuryDecision,
    Label,
    LabelCategory,
    LabelEdit,
    VoteKind,
)
from annotation.review.gold.services import gold_accuracy
from annotation.rules import stats
from annotation.rules.labels import BINARY, JURY_DECISIONS, LABELS, binary
from taxonomy.models import Category

REPORT_VERSION = 1
# Values are coded by their place in LABELS, BINARY or JURY_DECISIONS.
MISSING = -1
# A queued report that no worker took within this long is queued again (the task
# was lost before a worker had it); one a worker took holds a lease, and the reaper
# (annotation.leases) queues it again when that worker is lost.
STALE_REQUEST = timedelta(minutes=15)


def fast_label_ms() -> int:
    """A vote faster than this is flagged (reading a dialogue takes longer)."""
    return int(getattr(settings, "AGREEMENT_FAST_LABEL_MS", 3000))


def low_kappa() -> float:
    """An annotator whose kappa with the others' majority is under this is flagged."""
    return float(getattr(settings, "AGREEMENT_LOW_KAPPA", 0.4))


def fast_share() -> float:
    """The share of fast votes from which an annotator is flagged."""
    return float(getattr(settings, "AGREEMENT_FAST_SHARE", 0.1))


def sync_max_votes() -> int:
    """Batches with more votes than this get their report from Celery."""
    return int(getattr(settings, "AGREEMENT_SYNC_MAX_VOTES", 20_000))


# --- reading the votes -----------------------------------------------------------


@dataclass
class HumanVotes:
    """The batch's human votes as parallel arrays, one entry per vote."""

    label_ids: np.ndarray
    dialogues: np.ndarray  # dialogue primary keys
    raters: np.ndarray  # annotator primary keys
    label: np.ndarray  # LABELS code, MISSING when empty
    response: np.ndarray  # LABELS code, MISSING when the vote has none
    time_ms: np.ndarray  # MISSING when unknown
    imported: list[str | None]  # details["imported_label"], if any
    week: np.ndarray  # ISO year * 100 + ISO week of the vote


def _code(values: Sequence[str | None], keys: Sequence[str]) -> np.ndarray:
    index = {key: i for i, key in enumerate(keys)}
    return np.fromiter(
        (index.get(v, MISSING) if v is not None else MISSING for v in values),
        dtype=np.int64,
        count=len(values),
    )


def _frame(
    queryset: Any, columns: Sequence[str], text: Sequence[str] = ()
) -> pd.DataFrame:
    """A values_list queryset's rows as a DataFrame, NULL as NaN.

    A batch has hundreds of thousands of votes: on PostgreSQL they come as one COPY
    in CSV, parsed in C by pandas (several times faster than a cursor, which builds
    a Python object per cell and then Django converts each row); elsewhere
    (SQLite) from a plain cursor. The columns need no conversion: `text` names the
    text ones, the others are integers (read as floats, NaN for NULL).
    """
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            raw = cursor.cursor  # psycopg's own cursor
            with raw.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)", params) as copy:
                data = b"".join(bytes(block) for block in copy)
            if not data:
                return pd.DataFrame(columns=list(columns))
            return pd.read_csv(
                io.BytesIO(data),
                header=None,
                names=list(columns),
                dtype={c: (object if c in text else np.float64) for c in columns},
                # Only an empty field is NULL: "NA" or "null" are labels like any.
                keep_default_na=False,
                na_values=[""],
            )
        cursor.execute(sql, params)
        return pd.DataFrame(cursor.fetchall(), columns=list(columns))


def _ints(column: pd.Series) -> np.ndarray:
    """An integer column, NULL as MISSING."""
    return column.fillna(MISSING).to_numpy(dtype=np.int64)


def _codes(column: pd.Series, keys: Sequence[str]) -> np.ndarray:
    """A text column as codes of `keys`, NULL or unknown as MISSING."""
    index = {key: i for i, key in enumerate(keys)}
    return column.map(index).fillna(MISSING).to_numpy(dtype=np.int64)


def read_human_votes(batch: Batch) -> HumanVotes:
    columns = (
        "id",
        "dialogue_id",
        "annotator_id",
        "label",
        "response_label",
        "time_spent_ms",
        "imported",
        "iso_year",
        "iso_week",
    )
    frame = _frame(
        Label.objects.filter(
            dialogue__batch=batch, dialogue__is_gold=False, kind=VoteKind.HUMAN
        )
        .order_by()
        .annotate(
            imported=KT("details__imported_label"),
            iso_year=ExtractIsoYear("created_at"),
            iso_week=ExtractWeek("created_at"),
        )
        .values_list(*columns),
        columns,
        text=("label", "response_label", "imported"),
    )
    imported = frame["imported"]
    return HumanVotes(
        label_ids=_ints(frame["id"]),
        dialogues=_ints(frame["dialogue_id"]),
        raters=_ints(frame["annotator_id"]),
        label=_codes(frame["label"], LABELS),
        response=_codes(frame["response_label"], LABELS),
        time_ms=_ints(frame["time_spent_ms"]),
        imported=[
            None if v is None else str(v)
            for v in imported.astype(object).where(imported.notna(), None)
        ],
        week=_ints(frame["iso_year"]) * 100 + _ints(frame["iso_week"]),
    )


def read_categories(batch: Batch) -> tuple[np.ndarray, np.ndarray]:
    """(label id, category id) of every category chosen in a human vote."""
    columns = ("label_id", "category_id")
    frame = _frame(
        LabelCategory.objects.filter(
            label__dialogue__batch=batch,
            label__dialogue__is_gold=False,
            label__kind=VoteKind.HUMAN,
        )
        .order_by()
        .values_list(*columns),
        columns,
    )
    return _ints(frame["label_id"]), _ints(frame["category_id"])


@dataclass
class JuryVotes:
    """Each judge's latest valid vote per dialogue, as parallel arrays."""

    dialogues: np.ndarray
    judges: np.ndarray  # index into names
    labels: np.ndarray  # BINARY code
    names: list[str]


def read_jury_votes(batch: Batch) -> JuryVotes:
    columns = ("id", "dialogue_id", "judge", "label")
    frame = _frame(
        Label.objects.filter(
            dialogue__batch=batch, kind=VoteKind.MODEL, valid=True, label__in=BINARY
        )
        .order_by()
        .values_list(*columns),
        columns,
        text=("judge", "label"),
    )
    if frame.empty:
        empty = np.zeros(0, dtype=np.int64)
        return JuryVotes(empty, empty, empty, [])
    judges = frame["judge"].astype(str)
    names = sorted(judges.unique().tolist())
    pk = _ints(frame["id"])
    dialogue = _ints(frame["dialogue_id"])
    judge = _codes(judges, names)
    label = _codes(frame["label"], BINARY)
    # A judge may have voted in several runs: keep its latest vote per dialogue.
    key = dialogue * len(names) + judge
    order = np.lexsort((pk, key))
    last = np.ones(order.size, dtype=bool)
    last[:-1] = key[order][1:] != key[order][:-1]
    keep = order[last]
    return JuryVotes(dialogue[keep], judge[keep], label[keep], names)


def read_jury_decisions(batch: Batch) -> dict[int, str]:
    """The latest jury decision per dialogue."""
    decisions: dict[int, tuple[int, str]] = {}
    for pk, dialogue, decision in (
        JuryDecision.objects.filter(dialogue__batch=batch)
        .order_by()
        .values_list("id", "dialogue_id", "decision")
    ):
        if dialogue not in decisions or decisions[dialogue][0] < pk:
            decisions[dialogue] = (pk, decision)
    return {d: decision for d, (_, decision) in decisions.items()}


def read_adjudications(batch: Batch) -> dict[int, str]:
    rows = (
        Label.objects.filter(dialogue__batch=batch, kind=VoteKind.ADJUDICATED)
        .order_by()
        .values_list("dialogue_id", "label")
    )
    return {dialogue: label for dialogue, label in rows if label is not None}


# --- helpers over arrays -----------------------------------------------------------


def _votes(
    items: np.ndarray,
    raters: np.ndarray,
    values: np.ndarray,
    keys: Sequence[Any],
    n_items: int,
    rater_keys: Sequence[Any],
) -> stats.Votes:
    """Votes of the rows whose value is not MISSING; raters keyed by primary key."""
    keep = values != MISSING
    return stats.from_arrays(
        items[keep],
        raters[keep],
        values[keep],
        item_keys=range(n_items),
        rater_keys=tuple(rater_keys),
        value_keys=tuple(keys),
    )


def _summary(votes: stats.Votes, resamples: int, seed: int) -> dict[str, Any]:
    return stats.summary(votes, n_resamples=resamples, seed=seed)


def _binary_lookup(policy: str) -> np.ndarray:
    """The BINARY code of each LABELS code under the needs-caution policy."""
    return np.array([BINARY.index(binary(v, policy)) for v in LABELS], dtype=np.int64)


def _binary(codes: np.ndarray, policy: str) -> np.ndarray:
    """3-way codes as 0 safe / 1 unsafe under the needs-caution policy."""
    lookup = _binary_lookup(policy)
    out = np.full(codes.shape, MISSING, dtype=np.int64)
    known = codes != MISSING
    out[known] = lookup[codes[known]]
    return out


def _dense(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted unique keys, the index of each key in them)."""
    unique, index = np.unique(keys, return_inverse=True)
    return unique, index.astype(np.int64)


def _counts(items: np.ndarray, values: np.ndarray, n_items: int, k: int) -> np.ndarray:
    keep = values != MISSING
    flat = items[keep] * k + values[keep]
    return np.bincount(flat, minlength=n_items * k).reshape(n_items, k)


def _per_dialogue(
    dialogue_keys: np.ndarray, values: dict[int, str], keys: Sequence[str]
) -> np.ndarray:
    """A value per dialogue of `dialogue_keys` (sorted) as codes, MISSING elsewhere."""
    out = np.full(len(dialogue_keys), MISSING, dtype=np.int64)
    if not values or not len(dialogue_keys):
        return out
    ids = np.fromiter(values.keys(), dtype=np.int64, count=len(values))
    codes = _code(list(values.values()), keys)
    position = np.minimum(np.searchsorted(dialogue_keys, ids), len(dialogue_keys) - 1)
    found = dialogue_keys[position] == ids
    out[position[found]] = codes[found]
    return out


def _plurality(counts: np.ndarray) -> np.ndarray:
    """Each row's value with the most votes; MISSING when tied or empty."""
    if counts.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    top = counts.max(axis=1)
    winner = counts.argmax(axis=1).astype(np.int64)
    unique = (counts == top[:, None]).sum(axis=1) == 1
    return np.where(unique & (top > 0), winner, MISSING)


def human_majority_codes(counts: np.ndarray, policy: str) -> np.ndarray:
    """`derivation.human_majority` for every row of a (dialogues x 3) count matrix:
    0 safe, 1 unsafe, MISSING for a tie or no vote."""
    n = counts.sum(axis=1)
    top = counts.max(axis=1) if counts.shape[0] else np.zeros(0, dtype=np.int64)
    winner = counts.argmax(axis=1) if counts.shape[0] else top
    majority3 = top * 2 > n
    lookup = _binary_lookup(policy)
    mapped3 = lookup[winner]
    # Each binary label's votes: those of the 3-way labels the policy maps to it.
    safe = counts[:, lookup == 0].sum(axis=1)
    unsafe = counts[:, lookup == 1].sum(axis=1)
    by_votes = np.where(unsafe > safe, 1, np.where(safe > unsafe, 0, MISSING))
    out = np.where(majority3, mapped3, by_votes)
    return np.where(n > 0, out, MISSING).astype(np.int64)


def _agreement(a: np.ndarray, b: np.ndarray, keys: Sequence[str]) -> dict[str, Any]:
    """How often two aligned code arrays agree, and Cohen's kappa between them."""
    keep = (a != MISSING) & (b != MISSING)
    a, b = a[keep], b[keep]
    if a.size == 0:
        return {
            "n": 0,
            "agreement": None,
            "cohen_kappa": None,
            "reason": "no item in common",
        }
    kappa = stats.cohen_kappa_codes(a, b, len(keys))
    out: dict[str, Any] = {
        "n": int(a.size),
        "agreement": float(np.mean(a == b)),
        "cohen_kappa": kappa.value,
    }
    if kappa.value is None:
        out["reason"] = kappa.reason
    return out


def _confusion(
    rows: np.ndarray, cols: np.ndarray, row_keys: Sequence[str], col_keys: Sequence[str]
) -> dict[str, dict[str, int]]:
    keep = (rows != MISSING) & (cols != MISSING)
    flat = rows[keep] * len(col_keys) + cols[keep]
    matrix = np.bincount(flat, minlength=len(row_keys) * len(col_keys)).reshape(
        len(row_keys), len(col_keys)
    )
    return {
        r: {c: int(matrix[i, j]) for j, c in enumerate(col_keys)}
        for i, r in enumerate(row_keys)
    }


def _quartiles(values: np.ndarray) -> dict[str, float] | None:
    if values.size == 0:
        return None
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return {
        "p25": float(q1),
        "median": float(median),
        "p75": float(q3),
        "min": float(values.min()),
        "max": float(values.max()),
    }


# --- the report ----------------------------------------------------------------


@dataclass
class _Context:
    """What every step of the report works on: the human votes, each vote's dialogue
    and annotator as dense indexes, and the annotators' names."""

    batch: Batch
    policy: str
    human: HumanVotes
    dialogue_keys: np.ndarray  # sorted dialogue primary keys
    items: np.ndarray  # each vote's index into dialogue_keys
    raters: np.ndarray  # each vote's index into rater_pks
    rater_pks: list[int]
    usernames: dict[int, str]
    names: list[str]  # the username of each of rater_pks
    n_resamples: int
    seed: int

    @property
    def n_items(self) -> int:
        return len(self.dialogue_keys)

    def summarise(self, values: np.ndarray, keys: Sequence[Any]) -> dict[str, Any]:
        """`stats.summary` of one value per vote (MISSING left out)."""
        votes = _votes(
            self.items, self.raters, values, keys, self.n_items, self.rater_pks
        )
        return _summary(votes, self.n_resamples, self.seed)


@dataclass
class _References:
    """What each vote is compared with: the others' majority, the adjudications and
    the jury's decisions, per dialogue (index of dialogue_keys) or per vote."""

    majority: np.ndarray  # human majority per dialogue, binary (0/1/MISSING)
    others_majority: np.ndarray  # per vote: plurality of the other votes, 3-way
    adjudicated: dict[int, str]
    adjudicated_codes: np.ndarray  # per dialogue, LABELS code
    decisions: dict[int, str]
    decision_codes: np.ndarray  # per dialogue, JURY_DECISIONS code
    own_binary: np.ndarray  # per vote: the response label, else the label, binary
    jury_binary: np.ndarray  # per dialogue: the jury's decision, binary


def build_report(
    batch: Batch, *, n_resamples: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """The whole agreement report of a batch as JSON-ready data."""
    ctx = _read(batch, n_resamples=n_resamples, seed=seed)
    report: dict[str, Any] = {
        "batch": batch.name,
        "version": REPORT_VERSION,
        "needs_caution_policy": ctx.policy,
        "n_dialogues": batch.dialogues.count(),
        "n_votes": int(ctx.human.label.size),
        **_label_summaries(ctx),
        "categories": _category_summaries(ctx),
    }
    references = _references(ctx)
    pairwise = stats.pairwise_cohen(
        _votes(
            ctx.items, ctx.raters, ctx.human.label, LABELS, ctx.n_items, ctx.rater_pks
        )
    )
    fast_ms = fast_label_ms()
    annotators = _annotator_rows(ctx, references, pairwise, fast_ms)
    report["annotators"] = annotators
    report["pairwise"] = _pair_rows(pairwise, ctx.usernames)
    if report["imported_label"] is not None:
        report["imported_pairwise"] = _imported_pairwise(ctx.human, ctx.usernames)
    report["warnings"] = _warnings(annotators, fast_ms)
    report["over_time"] = _over_time(
        ctx.dialogue_keys, ctx.human, ctx.items, ctx.raters, n_resamples, seed
    )
    report["jury"] = _jury(
        batch,
        ctx.dialogue_keys,
        references.majority,
        references.decision_codes,
        n_resamples,
        seed,
    )
    report["settings"] = {
        "fast_label_ms": fast_ms,
        "fast_share": fast_share(),
        "low_kappa": low_kappa(),
        "n_resamples": n_resamples,
        "seed": seed,
    }
    return report


def _read(batch: Batch, *, n_resamples: int, seed: int) -> _Context:
    """The batch's human votes, indexed densely, and its annotators' names."""
    human = read_human_votes(batch)
    dialogue_keys, items = _dense(human.dialogues)
    rater_keys, raters = _dense(human.raters)
    usernames = dict(
        User.objects.filter(pk__in=rater_keys.tolist()).values_list("pk", "username")
    )
    return _Context(
        batch=batch,
        policy=batch.needs_caution_policy,
        human=human,
        dialogue_keys=dialogue_keys,
        items=items,
        raters=raters,
        rater_pks=[int(pk) for pk in rater_keys],
        usernames=usernames,
        names=[usernames.get(int(pk), str(pk)) for pk in rater_keys],
        n_resamples=n_resamples,
        seed=seed,
    )


def _label_summaries(ctx: _Context) -> dict[str, Any]:
    """The dialogue label (3-way and binary), and the response and imported labels
    where the batch has any (else None)."""
    human = ctx.human
    out: dict[str, Any] = {
        "label": ctx.summarise(human.label, LABELS),
        "label_binary": ctx.summarise(_binary(human.label, ctx.policy), BINARY),
        "response_label": None,
        "imported_label": None,
    }
    if (human.response != MISSING).any():
        out["response_label"] = ctx.summarise(human.response, LABELS)
    if any(v is not None for v in human.imported):
        imported_keys = sorted({v for v in human.imported if v is not None})
        out["imported_label"] = ctx.summarise(
            _code(human.imported, imported_keys), imported_keys
        )
    return out


def _category_summaries(ctx: _Context) -> dict[str, Any]:
    """Each category of the batch's taxonomy (retired ones only if chosen) as chosen
    (1) or not (0) in every human vote, in the taxonomy's order."""
    label_ids, category_ids = read_categories(ctx.batch)
    vote_position = {int(pk): i for i, pk in enumerate(ctx.human.label_ids)}
    categories = list(
        Category.objects.filter(taxonomy_id=ctx.batch.taxonomy_id)
        .filter(Q(retired=False) | Q(pk__in=set(category_ids.tolist())))
        .order_by("order")
        .values_list("pk", "name")
    )
    positions = np.fromiter(
        (vote_position[int(pk)] for pk in label_ids),
        dtype=np.int64,
        count=len(label_ids),
    )
    out: dict[str, Any] = {}
    for category_pk, name in categories:
        chosen = np.zeros(ctx.human.label.size, dtype=np.int64)
        chosen[positions[category_ids == category_pk]] = 1
        summary = ctx.summarise(chosen, ("not chosen", "chosen"))
        if "reason" in summary and chosen.size and chosen.min() == chosen.max():
            # One value everywhere: say so in the words of the category.
            plain = "every vote chose it" if chosen[0] else "no vote chose it"
            summary["reason"] = {key: plain for key in summary["reason"]}
        out[name] = summary
    return out


def _references(ctx: _Context) -> _References:
    """The majority per dialogue, of everyone and of everyone but each voter; the
    adjudications and the jury's decisions per dialogue."""
    human, items, policy = ctx.human, ctx.items, ctx.policy
    label_counts = _counts(items, human.label, ctx.n_items, 3)
    others = (
        label_counts[items]
        - np.eye(3, dtype=np.int64)[np.where(human.label == MISSING, 0, human.label)]
        * (human.label != MISSING)[:, None]
    )
    adjudicated = read_adjudications(ctx.batch)
    decisions = read_jury_decisions(ctx.batch)
    decision_codes = _per_dialogue(ctx.dialogue_keys, decisions, JURY_DECISIONS)
    return _References(
        majority=human_majority_codes(label_counts, policy),
        others_majority=_plurality(others),
        adjudicated=adjudicated,
        adjudicated_codes=_per_dialogue(ctx.dialogue_keys, adjudicated, LABELS),
        decisions=decisions,
        decision_codes=decision_codes,
        # The jury judges the response: compare with the annotator's response
        # label where there is one, else with the dialogue label (binary).
        own_binary=np.where(
            human.response != MISSING,
            _binary(human.response, policy),
            _binary(human.label, policy),
        ),
        jury_binary=np.where(decision_codes == 2, MISSING, decision_codes),
    )


def _annotator_rows(
    ctx: _Context,
    references: _References,
    pairwise: dict[tuple[Hashable, Hashable], stats.Stat],
    fast_ms: int,
) -> dict[str, Any]:
    """Per annotator, in the order of their primary keys: votes, labels, times, and
    agreement with each reference; then those who labelled only gold items."""
    gold = gold_accuracy_by_user(ctx.batch)
    annotators: dict[str, Any] = {}
    for index, name in enumerate(ctx.names):
        mine = ctx.raters == index
        times = ctx.human.time_ms[mine]
        times = times[times != MISSING]
        labels = ctx.human.label[mine]
        items = ctx.items[mine]
        fast = int((times < fast_ms).sum())
        me = ctx.rater_pks[index]
        kappas = {}
        for (a, b), stat in pairwise.items():
            if me in (a, b):
                kappas[_name(ctx.usernames, b if a == me else a)] = stat.value
        annotators[name] = {
            "n_votes": int(mine.sum()),
            "label_distribution": {
                key: int((labels == i).sum()) for i, key in enumerate(LABELS)
            },
            "time_ms": _quartiles(times),
            "fast_votes": fast,
            "fast_share": fast / times.size if times.size else None,
            "vs_majority": _agreement(labels, references.others_majority[mine], LABELS),
            "vs_adjudicated": _agreement(
                labels, references.adjudicated_codes[items], LABELS
            )
            if references.adjudicated
            else None,
            "vs_jury": _agreement(
                references.own_binary[mine], references.jury_binary[items], BINARY
            )
            if references.decisions
            else None,
            "cohen_kappa": kappas,
            "gold": gold.get(name),
            "warnings": [],
        }
    # Someone who labelled only gold items has no agreement to show, but their gold
    # accuracy is still theirs to see.
    for name in natural_sorted(set(gold) - set(annotators)):
        annotators[name] = _gold_only_row(gold[name], ctx.human.label.dtype)
    return annotators


def _gold_only_row(gold: Any, dtype: np.dtype) -> dict[str, Any]:
    """The row of an annotator with no vote outside the gold items."""
    empty = np.zeros(0, dtype=dtype)
    return {
        "n_votes": 0,
        "label_distribution": dict.fromkeys(LABELS, 0),
        "time_ms": None,
        "fast_votes": 0,
        "fast_share": None,
        "vs_majority": _agreement(empty, empty, LABELS),
        "vs_adjudicated": None,
        "vs_jury": None,
        "cohen_kappa": {},
        "gold": gold,
        "warnings": [],
    }


def _pair_rows(
    pairwise: dict[tuple[Hashable, Hashable], stats.Stat],
    usernames: dict[int, str] | None = None,
) -> list[dict[str, Any]]:
    """Cohen's kappa of each pair of raters, with the reason when undefined; raters
    keyed by primary key are named from `usernames`, others (judges) are names."""

    def name(key: Hashable) -> Any:
        return key if usernames is None else _name(usernames, key)

    return [
        {
            "a": name(a),
            "b": name(b),
            "cohen_kappa": stat.value,
            **({"reason": stat.reason} if stat.value is None else {}),
        }
        for (a, b), stat in pairwise.items()
    ]


def _name(usernames: dict[int, str], key: Any) -> str:
    return usernames.get(int(key), str(key))


def _imported_pairwise(
    human: HumanVotes, usernames: dict[int, str]
) -> list[dict[str, Any]]:
    """Cohen's kappa between raters on the imported labels (e.g. XSTest's classes)."""
    keep = [i for i, v in enumerate(human.imported) if v is not None]
    rows = [
        (int(human.dialogues[i]), int(human.raters[i]), human.imported[i]) for i in keep
    ]
    return _pair_rows(stats.pairwise_cohen(stats.encode(rows)), usernames)


def _warnings(annotators: dict[str, Any], fast_ms: int) -> list[dict[str, str]]:
    """Fast labelling and annotators far from the others, also noted per annotator."""
    found = []
    kappas = [
        a["vs_majority"]["cohen_kappa"]
        for a in annotators.values()
        if a["vs_majority"]["cohen_kappa"] is not None
    ]
    median = float(np.median(kappas)) if kappas else None
    threshold, share = low_kappa(), fast_share()
    for name, a in annotators.items():
        if a["fast_share"] is not None and a["fast_share"] >= share:
            text = (
                f"{a['fast_votes']} of {a['n_votes']} votes took under "
                f"{fast_ms / 1000:g} s"
            )
            a["warnings"].append(text)
            found.append({"annotator": name, "kind": "fast", "detail": text})
        kappa = a["vs_majority"]["cohen_kappa"]
        if kappa is not None and (
            kappa < threshold or (median is not None and kappa < median - 0.2)
        ):
            text = f"kappa {kappa:.2f} with the others' majority" + (
                f" (median {median:.2f})" if median is not None else ""
            )
            a["warnings"].append(text)
            found.append({"annotator": name, "kind": "low_kappa", "detail": text})
    return found


def _over_time(
    dialogue_keys: np.ndarray,
    human: HumanVotes,
    items: np.ndarray,
    raters: np.ndarray,
    n_resamples: int,
    seed: int,
) -> list[dict[str, Any]]:
    """Agreement per ISO week, each dialogue in the week of its last human vote."""
    if items.size == 0:
        return []
    last = np.full(len(dialogue_keys), -1, dtype=np.int64)
    np.maximum.at(last, items, human.week)
    week_codes, week_of_item = np.unique(last, return_inverse=True)
    vote_week = week_of_item[items]
    labelled = human.label != MISSING
    out = []
    for i, code in enumerate(week_codes.tolist()):
        in_week = vote_week == i
        keep = in_week & labelled
        votes = stats.from_arrays(
            items[keep],
            raters[keep],
            human.label[keep],
            item_keys=range(len(dialogue_keys)),
            rater_keys=range(int(raters.max()) + 1),
            value_keys=LABELS,
        )
        summary = stats.summary(votes, n_resamples=n_resamples, seed=seed)
        week = f"{code // 100}-W{code % 100:02d}"
        out.append({"week": week, "n_votes": int(in_week.sum()), **summary})
    return out


def _jury(
    batch: Batch,
    dialogue_keys: np.ndarray,
    majority: np.ndarray,
    decision_codes: np.ndarray,
    n_resamples: int,
    seed: int,
) -> dict[str, Any] | None:
    """The judges with each other, and judges and decisions against the humans."""
    jury = read_jury_votes(batch)
    if jury.dialogues.size == 0:
        return None
    jury_keys, jury_items = _dense(jury.dialogues)
    encoded = stats.from_arrays(
        jury_items,
        jury.judges,
        jury.labels,
        item_keys=range(len(jury_keys)),
        rater_keys=tuple(jury.names),
        value_keys=BINARY,
    )
    # The human majority of each judged dialogue (MISSING where humans did not vote).
    position = np.searchsorted(dialogue_keys, jury.dialogues)
    clipped = np.minimum(position, max(len(dialogue_keys) - 1, 0))
    found = (position < len(dialogue_keys)) & (
        dialogue_keys[clipped] == jury.dialogues if len(dialogue_keys) else False
    )
    human = np.where(found, majority[clipped] if len(majority) else MISSING, MISSING)
    per_judge = {}
    for code, judge in enumerate(jury.names):
        mine = jury.judges == code
        h, v = human[mine], jury.labels[mine]
        per_judge[judge] = {
            "n_votes": int(mine.sum()),
            "vs_human": _agreement(v, h, BINARY),
            "confusion": _confusion(h, v, BINARY, BINARY),
        }
    judges = jury.names
    decided = decision_codes != MISSING
    return {
        "judges": judges,
        "label": stats.summary(encoded, n_resamples=n_resamples, seed=seed),
        "pairwise": _pair_rows(stats.pairwise_cohen(encoded)),
        "per_judge": per_judge,
        "decisions": {
            "n": int(decided.sum()),
            "confusion": _confusion(majority, decision_codes, BINARY, JURY_DECISIONS),
            "vs_human": _agreement(
                np.where(decision_codes == 2, MISSING, decision_codes),
                majority,
                BINARY,
            ),
        },
    }


def gold_accuracy_by_user(batch: Batch) -> dict[str, Any]:
    """Per-annotator accuracy on the batch's gold items (annotation.review.gold.services)."""
    return dict(gold_accuracy(batch))


# --- caching and Celery ----------------------------------------------------------


def fingerprint(batch: Batch) -> str:
    """What the report depends on, summed up: it changes whenever a vote, an edit,
    a decision, a dialogue, a gold item or the batch's policy changes."""
    labels = Label.objects.filter(dialogue__batch=batch).aggregate(
        n=Count("id"), last_id=Max("id"), last_update=Max("updated_at")
    )
    parts: list[Any] = [
        REPORT_VERSION,
        str(batch.needs_caution_policy),
        batch.taxonomy_id,
        labels["n"],
        labels["last_id"],
        labels["last_update"],
        LabelEdit.objects.filter(label__dialogue__batch=batch).aggregate(m=Max("id"))[
            "m"
        ],
        JuryDecision.objects.filter(dialogue__batch=batch).aggregate(
            n=Count("id"), m=Max("decided_at")
        ),
        Dialogue.objects.filter(batch=batch).aggregate(
            n=Count("id"), m=Max("id"), a=Max("adjudicated_at")
        ),
        _gold_fingerprint(batch),
    ]
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def _gold_fingerprint(batch: Batch) -> Any:
    """Which dialogues are gold, and when their answers last changed."""
    return GoldItem.objects.filter(dialogue__batch=batch).aggregate(
        n=Count("id"), m=Max("id"), u=Max("updated_at")
    )


def compute(batch: Batch) -> AgreementReport:
    """Compute the report now and store it with the fingerprint it was computed at."""
    mark = fingerprint(batch)
    started = timezone.now()
    data = build_report(batch)
    data["computed_at"] = timezone.now().isoformat()
    elapsed = timezone.now() - started
    report, _ = AgreementReport.objects.update_or_create(
        batch=batch,
        defaults={
            "fingerprint": mark,
            "status": JobStatus.SUCCEEDED,
            "data": data,
            "error": "",
            "computed_at": timezone.now(),
            "duration_ms": int(elapsed.total_seconds() * 1000),
            "lease_expires_at": None,
        },
    )
    return report


def report_for(
    batch: Batch, *, force_async: bool = False, force_sync: bool = False
) -> AgreementReport:
    """The batch's report: cached when current; computed here when the batch is small;
    else queued in Celery (status pending or running until the worker is done)."""
    mark = fingerprint(batch)
    cached = AgreementReport.objects.filter(batch=batch).first()
    if (
        cached is not None
        and cached.status == JobStatus.SUCCEEDED
        and cached.fingerprint == mark
    ):
        return cached
    if force_sync:
        return compute(batch)
    if cached is not None and _in_flight(cached):
        return cached
    votes = Label.objects.filter(dialogue__batch=batch).count()
    if not force_async and votes <= sync_max_votes():
        return compute(batch)
    return schedule(batch)


def schedule(batch: Batch) -> AgreementReport:
    """Queue the report in Celery (once: a pending or running one is reused)."""
    with transaction.atomic():
        report, _ = AgreementReport.objects.select_for_update().get_or_create(
            batch=batch
        )
        if _in_flight(report):
            return report
        report.status = JobStatus.PENDING
        report.requested_at = timezone.now()
        report.error = ""
        report.task_id = ""
        report.attempts, report.lease_expires_at = 0, None  # a new request
        report.save()
        enqueue.later(
            "annotation.compute_agreement",
            batch.pk,
            then=lambda sent: AgreementReport.objects.filter(pk=report.pk).update(
                task_id=sent.id
            ),
        )
    return report


def _in_flight(report: AgreementReport) -> bool:
    """Queued or being computed, so not to be queued again: a worker holds its
    lease, or it was asked for recently (a reaper re-queue drops the lease and
    leaves `requested_at`: the reaper, not the next request, sees to it)."""
    if report.status not in (JobStatus.PENDING, JobStatus.RUNNING):
        return False
    if report.lease_live():
        return True
    asked = report.requested_at
    return asked is not None and timezone.now() - asked < STALE_REQUEST


def run_scheduled(batch_id: int, *, holder: str = "") -> str:
    """The Celery task's body: compute under a lease, or record the failure.

    Takes the lease on the report's row while it computes (a heartbeat renews it);
    a task delivered again finds the report current ("current") or leased by the
    worker a reaper re-queued it to ("leased") and computes nothing."""
    holder = holder or holder_name()
    batch = Batch.objects.get(pk=batch_id)
    report = _take_lease(batch, holder)
    if isinstance(report, str):
        return report
    try:
        with Heartbeat(AgreementReport, report.pk, holder):
            compute(batch)
    except Exception as error:
        AgreementReport.objects.filter(pk=report.pk).update(
            status=JobStatus.FAILED,
            error=f"{type(error).__name__}: {error}",
            lease_expires_at=None,
        )
        raise
    return "done"


def _take_lease(batch: Batch, holder: str) -> AgreementReport | str:
    """The report row, leased to `holder` and running; or why there is no work."""
    with transaction.atomic():
        report, _ = AgreementReport.objects.select_for_update().get_or_create(
            batch=batch
        )
        if report.status == JobStatus.SUCCEEDED and report.fingerprint == fingerprint(
            batch
        ):
            return "current"
        if report.lease_live() and report.lease_holder != holder[:255]:
            return "leased"
        fields = {"status": JobStatus.RUNNING, "error": ""}
        fields |= AgreementReport.lease_fields(holder, attempts=report.attempts)
        for name, value in fields.items():
            setattr(report, name, value)
        report.save(update_fields=list(fields))
    return report
