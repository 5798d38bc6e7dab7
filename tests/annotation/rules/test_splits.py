"""Split assignment (annotation.rules.splits): grouped, stratified, seeded."""

from collections import Counter

import pytest

from annotation.rules.splits import BadRatios, Group, assign, parse_ratios


def _groups(n: int, *, refusal_every: int = 0) -> list[Group]:
    strata = [("unsafe", "Violence"), ("unsafe", "Malware"), ("safe", "")]
    return [
        Group(
            key=f"g{i}",
            stratum=strata[i % 3],
            rows=1 + (i % 4 == 0),
            has_refusal=bool(refusal_every) and i % refusal_every == 0,
        )
        for i in range(n)
    ]


def test_parse_ratios_reads_text_and_sequences():
    assert parse_ratios("0.8,0.1,0.1") == (0.8, 0.1, 0.1)
    assert parse_ratios(" 0.7 , 0.2, 0.1 ") == (0.7, 0.2, 0.1)
    assert parse_ratios([0.9, 0.1, 0]) == (0.9, 0.1, 0.0)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("0.8,0.1", "three shares"),
        ("0.8,0.1,0.2", "add up to 1"),
        ("a,b,c", "three numbers"),
        ("1.2,-0.1,-0.1", "cannot be negative"),
        ("0,0.5,0.5", "train share"),
    ],
)
def test_parse_ratios_names_what_is_wrong(text, says):
    with pytest.raises(BadRatios, match=says):
        parse_ratios(text)


def test_assign_is_deterministic_and_order_free():
    # given the same groups in two orders
    groups = _groups(500)
    # when assigned with the same seed
    first = assign(groups, seed=3)
    second = assign(list(reversed(groups)), seed=3)
    # then the assignment is the same, and another seed gives another one
    assert first == second
    assert assign(groups, seed=4) != first


def test_assign_keeps_each_stratum_near_the_ratios():
    # given 3,000 groups in three strata
    groups = _groups(3000)
    # when split 80/10/10
    where = assign(groups, seed=1)
    # then every stratum's rows are within one group of each share
    for stratum in {g.stratum for g in groups}:
        members = [g for g in groups if g.stratum == stratum]
        rows = Counter()
        for g in members:
            rows[where[g.key]] += g.rows
        total = sum(rows.values())
        for split, share in (("train", 0.8), ("validation", 0.1), ("test", 0.1)):
            assert abs(rows[split] - share * total) <= 2, (stratum, split, rows)


def test_small_strata_do_not_all_round_into_train():
    # given 300 strata of one single-row group each
    groups = [
        Group(key=f"g{i}", stratum=("unsafe", f"c{i}"), rows=1) for i in range(300)
    ]
    # when split
    counts = Counter(assign(groups, seed=0).values())
    # then the overall shares still hold
    assert counts == {"train": 240, "validation": 30, "test": 30}


def test_groups_with_refusals_never_go_to_test():
    # given groups of which every fifth holds a refusal
    groups = _groups(1000, refusal_every=5)
    # when split
    where = assign(groups, seed=9)
    # then none of them is in test, while test still gets its share of the rest
    assert {where[g.key] for g in groups if g.has_refusal} <= {"train", "validation"}
    test_rows = sum(g.rows for g in groups if where[g.key] == "test")
    assert abs(test_rows - 0.1 * sum(g.rows for g in groups)) <= 3


def test_a_zero_share_gets_nothing():
    where = assign(_groups(200), seed=0, ratios=(0.9, 0.1, 0.0))
    assert "test" not in set(where.values())
    assert set(where.values()) == {"train", "validation"}
