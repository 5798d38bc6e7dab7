"""Split step: every row of one prompt in one split, in a fixed order; the counts.

The rows, and the topic-following conversations, are assigned by
`annotation.rules.splits` with the export's seed and ratios.
"""

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from annotation.export.pipeline.rows import Row
from annotation.rules.splits import SPLITS, Group, assign


def assign_splits(
    rows: Iterable[Row], *, seed: int, ratios: tuple[float, float, float]
) -> dict[str, list[Row]]:
    """Each split's rows: every row of one prompt in one split, stratified.

    The rows are ordered by their content first, whatever order the database returned
    them in, so the same data and parameters give the same splits and files.
    """
    ordered = sorted(rows, key=_sort_key)
    where = assign(_groups(ordered), seed=seed, ratios=ratios)
    split_rows: dict[str, list[Row]] = {s: [] for s in SPLITS}
    for row in ordered:
        split_rows[where[row.group]].append(row)
    return split_rows


def assign_topic_splits(
    topics: list[dict[str, Any]], *, seed: int, ratios: tuple[float, float, float]
) -> dict[str, list[dict[str, Any]]]:
    """Each split's topic-following conversations, split as the rows are.

    One group per scenario, stratified by domain, with the rows' seed and ratios;
    each split's conversations ordered by their content.
    """
    where = assign(
        [Group(key=t["key"], stratum=t["domain"], rows=1) for t in topics],
        seed=seed,
        ratios=ratios,
    )
    topic_split: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    for topic in sorted(topics, key=lambda t: (t["key"], json.dumps(t["messages"]))):
        topic_split[where[topic["key"]]].append(topic)
    return topic_split


def _sort_key(row: Row) -> tuple[str, ...]:
    """A row's place in its split: by its content, never by database order."""
    v = row.values
    return (
        v["id"],
        v["prompt"],
        v["response"] or "",
        "1" if row.refusal else "0",
        v["prompt_label"],
        v["response_label"] or "",
        v["violated_categories"],
    )


def _groups(rows: Iterable[Row]) -> list[Group]:
    """One split group per prompt; its stratum is (prompt label, response label,
    primary category) of its most telling row: an unsafe original if there is one."""
    members: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        members[row.group].append(row)
    groups = []
    for key, group_rows in members.items():
        # Rows come sorted (see assign_splits), so the first match is the same
        # whatever order the database returned them in.
        originals = [r for r in group_rows if not r.refusal] or group_rows
        lead = next(
            (r for r in originals if r.values["prompt_label"] == "unsafe"),
            originals[0],
        )
        groups.append(
            Group(
                key=key,
                stratum=(
                    lead.values["prompt_label"],
                    lead.values["response_label"] or "",
                    lead.primary,
                ),
                rows=len(group_rows),
                has_refusal=any(r.refusal for r in group_rows),
            )
        )
    return groups


def split_counts(
    split_rows: dict[str, list[Row]], topics: dict[str, int]
) -> dict[str, Any]:
    """What each split holds, for the card, the manifest and the snapshot's row."""
    counts: dict[str, Any] = {}
    for split in SPLITS:
        rows = split_rows[split]
        counts[split] = {
            "rows": len(rows),
            "prompts": len({r.group for r in rows}),
            "prompt_label": dict(
                sorted(Counter(r.values["prompt_label"] for r in rows).items())
            ),
            "response_label": dict(
                sorted(
                    Counter(r.values["response_label"] or "none" for r in rows).items()
                )
            ),
            "refusals": sum(r.refusal for r in rows),
            "provenance": dict(sorted(Counter(r.provenance for r in rows).items())),
            "topic_following": topics.get(split, 0),
        }
    return counts
