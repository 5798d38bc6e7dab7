"""The dashboard's SVG charts: escaped, well-formed, readable, with their numbers."""

import xml.etree.ElementTree as ET
from typing import Any

import pytest

from annotation.agreement import charts
from tests.annotation.agreement.data import (
    HOSTILE_CATEGORY,
    SCRIPT,
    agreement,
    annotator,
    sample_report,
)

SVG = "{http://www.w3.org/2000/svg}"
CHART_FUNCTIONS = (
    charts.kappa_heatmap,
    charts.alpha_bars,
    charts.label_distribution,
    charts.over_time,
    charts.jury_confusion,
    charts.time_boxplots,
)
NUMBER_FUNCTIONS = (
    charts.kappa_numbers,
    charts.alpha_numbers,
    charts.distribution_numbers,
    charts.over_time_numbers,
    charts.jury_numbers,
    charts.time_numbers,
)


def parse(markup: str) -> ET.Element:
    return ET.fromstring(markup)


def tooltips(svg: ET.Element) -> list[str]:
    return [t.text or "" for t in svg.iter(f"{SVG}title")]


def texts(svg: ET.Element) -> list[str]:
    return [t.text or "" for t in svg.iter(f"{SVG}text")]


def cells(table: ET.Element) -> list[list[str]]:
    return [["".join(cell.itertext()) for cell in row] for row in table.iter("tr")][1:]


@pytest.fixture
def report() -> dict[str, Any]:
    return sample_report()


# --- every chart ------------------------------------------------------------------


@pytest.mark.parametrize("chart", CHART_FUNCTIONS, ids=lambda f: f.__name__)
def test_each_chart_is_a_well_formed_labelled_svg_image(
    chart: Any, report: dict[str, Any]
) -> None:
    markup = str(chart(report))

    svg = parse(markup)
    assert svg.tag == f"{SVG}svg"
    assert svg.get("role") == "img"
    assert svg.get("aria-label")
    assert svg[0].tag == f"{SVG}title"
    assert svg[0].text == svg.get("aria-label")
    # sized for a laptop: it fits the page's column and is not a sliver
    width, height = int(svg.get("width", 0)), int(svg.get("height", 0))
    assert 300 <= width <= 1140, width
    assert 40 <= height <= 1400, height
    assert svg.get("viewBox") == f"0 0 {width} {height}"


@pytest.mark.parametrize(
    "chart", CHART_FUNCTIONS + NUMBER_FUNCTIONS, ids=lambda f: f.__name__
)
def test_hostile_names_are_escaped(chart: Any, report: dict[str, Any]) -> None:
    markup = str(chart(report))

    assert "<script" not in markup
    assert "<img" not in markup
    parse(markup)  # and the escaping keeps it well-formed


def test_hostile_names_are_shown_as_text(report: dict[str, Any]) -> None:
    heatmap = parse(str(charts.kappa_heatmap(report)))
    bars = parse(str(charts.alpha_bars(report)))
    jury = parse(str(charts.jury_confusion(report)))

    # cut in the middle on the chart, whole in the tooltip
    assert charts._short(SCRIPT, 20) == "<script>alert…cript>"
    assert f"{charts.WARNING_SIGN} <script>alert…cript>" in texts(heatmap)
    assert SCRIPT in tooltips(heatmap)
    assert HOSTILE_CATEGORY in tooltips(bars)
    assert f"judge {SCRIPT}" in tooltips(jury)


@pytest.mark.parametrize("numbers", NUMBER_FUNCTIONS, ids=lambda f: f.__name__)
def test_each_numbers_table_is_well_formed_with_a_header(
    numbers: Any, report: dict[str, Any]
) -> None:
    table = parse(str(numbers(report)))

    assert table.tag == "table"
    assert table.get("class") == "numbers"
    header = table.find("thead/tr")
    assert header is not None
    assert all(th.get("scope") == "col" for th in header)
    assert len(table.findall("tbody/tr")) >= 2


def test_an_empty_report_gives_charts_that_say_so() -> None:
    empty = {
        "needs_caution_policy": "permissive",
        "label": None,
        "label_binary": None,
        "response_label": None,
        "imported_label": None,
        "categories": {},
        "annotators": {},
        "pairwise": [],
        "warnings": [],
        "over_time": [],
        "jury": None,
        "settings": {"fast_label_ms": 3000},
    }

    found = {f.__name__: texts(parse(str(f(empty)))) for f in CHART_FUNCTIONS}

    assert found["kappa_heatmap"] == ["No human votes yet."]
    assert found["label_distribution"] == ["No human votes yet."]
    assert found["time_boxplots"] == ["No human votes yet."]
    assert found["over_time"] == ["No votes yet."]
    assert found["jury_confusion"] == ["No jury votes on this batch yet."]
    assert "not defined: no votes" in found["alpha_bars"]


# --- 1. the kappa heat map ---------------------------------------------------------


def test_heatmap_cells_carry_kappa_with_a_diverging_colour(
    report: dict[str, Any],
) -> None:
    svg = parse(str(charts.kappa_heatmap(report)))

    groups = {g.findtext(f"{SVG}title"): g for g in svg.iter(f"{SVG}g")}
    cell = groups["anna with ben: kappa 0.712"]
    assert cell.find(f"{SVG}rect").get("fill") == charts.diverging(0.7123)
    assert cell.findtext(f"{SVG}text") == "0.71"
    assert charts.diverging(-1) == "#b2182b"
    assert charts.diverging(0) == "#f7f7f7"
    assert charts.diverging(1) == "#2166ac"
    assert charts.diverging(5) == "#2166ac"  # clamped
    # 4 annotators: 12 cells off the diagonal, 4 on it
    assert sum(1 for t in groups if ": kappa " in t or ": not defined" in t) == 12
    assert sum(1 for t in groups if "(the same annotator)" in t) == 4


def test_heatmap_null_cells_are_hatched_with_their_reason(
    report: dict[str, Any],
) -> None:
    svg = parse(str(charts.kappa_heatmap(report)))

    nulls = [g for g in svg.iter(f"{SVG}g") if g.get("class") == "null-cell"]
    assert len(nulls) == 6  # dora with each of three, both ways
    for g in nulls:
        assert g.findtext(f"{SVG}title", "").endswith(
            ": not defined: no dialogue rated by both"
        )
        assert g.find(f"{SVG}rect").get("fill") == "url(#kappa-hatch)"
        assert g.findtext(f"{SVG}text") == "n/a"


def test_heatmap_outlines_the_warned_annotator(report: dict[str, Any]) -> None:
    svg = parse(str(charts.kappa_heatmap(report)))

    outlines = [r for r in svg.iter(f"{SVG}rect") if r.get("class") == "warned-row"]
    assert len(outlines) == 1
    warned_labels = [
        t for t in svg.iter(f"{SVG}text") if (t.text or "").startswith("⚠")
    ]
    assert len(warned_labels) == 2  # its row and its column
    assert all(t.get("fill") == charts.WARN for t in warned_labels)


def test_heatmap_numbers_list_each_pair_with_reasons(report: dict[str, Any]) -> None:
    rows = cells(parse(str(charts.kappa_numbers(report))))

    assert len(rows) == 6
    assert ["anna", "ben", "0.712", ""] in rows
    assert [SCRIPT, "anna", "0.104", ""] in rows  # "<" sorts first
    assert ["anna", "dora", "—", "no dialogue rated by both"] in rows


def test_heatmap_fits_a_laptop_with_thirty_annotators() -> None:
    names = [f"annotator-with-a-long-name-{i:02d}" for i in range(30)]
    report = {
        "annotators": {
            n: annotator(
                (1, 1, 1),
                None,
                kappas={m: 0.5 for m in names if m != n},
                vs_majority=agreement(0.5, 0.8, 3),
            )
            for n in names
        },
        "pairwise": [],
        "warnings": [],
    }

    svg = parse(str(charts.kappa_heatmap(report)))

    assert int(svg.get("width", 0)) <= 1140


# --- 2. alpha per label and category -------------------------------------------------


def test_alpha_bars_show_labels_first_then_categories(report: dict[str, Any]) -> None:
    svg = parse(str(charts.alpha_bars(report)))

    labels = [
        t.text
        for t in svg.iter(f"{SVG}text")
        if t.get("text-anchor") == "end" and t.get("dominant-baseline") == "central"
    ]
    assert labels == [
        "Label (3-way)",
        "Label, binary (permissive)",
        "Response label",
        "Violence",
        charts._short(HOSTILE_CATEGORY, 34),
        "Hate/Identity Hate",
    ]
    shown = texts(svg)
    assert "0.612  [0.501, 0.705]" in shown
    assert "-0.081  [-0.300, 0.150]" in shown


def test_alpha_bars_say_why_alpha_is_not_defined(report: dict[str, Any]) -> None:
    svg = parse(str(charts.alpha_bars(report)))

    undefined = [
        t.text for t in svg.iter(f"{SVG}text") if t.get("class") == "undefined"
    ]
    assert undefined == [
        "not defined: no item has two votes",
        "not defined: nobody chose this category",
    ]


def test_alpha_bars_draw_interval_whiskers(report: dict[str, Any]) -> None:
    svg = parse(str(charts.alpha_bars(report)))

    groups = {g.findtext(f"{SVG}title"): g for g in svg.iter(f"{SVG}g")}
    label = groups[
        "Label (3-way): alpha 0.612, 95% interval [0.501, 0.705], 40 dialogues"
    ]
    bar = label.find(f"{SVG}rect")
    whisker = label.findall(f"{SVG}line")[0]
    x0, width = float(bar.get("x")), float(bar.get("width"))
    lo, hi = float(whisker.get("x1")), float(whisker.get("x2"))
    # the bar ends at alpha, between the whisker's ends
    assert lo < x0 + width < hi
    assert (hi - lo) / width == pytest.approx((0.7052 - 0.5011) / 0.6123, rel=0.02)


def test_alpha_numbers_have_exact_values_intervals_and_n(
    report: dict[str, Any],
) -> None:
    rows = cells(parse(str(charts.alpha_numbers(report))))

    assert rows[0] == [
        "Label (3-way)",
        "40",
        "4",
        "0.612",
        "[0.501, 0.705]",
        "0.612",
        "[0.501, 0.705]",
        "0.781",
        "",
    ]
    assert rows[2][0] == "Response label"
    assert rows[2][3] == "—"
    assert rows[2][-1] == ("alpha, Fleiss' kappa, agreement: no item has two votes")
    assert rows[4][0] == HOSTILE_CATEGORY
    assert rows[4][-1] == "alpha, Fleiss' kappa: nobody chose this category"


# --- 3. label distribution -------------------------------------------------------------


def test_label_distribution_stacks_each_annotators_shares(
    report: dict[str, Any],
) -> None:
    svg = parse(str(charts.label_distribution(report)))

    anna = [t for t in tooltips(svg) if t.startswith("anna:")]
    assert anna == [
        "anna: 20 safe of 40 (50.0%)",
        "anna: 8 needs caution of 40 (20.0%)",
        "anna: 12 unsafe of 40 (30.0%)",
    ]
    assert "All annotators" in texts(svg)
    assert "n 124" in texts(svg)  # 40 + 40 + 40 + 4
    rows = cells(parse(str(charts.distribution_numbers(report))))
    assert rows[0] == [
        "All annotators",
        "124",
        "80 (0.645)",
        "15 (0.121)",
        "29 (0.234)",
    ]
    assert ["anna", "40", "20 (0.500)", "8 (0.200)", "12 (0.300)"] in rows


# --- 4. over time ------------------------------------------------------------------


def test_over_time_plots_each_week_and_explains_gaps(report: dict[str, Any]) -> None:
    svg = parse(str(charts.over_time(report)))

    shown = texts(svg)
    assert [w for w in shown if w.startswith("2025-W")] == [
        "2025-W14",
        "2025-W15",
        "2025-W16",
    ]
    assert "2025-W15: alpha not defined: no item has two votes" in tooltips(svg)
    assert len(list(svg.iter(f"{SVG}circle"))) == 1 + 2  # the legend's, two weeks
    rows = cells(parse(str(charts.over_time_numbers(report))))
    assert rows[0][:7] == [
        "2025-W14",
        "60",
        "40",
        "0.551",
        "[0.410, 0.680]",
        "0.551",
        "0.742",
    ]
    assert rows[1][3] == "—"


# --- 5. the jury -------------------------------------------------------------------------


def test_jury_confusion_has_the_decisions_and_each_judge(
    report: dict[str, Any],
) -> None:
    svg = parse(str(charts.jury_confusion(report)))

    found = tooltips(svg)
    assert "Jury decision" in found
    assert "gemma" in found
    assert (
        "human majority safe, the jury decided needs review: 2 (11.8% of the row)"
        in found
    )
    assert "human majority unsafe, gemma said unsafe: 11 (84.6% of the row)" in found
    rows = cells(parse(str(charts.jury_numbers(report))))
    assert rows[0] == [
        "Jury decision",
        "safe",
        "13",
        "2",
        "2",
        "0.885",
        "0.765",
        "26",
    ]
    assert rows[2][:4] == ["gemma", "safe", "14", "3"]


def test_jury_panels_wrap_to_fit_a_laptop(report: dict[str, Any]) -> None:
    # given eight judges: more panels than one line of the page's column holds
    judges = [f"judge-{i}" for i in range(8)]
    gemma = report["jury"]["per_judge"]["gemma"]
    report["jury"]["judges"] = judges
    report["jury"]["per_judge"] = {judge: gemma for judge in judges}

    svg = parse(str(charts.jury_confusion(report)))

    lines: dict[str, list[str]] = {}  # the panels' headings by their height
    for text in svg.iter(f"{SVG}text"):
        if text.get("font-size") == "13":
            lines.setdefault(text.get("y", ""), []).append(text.text or "")
    assert list(lines.values()) == [
        ["Jury decision", "judge-0", "judge-1", "judge-2"],
        ["judge-3", "judge-4", "judge-5", "judge-6"],
        ["judge-7"],
    ]
    assert int(svg.get("width", 0)) <= charts.MAX_WIDTH


def test_no_jury_votes_says_so(report: dict[str, Any]) -> None:
    report["jury"] = None

    svg = parse(str(charts.jury_confusion(report)))

    assert texts(svg) == ["No jury votes on this batch yet."]
    assert cells(parse(str(charts.jury_numbers(report)))) == []


# --- 6. time per dialogue --------------------------------------------------------------


def test_time_boxplots_draw_quartiles_and_the_fast_threshold(
    report: dict[str, Any],
) -> None:
    svg = parse(str(charts.time_boxplots(report)))

    boxes = [g for g in svg.iter(f"{SVG}g") if g.get("class") == "box"]
    assert len(boxes) == 3  # dora has no times
    assert "no times recorded" in texts(svg)
    anna = next(g for g in boxes if g.findtext(f"{SVG}title", "").startswith("anna"))
    assert anna.findtext(f"{SVG}title") == (
        "anna: median 14.2 s, middle half 9 s to 22 s, range 4.1 s to 1.58 min"
    )
    box = anna.find(f"{SVG}rect")
    median = anna.findall(f"{SVG}line")[-1]
    assert (
        float(box.get("x"))
        < float(median.get("x1"))
        < float(box.get("x")) + float(box.get("width"))
    )
    threshold = [
        line for line in svg.iter(f"{SVG}line") if line.get("class") == "fast-threshold"
    ]
    assert len(threshold) == 1
    assert "fast: under 3 s" in texts(svg)
    # the fast annotator's 1.8 s median is left of the threshold, anna's right of it
    fast = next(g for g in boxes if g.findtext(f"{SVG}title", "").startswith(SCRIPT))
    x_fast = float(threshold[0].get("x1"))
    assert float(fast.findall(f"{SVG}line")[-1].get("x1")) < x_fast
    assert float(median.get("x1")) > x_fast


def test_time_numbers_are_in_seconds(report: dict[str, Any]) -> None:
    rows = cells(parse(str(charts.time_numbers(report))))

    assert [
        "anna",
        "40",
        "4.100",
        "9.000",
        "14.250",
        "22.000",
        "95.000",
        "0",
        "0.000",
    ] in rows
    assert [
        SCRIPT,
        "40",
        "0.400",
        "0.900",
        "1.800",
        "4.500",
        "12.000",
        "18",
        "0.450",
    ] in rows
    assert ["dora", "4", "—", "—", "—", "—", "—", "0", "—"] in rows


# --- the dashboard ---------------------------------------------------------------


def test_the_dashboard_has_six_charts_each_with_its_numbers(
    report: dict[str, Any],
) -> None:
    found = charts.dashboard(report)

    assert [c.slug for c in found] == [
        "kappa-heatmap",
        "alpha-bars",
        "label-distribution",
        "time-boxplots",
        "over-time",
        "jury-confusion",
    ]
    for chart in found:
        assert parse(str(chart.svg)).get("id") == f"{chart.slug}-svg"
        assert parse(str(chart.numbers)).tag == "table"
