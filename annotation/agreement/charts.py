"""Server-rendered SVG charts of a batch's agreement report (`annotation.agreement.services`).

Pure functions of the report's JSON data: no ORM, no settings, no JavaScript. Every
piece of markup is built with `format_html`/`format_html_join`, so usernames, judge
and category names (chosen by people and imports, so possibly hostile) are always
escaped, and the output is well-formed XML. Each chart comes with a table of its exact
numbers (`Chart.numbers`), for screen readers and for leads who want the values.

Colours are colour-blind safe: ColorBrewer's RdBu for kappa (-1 .. 1) and the
Okabe-Ito palette for series and labels; nothing is told by colour alone (values are
written in the cells, warnings carry a sign).
"""

# Hand-built rather than Vega-Lite specs (Altair, rendered by vl-convert), measured
# for issue 12 with `bench/agreement.py --page --dialogues 3000`: the page with its six
# charts took 22.9 ms / 69 kB (demo-reviewed) and 65.7 ms / 143 kB (12 annotators,
# 8 weeks) hand-built, 491 ms / 141 kB and 657 ms / 265 kB with vl-convert, plus
# about 1.5 s for the first chart in each process; and vl-convert's SVG has no
# tooltips, no role or title on the root, no pattern fills, and no class on a single
# shape. The table and what was compared: docs/architecture.md, "Charts: why
# hand-built SVG".

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations, pairwise
from math import ceil, floor, log10
from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from accounts.ordering import natural_sorted
from annotation.rules.labels import LABELS, NEEDS_CAUTION, NEEDS_REVIEW, SAFE, UNSAFE

Report = Mapping[str, Any]

FONT = "system-ui, -apple-system, Segoe UI, Roboto, Helvetica, Arial, sans-serif"
INK = "#1d2330"
MUTED = "#5b6475"
GRID = "#dde1e8"
STRIPE = "#f6f7f9"
NULL_FILL = "#eceef2"
HATCH = "#9aa3b2"
WARN = (
    "#c0392b"  # warned annotators' names and outlines (with a sign, not colour alone)
)
BLUE = "#0072b2"  # Okabe-Ito blue
SKY = "#56b4e9"  # Okabe-Ito sky blue
ORANGE = "#e69f00"  # Okabe-Ito orange
VERMILLION = "#d55e00"  # Okabe-Ito vermillion
PURPLE = "#cc79a7"  # Okabe-Ito reddish purple
LABEL_NAMES = {SAFE: "safe", NEEDS_CAUTION: "needs caution", UNSAFE: "unsafe"}
LABEL_COLOURS = {SAFE: "#009e73", NEEDS_CAUTION: "#f0e442", UNSAFE: VERMILLION}
DECISION_NAMES = {NEEDS_REVIEW: "needs review"}
# ColorBrewer RdBu, 7 classes, from kappa -1 to 1 (colour-blind safe, diverging).
DIVERGING = (
    (-1.0, (178, 24, 43)),
    (-2 / 3, (239, 138, 98)),
    (-1 / 3, (253, 219, 199)),
    (0.0, (247, 247, 247)),
    (1 / 3, (209, 229, 240)),
    (2 / 3, (103, 169, 207)),
    (1.0, (33, 102, 172)),
)
SEQUENTIAL = ((0.0, (247, 251, 255)), (1.0, (33, 113, 181)))  # ColorBrewer Blues
CHAR = 7.0  # average width of a 12px character, for laying out labels
WARNING_SIGN = "\u26a0"
# Krippendorff's conventions: conclusions tentative from 0.667, reliable from 0.8.
ALPHA_TENTATIVE, ALPHA_RELIABLE = 0.667, 0.8
# Nice tick values for durations, in milliseconds (the time axis is logarithmic).
DURATION_TICKS = (
    100,
    200,
    500,
    1_000,
    2_000,
    5_000,
    10_000,
    20_000,
    30_000,
    60_000,
    120_000,
    300_000,
    600_000,
    1_200_000,
    1_800_000,
    3_600_000,
    7_200_000,
    14_400_000,
    43_200_000,
    86_400_000,
)
# The ticks kept when a wide range of durations would crowd the axis.
SPARSE_DURATION_TICKS = frozenset(
    {100, 500, 1_000, 5_000, 10_000, 30_000, 60_000, 300_000, 600_000, 1_800_000}
    | {3_600_000, 14_400_000, 86_400_000}
)
MAX_WIDTH = 1100  # the dashboard's column on a laptop


@dataclass(frozen=True)
class Chart:
    """One chart of the dashboard: its SVG and the table of the numbers it shows."""

    slug: str
    title: str
    caption: str
    svg: SafeString
    numbers: SafeString


# --- markup helpers ------------------------------------------------------------------


def _join(parts: Iterable[SafeString]) -> SafeString:
    return format_html_join("", "{}", ((part,) for part in parts))


def _attrs(attrs: Mapping[str, object]) -> SafeString:
    """SVG attributes from keyword names: `font_size` is `font-size`, `class_` is
    `class`; floats are rounded to a tenth of a pixel; None leaves one out."""
    return format_html_join(
        "",
        ' {}="{}"',
        (
            (
                name.rstrip("_").replace("_", "-"),
                f"{value:.1f}" if isinstance(value, float) else value,
            )
            for name, value in attrs.items()
            if value is not None
        ),
    )


def _el(tag: str, **attrs: object) -> SafeString:
    return format_html("<{}{}/>", tag, _attrs(attrs))


def _whisker(x0: float, x1: float, mid: float, colour: str) -> list[SafeString]:
    """A horizontal line from x0 to x1 with an end cap at each side (an interval,
    a range)."""
    return [
        _el("line", x1=x0, x2=x1, y1=mid, y2=mid, stroke=colour, stroke_width=1.5),
        *(
            _el(
                "line",
                x1=x,
                x2=x,
                y1=mid - 5,
                y2=mid + 5,
                stroke=colour,
                stroke_width=1.5,
            )
            for x in (x0, x1)
        ),
    ]


def _text(x: float, y: float, content: str, **attrs: object) -> SafeString:
    return format_html("<text{}>{}</text>", _attrs({"x": x, "y": y, **attrs}), content)


def _group(tooltip: str, *children: SafeString, **attrs: object) -> SafeString:
    """A group with a tooltip (an SVG <title>, shown on hover)."""
    return format_html(
        "<g{}><title>{}</title>{}</g>", _attrs(attrs), tooltip, _join(children)
    )


def _svg(
    slug: str, title: str, width: float, height: float, *body: SafeString
) -> SafeString:
    width, height = ceil(width), ceil(height)
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{}-svg" role="img" '
        'aria-label="{}" width="{}" height="{}" viewBox="0 0 {} {}" font-family="{}" '
        'font-size="12" fill="{}"><title>{}</title>{}</svg>',
        slug,
        title,
        width,
        height,
        width,
        height,
        FONT,
        INK,
        title,
        _join(body),
    )


def _empty(slug: str, title: str, message: str) -> SafeString:
    return _svg(slug, title, 560, 40, _text(4, 24, message, fill=MUTED))


def _table(
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    numeric: Iterable[int] = (),
    caption: str = "",
) -> SafeString:
    """A numbers table; the columns in `numeric` are right-aligned."""
    right = set(numeric)

    def cell(tag: str, i: int, value: object) -> SafeString:
        if tag == "th":
            if i in right:
                return format_html('<th scope="col" class="num">{}</th>', value)
            return format_html('<th scope="col">{}</th>', value)
        if i in right:
            return format_html('<td class="num">{}</td>', value)
        return format_html("<td>{}</td>", value)

    head = _join(cell("th", i, h) for i, h in enumerate(headers))
    body = _join(
        format_html("<tr>{}</tr>", _join(cell("td", i, v) for i, v in enumerate(row)))
        for row in rows
    )
    caption_html = format_html("<caption>{}</caption>", caption) if caption else ""
    return format_html(
        '<table class="numbers">{}<thead><tr>{}</tr></thead><tbody>{}</tbody></table>',
        caption_html,
        head,
        body,
    )


# --- formatting and colours ------------------------------------------------------------


def fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def fmt_interval(interval: Sequence[float] | None) -> str:
    if not interval:
        return "—"
    return f"[{interval[0]:.3f}, {interval[1]:.3f}]"


def duration(ms: float) -> str:
    """A duration for people: 0.5 s, 12 s, 2 min, 1.5 h."""
    if ms < 60_000:
        return f"{ms / 1000:.3g} s"
    if ms < 3_600_000:
        return f"{ms / 60_000:.3g} min"
    return f"{ms / 3_600_000:.3g} h"


def _short(text: str, limit: int) -> str:
    """Text cut to `limit` characters in the middle, so that names sharing a prefix
    (annotator-01, annotator-02) stay apart; the full text goes in a tooltip."""
    if len(text) <= limit:
        return text
    tail = (limit - 1) // 3
    return text[: limit - 1 - tail] + "…" + text[len(text) - tail :]


def _mix(stops: Sequence[tuple[float, tuple[int, int, int]]], value: float) -> str:
    value = min(max(value, stops[0][0]), stops[-1][0])
    for (lo, a), (hi, b) in pairwise(stops):
        if value <= hi:
            t = 0.0 if hi == lo else (value - lo) / (hi - lo)
            r, g, bl = (round(x + (y - x) * t) for x, y in zip(a, b, strict=True))
            return f"#{r:02x}{g:02x}{bl:02x}"
    raise AssertionError("unreachable")  # pragma: no cover


def diverging(value: float) -> str:
    """The RdBu colour of a kappa or alpha in -1 .. 1 (white at 0)."""
    return _mix(DIVERGING, value)


def _ink_on_diverging(value: float) -> str:
    return "#ffffff" if abs(value) >= 0.8 else INK


def _ticks(lo: float, hi: float) -> list[float]:
    """Round values from lo to hi for an axis of kappa or alpha: every 0.2, or every
    0.5 when the axis reaches far below zero."""
    step = 0.2 if hi - lo <= 1.4 else 0.5
    first = ceil(lo / step - 1e-9)
    return [round(i * step, 6) for i in range(first, floor(hi / step + 1e-9) + 1)]


def _reason(summary: Mapping[str, Any] | None, field: str) -> str:
    """Why a statistic of a `stats.summary` is null."""
    if summary is None:
        return "no votes"
    reasons = summary.get("reason") or {}
    return str(reasons.get(field) or next(iter(reasons.values()), "no data"))


STAT_NAMES = {
    "krippendorff_alpha": "alpha",
    "fleiss_kappa": "Fleiss' kappa",
    "percent_agreement": "agreement",
}


def _notes(summary: Mapping[str, Any]) -> str:
    """Why a summary's numbers are missing, each reason once: a null statistic's
    reason, and an interval's where its statistic is defined."""
    reasons = summary.get("reason") or {}
    notes: dict[str, list[str]] = {}
    for field, why in reasons.items():
        stat = field.removeprefix("ci95.")
        if field != stat and summary.get(stat) is None:
            continue  # the interval is missing because the statistic is
        name = STAT_NAMES.get(stat, stat) + (" interval" if field != stat else "")
        notes.setdefault(str(why), []).append(name)
    return "; ".join(f"{', '.join(names)}: {why}" for why, names in notes.items())


def _warned(report: Report) -> dict[str, list[str]]:
    """Annotators with warnings, and their warnings' texts."""
    warned: dict[str, list[str]] = {}
    for warning in report.get("warnings") or []:
        warned.setdefault(warning["annotator"], []).append(warning["detail"])
    return warned


def _names(report: Report) -> list[str]:
    return natural_sorted(report.get("annotators") or {})


def _name_label(name: str, warned: Mapping[str, list[str]], limit: int) -> str:
    short = _short(name, limit)
    return f"{WARNING_SIGN} {short}" if name in warned else short


def _row_label(
    x: float,
    y: float,
    name: str,
    warned: Mapping[str, list[str]],
    limit: int,
    **attrs: object,
) -> SafeString:
    """An annotator's name at the left of a row; warned ones marked, full name and
    warnings in the tooltip."""
    tooltip = "; ".join([name, *warned.get(name, [])])
    style: dict[str, object] = {"text_anchor": "end", "dominant_baseline": "central"}
    if name in warned:
        style |= {"fill": WARN, "font_weight": "700"}
    return _group(
        tooltip, _text(x, y, _name_label(name, warned, limit), **style, **attrs)
    )


def _label_width(names: Iterable[str], limit: int, *, extra: float = 0) -> float:
    longest = max((min(len(n), limit) for n in names), default=4)
    return longest * CHAR + 24 + extra


# --- 1. Cohen's kappa between annotators -------------------------------------------


def _pair_reasons(report: Report) -> dict[tuple[str, str], str]:
    reasons = {}
    for pair in report.get("pairwise") or []:
        if pair.get("cohen_kappa") is None:
            reason = str(pair.get("reason") or "not defined")
            reasons[(pair["a"], pair["b"])] = reasons[(pair["b"], pair["a"])] = reason
    return reasons


def _pair_kappa(
    report: Report, reasons: Mapping[tuple[str, str], str], a: str, b: str
) -> tuple[float | None, str]:
    """The kappa of two annotators, or None with the reason."""
    kappas = report["annotators"][a].get("cohen_kappa") or {}
    value = kappas.get(b)
    if value is None:
        reason = reasons.get((a, b)) or (
            "no dialogue labelled by both" if b not in kappas else "not defined"
        )
        return None, reason
    return float(value), ""


@dataclass(frozen=True)
class _Grid:
    """Where the heat map's cells, names and legend go, from the number of names."""

    n: int
    cell: int
    value_size: int
    left: float  # the cells' left edge, right of the row names
    top: float  # the cells' top edge, below the slanted column names
    limit: int = 20

    @classmethod
    def of(cls, names: Sequence[str], limit: int = 20) -> "_Grid":
        n = len(names)
        cell = 56 if n <= 6 else max(24, 380 // n)
        return cls(
            n=n,
            cell=cell,
            value_size=13 if cell >= 44 else 11 if cell >= 34 else 9,
            left=_label_width(names, limit, extra=26),
            # Room for the slanted column names (bold and signed when warned).
            top=(max(min(len(x), limit) for x in names) + 2) * CHAR * 0.78 + 24,
            limit=limit,
        )

    @property
    def side(self) -> int:
        return self.n * self.cell

    @property
    def legend_x(self) -> float:
        return self.left + self.side + 32

    @property
    def legend_y(self) -> float:
        return self.top + 24  # below its title, clear of the slanted column names

    @property
    def legend_h(self) -> int:
        return max(self.side - 24, 150)

    @property
    def key_y(self) -> float:
        return self.legend_y + self.legend_h + 14  # the hatching's key, below the scale


def _heatmap_defs() -> SafeString:
    """The hatching of undefined cells and the gradient of the colour scale."""
    return format_html(
        '<defs><pattern id="kappa-hatch" width="6" height="6" '
        'patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
        '<rect width="6" height="6" fill="{}"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="{}" stroke-width="2"/>'
        "</pattern>"
        '<linearGradient id="kappa-scale" x1="0" y1="0" x2="0" y2="1">{}'
        "</linearGradient></defs>",
        NULL_FILL,
        HATCH,
        _join(
            _el("stop", offset=f"{(1 - v) / 2:.3f}", stop_color=diverging(v))
            for v, _ in reversed(DIVERGING)
        ),
    )


def _heatmap_columns(
    names: Sequence[str], warned: Mapping[str, list[str]], grid: _Grid
) -> list[SafeString]:
    """The column names, slanted above the cells."""
    parts = []
    for j, col in enumerate(names):
        x, y = grid.left + j * grid.cell + grid.cell / 2, grid.top - 8
        style: dict[str, object] = {"transform": f"rotate(-45 {x:.1f} {y:.1f})"}
        if col in warned:
            style |= {"fill": WARN, "font_weight": "700"}
        label = _text(x, y, _name_label(col, warned, grid.limit), **style)
        parts.append(_group(col, label))
    return parts


def _heatmap_cell(
    report: Report,
    reasons: Mapping[tuple[str, str], str],
    row: str,
    col: str,
    x: float,
    y: float,
    grid: _Grid,
) -> SafeString:
    """One cell: the same annotator, a kappa in its colour, or hatched with why."""
    cell = grid.cell
    box = {"x": float(x), "y": float(y), "width": cell, "height": cell}
    centre = {
        "text_anchor": "middle",
        "dominant_baseline": "central",
        "font_size": grid.value_size,
    }
    mid_x, mid_y = x + cell / 2, y + cell / 2
    if row == col:
        return _group(
            f"{row} (the same annotator)",
            _el("rect", **box, fill="#ffffff", stroke=GRID),
            _text(mid_x, mid_y, "—", fill=MUTED, **centre),
        )
    value, reason = _pair_kappa(report, reasons, row, col)
    if value is None:
        return _group(
            f"{row} with {col}: not defined: {reason}",
            _el("rect", **box, fill="url(#kappa-hatch)", stroke="#ffffff"),
            _text(mid_x, mid_y, "n/a", fill=INK, **centre),
            class_="null-cell",
        )
    return _group(
        f"{row} with {col}: kappa {value:.3f}",
        _el("rect", **box, fill=diverging(value), stroke="#ffffff"),
        _text(mid_x, mid_y, f"{value:.2f}", fill=_ink_on_diverging(value), **centre),
    )


def _heatmap_rows(
    report: Report, names: Sequence[str], warned: Mapping[str, list[str]], grid: _Grid
) -> list[SafeString]:
    """Each row: the annotator's name, its cells, and an outline when warned."""
    reasons = _pair_reasons(report)
    parts = []
    for i, row in enumerate(names):
        y = grid.top + i * grid.cell
        parts.append(
            _row_label(grid.left - 10, y + grid.cell / 2, row, warned, grid.limit)
        )
        for j, col in enumerate(names):
            x = grid.left + j * grid.cell
            parts.append(_heatmap_cell(report, reasons, row, col, x, y, grid))
        if row in warned:
            outline = _el(
                "rect",
                x=grid.left - 1.5,
                y=y + 1.5,
                width=grid.side + 3,
                height=grid.cell - 3,
                fill="none",
                stroke=WARN,
                stroke_width=2.5,
                class_="warned-row",
            )
            parts.append(outline)
    return parts


def _heatmap_legend(grid: _Grid) -> list[SafeString]:
    """The colour scale with its ticks, and the key to the hatching."""
    x, y, h = grid.legend_x, grid.legend_y, grid.legend_h
    parts = [
        _text(x, grid.top + 10, "kappa", font_weight="700"),
        _el(
            "rect", x=x, y=y, width=14, height=h, fill="url(#kappa-scale)", stroke=GRID
        ),
    ]
    for v in (1.0, 0.5, 0.0, -0.5, -1.0):
        ty = y + (1 - v) / 2 * h
        parts += [
            _el("line", x1=x + 14, x2=x + 18, y1=ty, y2=ty, stroke=MUTED),
            _text(x + 22, ty, f"{v:g}", dominant_baseline="central", fill=MUTED),
        ]
    key_y = grid.key_y
    return [
        *parts,
        _el(
            "rect",
            x=x,
            y=key_y,
            width=14,
            height=14,
            fill="url(#kappa-hatch)",
            stroke=GRID,
        ),
        _text(x + 20, key_y + 7, "not defined", dominant_baseline="central"),
    ]


def kappa_heatmap(report: Report) -> SafeString:
    """Annotator x annotator Cohen's kappa (3-way label) as a heat map; warned
    annotators outlined; undefined cells hatched with the reason in the tooltip."""
    slug, title = "kappa-heatmap", "Cohen's kappa between each pair of annotators"
    names = _names(report)
    if not names:
        return _empty(slug, title, "No human votes yet.")
    warned, grid = _warned(report), _Grid.of(names)
    parts = [
        _heatmap_defs(),
        *_heatmap_columns(names, warned, grid),
        *_heatmap_rows(report, names, warned, grid),
        *_heatmap_legend(grid),
    ]
    width = max(grid.legend_x + 110, grid.left + grid.side + grid.top - 12)
    return _svg(slug, title, width, grid.key_y + 24, *parts)


def kappa_numbers(report: Report) -> SafeString:
    names, reasons = _names(report), _pair_reasons(report)
    rows = []
    for a, b in combinations(names, 2):
        value, reason = _pair_kappa(report, reasons, a, b)
        rows.append((a, b, fmt(value), "" if value is not None else reason))
    return _table(
        ("Annotator", "Annotator", "Cohen's kappa", "Note"),
        rows,
        numeric=(2,),
        caption="Cohen's kappa on the dialogue label (3-way), per pair.",
    )


# --- 2. Krippendorff's alpha per label and category ---------------------------------


def _alpha_rows(report: Report) -> list[tuple[str, Mapping[str, Any] | None, bool]]:
    """(name, summary, is a label row) from the top of the chart down."""
    policy = report.get("needs_caution_policy") or ""
    rows: list[tuple[str, Mapping[str, Any] | None, bool]] = [
        ("Label (3-way)", report.get("label"), True),
        (
            f"Label, binary ({policy})" if policy else "Label, binary",
            report.get("label_binary"),
            True,
        ),
    ]
    if report.get("response_label") is not None:
        rows.append(("Response label", report["response_label"], True))
    if report.get("imported_label") is not None:
        rows.append(("Imported label", report["imported_label"], True))
    rows += [
        (name, summary, False)
        for name, summary in (report.get("categories") or {}).items()
    ]
    return rows


@dataclass(frozen=True)
class _AlphaPlot:
    """The alpha chart's scale (lo .. 1 across `plot_w`) and where its rows go."""

    plot_x: float
    lo: float
    ys: tuple[float, ...]  # each row's top
    n_label_rows: int
    bottom: float
    top: int = 36
    row_h: int = 26
    plot_w: float = 460.0
    hi: float = 1.0

    @property
    def value_x(self) -> float:
        return self.plot_x + self.plot_w + 18

    @property
    def has_categories(self) -> bool:
        return len(self.ys) > self.n_label_rows

    def x_of(self, v: float) -> float:
        span = self.hi - self.lo
        return (
            self.plot_x + (min(max(v, self.lo), self.hi) - self.lo) / span * self.plot_w
        )


def _alpha_plot(
    rows: Sequence[tuple[str, Mapping[str, Any] | None, bool]], limit: int
) -> _AlphaPlot:
    """The scale reaches down to the lowest alpha or interval (0 at least), in steps
    of 0.2; the categories come under a heading of their own."""
    lows = [0.0]
    for _, s, _ in rows:
        if s is not None and s.get("krippendorff_alpha") is not None:
            lows.append(s["krippendorff_alpha"])
            ci = (s.get("ci95") or {}).get("krippendorff_alpha")
            if ci:
                lows.append(ci[0])
    top, row_h = 36, 26
    n_label_rows = sum(1 for _, _, is_label in rows if is_label)
    ys, y = [], float(top)
    for i in range(len(rows)):
        if i == n_label_rows and len(rows) > n_label_rows:
            y += row_h  # room for the "Categories" heading
        ys.append(y)
        y += row_h
    return _AlphaPlot(
        plot_x=_label_width([name for name, _, _ in rows], limit),
        lo=max(-1.0, floor(min(lows) * 5) / 5),
        ys=tuple(ys),
        n_label_rows=n_label_rows,
        bottom=y,
        top=top,
        row_h=row_h,
    )


def _alpha_grid(plot: _AlphaPlot) -> list[SafeString]:
    """Striped rows, the categories' heading, and the vertical grid with its ticks."""
    parts = [
        _el(
            "rect", x=0.0, y=y, width=plot.value_x + 200, height=plot.row_h, fill=STRIPE
        )
        for i, y in enumerate(plot.ys)
        if i % 2 == 0
    ]
    if plot.has_categories:
        heading = _text(
            8,
            plot.ys[plot.n_label_rows] - plot.row_h / 2,
            "Categories (chosen or not, per vote)",
            font_weight="700",
            fill=MUTED,
            dominant_baseline="central",
        )
        parts.append(heading)
    for tick in _ticks(plot.lo, plot.hi):
        tx = plot.x_of(tick)
        stroke = INK if abs(tick) < 1e-9 else GRID
        parts += [
            _el(
                "line", x1=tx, x2=tx, y1=float(plot.top), y2=plot.bottom, stroke=stroke
            ),
            _text(
                tx, plot.bottom + 16, f"{tick:.1f}", text_anchor="middle", fill=MUTED
            ),
        ]
    return parts


def _alpha_thresholds(plot: _AlphaPlot) -> list[SafeString]:
    """Krippendorff's two thresholds as dashed lines, and the values' column head."""
    parts: list[SafeString] = []
    for value, anchor, text in (
        (ALPHA_TENTATIVE, "end", "0.667 tentative"),
        (ALPHA_RELIABLE, "start", "0.8 reliable"),
    ):
        tx = plot.x_of(value)
        parts += [
            _el(
                "line",
                x1=tx,
                x2=tx,
                y1=plot.top - 6.0,
                y2=plot.bottom,
                stroke=MUTED,
                stroke_dasharray="4 3",
            ),
            _text(
                tx + (-3 if anchor == "end" else 3),
                plot.top - 10,
                text,
                text_anchor=anchor,
                font_size=11,
                fill=MUTED,
            ),
        ]
    head = "alpha  [95% interval]"
    parts.append(_text(plot.value_x, plot.top - 10, head, font_size=11, fill=MUTED))
    return parts


def _alpha_undefined(
    name: str, s: Mapping[str, Any] | None, mid: float, plot: _AlphaPlot
) -> SafeString:
    """Why a row's alpha is not defined, cut to the room left (whole in the tooltip)."""
    why = f"not defined: {_reason(s, 'krippendorff_alpha')}"
    fits = int((plot.value_x + 180 - plot.x_of(0)) / (CHAR - 0.8))
    return _group(
        f"{name}: {why}",
        _text(
            plot.x_of(0) + 6,
            mid,
            why if len(why) <= fits else why[: fits - 1] + "…",
            dominant_baseline="central",
            fill=MUTED,
            font_style="italic",
            font_size=11,
            class_="undefined",
        ),
    )


def _alpha_marks(
    name: str, s: Mapping[str, Any], alpha: float, mid: float, plot: _AlphaPlot
) -> SafeString:
    """A row's bar from 0 to alpha, its interval's whisker and its values."""
    ci = (s.get("ci95") or {}).get("krippendorff_alpha")
    x0, x1 = plot.x_of(min(0.0, alpha)), plot.x_of(max(0.0, alpha))
    bar_h = 14
    marks = [
        _el(
            "rect",
            x=x0,
            y=mid - bar_h / 2,
            width=max(x1 - x0, 1.5),
            height=bar_h,
            fill=SKY if alpha >= 0 else PURPLE,
        )
    ]
    if ci:
        marks += _whisker(plot.x_of(ci[0]), plot.x_of(ci[1]), mid, INK)
    marks.append(
        _text(
            plot.value_x,
            mid,
            f"{alpha:.3f}  {fmt_interval(ci) if ci else ''}",
            dominant_baseline="central",
            class_="tabular",  # font-variant-numeric in app.css (no style="")
        )
    )
    tooltip = f"{name}: alpha {alpha:.3f}"
    if ci:
        tooltip += f", 95% interval {fmt_interval(ci)}"
    if "n_items" in s:
        tooltip += f", {s['n_items']} dialogues"
    return _group(tooltip, *marks)


def alpha_bars(report: Report) -> SafeString:
    """Krippendorff's alpha per label and per category, bars with 95% intervals."""
    slug = "alpha-bars"
    title = "Krippendorff's alpha per label and category, with 95% intervals"
    rows, limit = _alpha_rows(report), 34
    plot = _alpha_plot(rows, limit)
    parts = [*_alpha_grid(plot), *_alpha_thresholds(plot)]
    for (name, s, is_label), y in zip(rows, plot.ys, strict=True):
        mid = y + plot.row_h / 2
        label = _text(
            plot.plot_x - 10,
            mid,
            _short(name, limit),
            text_anchor="end",
            dominant_baseline="central",
            font_weight="700" if is_label else None,
        )
        parts.append(_group(name, label))
        alpha = None if s is None else s.get("krippendorff_alpha")
        if s is None or alpha is None:
            parts.append(_alpha_undefined(name, s, mid, plot))
        else:
            parts.append(_alpha_marks(name, s, alpha, mid, plot))
    axis = _text(
        plot.plot_x + plot.plot_w / 2,
        plot.bottom + 34,
        "Krippendorff's alpha",
        text_anchor="middle",
        fill=MUTED,
    )
    return _svg(slug, title, plot.value_x + 190, plot.bottom + 44, *parts, axis)


def alpha_numbers(report: Report) -> SafeString:
    rows = []
    for name, s, _ in _alpha_rows(report):
        if s is None:
            rows.append((name, "—", "—", "—", "—", "—", "—", "—", "no votes"))
            continue
        ci = s.get("ci95") or {}
        rows.append(
            (
                name,
                s.get("n_items", "—"),
                s.get("n_raters", "—"),
                fmt(s.get("krippendorff_alpha")),
                fmt_interval(ci.get("krippendorff_alpha")),
                fmt(s.get("fleiss_kappa")),
                fmt_interval(ci.get("fleiss_kappa")),
                fmt(s.get("percent_agreement")),
                _notes(s),
            )
        )
    return _table(
        (
            "On",
            "Items",
            "Raters",
            "Alpha",
            "Alpha 95% interval",
            "Fleiss' kappa",
            "Kappa 95% interval",
            "Agreement",
            "Note",
        ),
        rows,
        numeric=(1, 2, 3, 4, 5, 6, 7),
        caption="Agreement is the share of pairs of votes on a dialogue that agree.",
    )


# --- 3. Label distribution per annotator ---------------------------------------------


def _distributions(report: Report) -> list[tuple[str, dict[str, int]]]:
    annotators = report.get("annotators") or {}
    rows = [
        (
            name,
            {k: int(annotators[name]["label_distribution"].get(k, 0)) for k in LABELS},
        )
        for name in _names(report)
    ]
    total = {k: sum(r[k] for _, r in rows) for k in LABELS}
    return [("All annotators", total), *rows] if rows else []


def _label_legend(x: float) -> list[SafeString]:
    """A swatch and the name of each label, in a line above the bars."""
    parts: list[SafeString] = []
    for key in LABELS:
        parts += [
            _el("rect", x=x, y=8.0, width=14, height=14, fill=LABEL_COLOURS[key]),
            _text(x + 20, 15, LABEL_NAMES[key], dominant_baseline="central"),
        ]
        x += 20 + len(LABEL_NAMES[key]) * CHAR + 22
    return parts


def _label_segments(
    name: str, counts: Mapping[str, int], x: float, y: float, row_h: int, bar_w: float
) -> list[SafeString]:
    """One row's bar: a segment per label in proportion, with its share where it
    fits."""
    total = sum(counts.values())
    mid = y + row_h / 2
    parts = []
    for key in LABELS:
        share = counts[key] / total
        w = share * bar_w
        if w <= 0:
            continue
        segment = [
            _el(
                "rect",
                x=x,
                y=y + 4,
                width=w,
                height=row_h - 8.0,
                fill=LABEL_COLOURS[key],
                stroke="#ffffff",
            )
        ]
        if w >= 38:
            segment.append(
                _text(
                    x + w / 2,
                    mid,
                    f"{share * 100:.0f}%",
                    text_anchor="middle",
                    dominant_baseline="central",
                    font_weight="600",
                    fill=INK,
                )
            )
        tooltip = (
            f"{name}: {counts[key]} {LABEL_NAMES[key]} of {total} ({share * 100:.1f}%)"
        )
        parts.append(_group(tooltip, *segment))
        x += w
    return parts


def label_distribution(report: Report) -> SafeString:
    """Each annotator's labels as shares of safe / needs caution / unsafe."""
    slug = "label-distribution"
    title = "Share of each label per annotator"
    rows = _distributions(report)
    if not rows:
        return _empty(slug, title, "No human votes yet.")
    warned, limit, row_h = _warned(report), 20, 28
    label_w = _label_width([name for name, _ in rows], limit, extra=26)
    bar_x, bar_w, top = label_w, 520.0, 34
    central = {"dominant_baseline": "central"}
    parts = _label_legend(bar_x)
    for i, (name, counts) in enumerate(rows):
        y = top + i * row_h + (8 if i else 0)  # the total apart from the annotators
        mid = y + row_h / 2
        if i == 0:
            parts.append(
                _text(
                    bar_x - 10,
                    mid,
                    name,
                    text_anchor="end",
                    **central,
                    font_weight="700",
                )
            )
        else:
            parts.append(_row_label(bar_x - 10, mid, name, warned, limit))
        total = sum(counts.values())
        if not total:
            empty = _text(bar_x + 6, mid, "no labelled votes", **central, fill=MUTED)
            parts.append(empty)
            continue
        parts += _label_segments(name, counts, bar_x, y, row_h, bar_w)
        parts.append(
            _text(bar_x + bar_w + 10, mid, f"n {total}", **central, fill=MUTED)
        )
    height = top + len(rows) * row_h + 16
    return _svg(slug, title, bar_x + bar_w + 80, height, *parts)


def distribution_numbers(report: Report) -> SafeString:
    rows = []
    for name, counts in _distributions(report):
        total = sum(counts.values())
        rows.append(
            (
                name,
                total,
                *(
                    f"{counts[k]} ({fmt(counts[k] / total) if total else '—'})"
                    for k in LABELS
                ),
            )
        )
    return _table(
        (
            "Annotator",
            "Votes with a label",
            *(f"{LABEL_NAMES[k]} (share)" for k in LABELS),
        ),
        rows,
        numeric=(1, 2, 3, 4),
    )


# --- 4. Agreement over time ------------------------------------------------------------


@dataclass(frozen=True)
class _WeekPlot:
    """The over-time chart's scales: a column per week, lo .. 1 upwards."""

    n: int  # weeks
    lo: float
    plot_w: float
    plot_x: float = 52.0
    top: float = 44.0
    plot_h: float = 200.0
    hi: float = 1.0

    @classmethod
    def of(cls, weeks: Sequence[Mapping[str, Any]]) -> "_WeekPlot":
        """The scale reaches down to the lowest alpha, agreement or interval (0 at
        least), in steps of 0.2; the plot is at least the legend's width."""
        values = [0.0]
        for w in weeks:
            for key in ("krippendorff_alpha", "percent_agreement"):
                if w.get(key) is not None:
                    values.append(w[key])
            ci = (w.get("ci95") or {}).get("krippendorff_alpha")
            if ci:
                values.append(ci[0])
        n = len(weeks)
        return cls(
            n=n,
            lo=max(-1.0, floor(min(values) * 5) / 5),
            plot_w=float(max(480, min(820, 96 * n))),
        )

    def x_of(self, i: int) -> float:
        return self.plot_x + (i + 0.5) * self.plot_w / self.n

    def y_of(self, v: float) -> float:
        clamped = min(max(v, self.lo), self.hi)
        return self.top + (self.hi - clamped) / (self.hi - self.lo) * self.plot_h


def _week_axes(plot: _WeekPlot, weeks: Sequence[Mapping[str, Any]]) -> list[SafeString]:
    """Horizontal grid lines with their values, and the weeks below (as many as
    fit)."""
    parts: list[SafeString] = []
    right = plot.plot_x + plot.plot_w
    for tick in _ticks(plot.lo, plot.hi):
        ty = plot.y_of(tick)
        stroke = INK if abs(tick) < 1e-9 else GRID
        parts += [
            _el("line", x1=plot.plot_x, x2=right, y1=ty, y2=ty, stroke=stroke),
            _text(
                plot.plot_x - 8,
                ty,
                f"{tick:.1f}",
                text_anchor="end",
                dominant_baseline="central",
                fill=MUTED,
            ),
        ]
    every = max(1, ceil(plot.n * 74 / plot.plot_w))
    below = plot.top + plot.plot_h + 18
    parts += [
        _text(plot.x_of(i), below, w["week"], text_anchor="middle", fill=MUTED)
        for i, w in enumerate(weeks)
        if i % every == 0
    ]
    return parts


def _week_legend(x: float) -> list[SafeString]:
    """The two series' keys, in a line above the plot."""
    return [
        _el("line", x1=x, x2=x + 24, y1=14.0, y2=14.0, stroke=BLUE, stroke_width=2.5),
        _el("circle", cx=x + 12, cy=14.0, r=4, fill=BLUE),
        _text(
            x + 32,
            14,
            "Krippendorff's alpha, 95% interval",
            dominant_baseline="central",
        ),
        _el(
            "line",
            x1=x + 290,
            x2=x + 314,
            y1=14.0,
            y2=14.0,
            stroke=ORANGE,
            stroke_width=2.5,
            stroke_dasharray="6 4",
        ),
        _el("rect", x=x + 298.5, y=10.5, width=7, height=7, fill=ORANGE),
        _text(x + 322, 14, "percent agreement", dominant_baseline="central"),
    ]


def _week_lines(
    plot: _WeekPlot, weeks: Sequence[Mapping[str, Any]]
) -> list[SafeString]:
    """Each series as lines through its weeks, broken where a week has no value."""
    parts = []
    for key, colour, dash in (
        ("percent_agreement", ORANGE, "6 4"),
        ("krippendorff_alpha", BLUE, None),
    ):
        runs: list[list[tuple[float, float]]] = [[]]
        for i, w in enumerate(weeks):
            if w.get(key) is None:
                runs.append([])
            else:
                runs[-1].append((plot.x_of(i), plot.y_of(w[key])))
        parts += [
            _el(
                "polyline",
                points=" ".join(f"{x:.1f},{y:.1f}" for x, y in run),
                fill="none",
                stroke=colour,
                stroke_width=2.5,
                stroke_dasharray=dash,
            )
            for run in runs
            if len(run) > 1
        ]
    return parts


def _interval_marks(x: float, ci: Sequence[float], plot: _WeekPlot) -> list[SafeString]:
    """A vertical interval from ci[0] to ci[1] with a cap at each end."""
    lo, hi = plot.y_of(ci[0]), plot.y_of(ci[1])
    line = {"stroke": BLUE, "stroke_width": 1.5}
    return [
        _el("line", x1=x, x2=x, y1=lo, y2=hi, **line),
        _el("line", x1=x - 4, x2=x + 4, y1=lo, y2=lo, **line),
        _el("line", x1=x - 4, x2=x + 4, y1=hi, y2=hi, **line),
    ]


def _week_points(plot: _WeekPlot, w: Mapping[str, Any], x: float) -> list[SafeString]:
    """A week's agreement (a square) and alpha (a dot with its interval), or why
    alpha is not defined."""
    parts = []
    alpha, agree = w.get("krippendorff_alpha"), w.get("percent_agreement")
    ci = (w.get("ci95") or {}).get("krippendorff_alpha")
    if agree is not None:
        y = plot.y_of(agree) - 3.5
        square = _el("rect", x=x - 3.5, y=y, width=7, height=7, fill=ORANGE)
        parts.append(_group(f"{w['week']}: percent agreement {agree:.3f}", square))
    if alpha is None:
        why = f"{w['week']}: alpha not defined: {_reason(w, 'krippendorff_alpha')}"
        note = _text(
            x,
            plot.top + plot.plot_h - 8,
            "alpha n/a",
            text_anchor="middle",
            fill=MUTED,
            font_size=11,
        )
        return [*parts, _group(why, note)]
    marks = _interval_marks(x, ci, plot) if ci else []
    dot = _el("circle", cx=x, cy=plot.y_of(alpha), r=4.5, fill=BLUE, stroke="#ffffff")
    tooltip = (
        f"{w['week']}: alpha {alpha:.3f}"
        + (f" {fmt_interval(ci)}" if ci else "")
        + f", {w.get('n_items', '?')} dialogues, {w.get('n_votes', '?')} votes"
    )
    return [*parts, _group(tooltip, *marks, dot)]


def over_time(report: Report) -> SafeString:
    """Krippendorff's alpha (with its interval) and percent agreement per ISO week."""
    slug = "over-time"
    title = "Agreement per week: Krippendorff's alpha and percent agreement"
    weeks = report.get("over_time") or []
    if not weeks:
        return _empty(slug, title, "No votes yet.")
    plot = _WeekPlot.of(weeks)
    parts = [
        *_week_axes(plot, weeks),
        *_week_legend(plot.plot_x),
        *_week_lines(plot, weeks),
    ]
    for i, w in enumerate(weeks):
        parts += _week_points(plot, w, plot.x_of(i))
    width, height = plot.plot_x + plot.plot_w + 24, plot.top + plot.plot_h + 32
    return _svg(slug, title, width, height, *parts)


def over_time_numbers(report: Report) -> SafeString:
    rows = [
        (
            w["week"],
            w.get("n_votes", "—"),
            w.get("n_items", "—"),
            fmt(w.get("krippendorff_alpha")),
            fmt_interval((w.get("ci95") or {}).get("krippendorff_alpha")),
            fmt(w.get("fleiss_kappa")),
            fmt(w.get("percent_agreement")),
            _notes(w),
        )
        for w in report.get("over_time") or []
    ]
    return _table(
        (
            "Week",
            "Votes",
            "Dialogues",
            "Alpha",
            "Alpha 95% interval",
            "Fleiss' kappa",
            "Agreement",
            "Note",
        ),
        rows,
        numeric=(1, 2, 3, 4, 5, 6),
        caption="Each dialogue counts in the ISO week of its last human vote.",
    )


# --- 5. Jury versus humans ---------------------------------------------------------------


# (who, confusion, agreement with the human majority, n): the jury's or a judge's.
Panel = tuple[str, Mapping[str, Any], Mapping[str, Any] | None, int]
CELL_W, CELL_H, ROW_LABEL_W = 78, 46, 64  # a confusion matrix's cells, its row names


def _jury_panels(report: Report) -> list[Panel]:
    """(name, confusion, agreement with the human majority, n) of the jury's decision
    and of each judge."""
    jury = report.get("jury")
    if not jury:
        return []
    decisions = jury.get("decisions") or {}
    panels = [
        (
            "Jury decision",
            decisions.get("confusion") or {},
            decisions.get("vs_human"),
            int(decisions.get("n") or 0),
        )
    ]
    for judge in jury.get("judges") or []:
        mine = (jury.get("per_judge") or {}).get(judge) or {}
        panels.append(
            (
                judge,
                mine.get("confusion") or {},
                mine.get("vs_human"),
                int(mine.get("n_votes") or 0),
            )
        )
    return panels


def _place_panels(
    panels: Sequence[Panel],
) -> tuple[list[tuple[Panel, float, float]], float, float]:
    """Each panel's top-left corner, left to right and wrapped to the page's column,
    and the width and height of them all."""
    gap = 36
    placed, x, y, row_height, right = [], 4.0, 0.0, 0.0, 0.0
    for panel in panels:
        n_cols = max((len(r) for r in panel[1].values()), default=2)
        w = ROW_LABEL_W + n_cols * CELL_W
        h = 64 + len(panel[1]) * CELL_H
        if x > 4 and x + w > MAX_WIDTH:
            x, y = 4.0, y + row_height + 24
            row_height = 0.0
        placed.append((panel, x, y))
        right = max(right, x + w)
        x += w + gap
        row_height = max(row_height, h)
    return placed, right + 12, y + row_height + 8


def _confusion_cell(
    who: str, row: str, col: str, count: int, total: int, cx: float, cy: float
) -> SafeString:
    """One cell: its count and share of the row, shaded by the share; the diagonal
    (agreement) outlined."""
    share = count / total if total else 0.0
    ink = "#ffffff" if share >= 0.6 else INK
    middle = cx + CELL_W / 2
    return _group(
        f"human majority {row}, {who} {DECISION_NAMES.get(col, col)}: "
        f"{count} ({share * 100:.1f}% of the row)",
        _el(
            "rect",
            x=cx,
            y=float(cy),
            width=CELL_W,
            height=CELL_H,
            fill=_mix(SEQUENTIAL, share),
            stroke=INK if row == col else "#ffffff",
            stroke_width=2 if row == col else 1,
        ),
        _text(
            middle,
            cy + 19,
            str(count),
            text_anchor="middle",
            font_weight="700",
            font_size=14,
            fill=ink,
        ),
        _text(
            middle,
            cy + 35,
            f"{share * 100:.0f}%" if total else "—",
            text_anchor="middle",
            font_size=11,
            fill=ink,
        ),
    )


def _jury_panel(panel: Panel, px: float, py: float) -> list[SafeString]:
    """A panel: who, their agreement with the humans, and their confusion matrix."""
    name, confusion, vs, n = panel
    heading = _text(px, py + 14, _short(name, 30), font_weight="700", font_size=13)
    stats_text = f"n {n}"
    if vs:
        stats_text = (
            f"agreement {fmt(vs.get('agreement'))} · kappa "
            f"{fmt(vs.get('cohen_kappa'))} · n {vs.get('n', n)}"
        )
    parts = [
        _group(name, heading),
        _text(px, py + 32, stats_text, fill=MUTED, font_size=11),
    ]
    rows = list(confusion)
    cols: list[str] = list(confusion[rows[0]]) if rows else []
    gx, gy = px + ROW_LABEL_W, py + 62
    parts += [
        _text(
            gx + j * CELL_W + CELL_W / 2,
            gy - 8,
            DECISION_NAMES.get(col, col),
            text_anchor="middle",
            fill=MUTED,
            font_size=11,
        )
        for j, col in enumerate(cols)
    ]
    who = "the jury decided" if name == "Jury decision" else f"{name} said"
    for i, row in enumerate(rows):
        total = sum(confusion[row].values())
        cy = gy + i * CELL_H
        parts.append(
            _text(
                gx - 8,
                cy + CELL_H / 2,
                row,
                text_anchor="end",
                dominant_baseline="central",
                fill=MUTED,
            )
        )
        parts += [
            _confusion_cell(
                who, row, col, int(confusion[row][col]), total, gx + j * CELL_W, cy
            )
            for j, col in enumerate(cols)
        ]
    return parts


def jury_confusion(report: Report) -> SafeString:
    """The jury's decisions and each judge against the human majority, as confusion
    matrices (rows: human majority; colour: share of the row)."""
    slug = "jury-confusion"
    title = "Jury against the human majority (rows: human majority)"
    panels = _jury_panels(report)
    if not panels:
        return _empty(slug, title, "No jury votes on this batch yet.")
    placed, width, height = _place_panels(panels)
    parts = [part for panel, px, py in placed for part in _jury_panel(panel, px, py)]
    return _svg(slug, title, width, height, *parts)


def jury_numbers(report: Report) -> SafeString:
    rows = []
    for name, confusion, vs, n in _jury_panels(report):
        for row, counts in confusion.items():
            rows.append(
                (
                    name,
                    row,
                    counts.get(SAFE, "—"),
                    counts.get(UNSAFE, "—"),
                    counts.get(NEEDS_REVIEW, "—"),
                    fmt(vs.get("agreement")) if vs else "—",
                    fmt(vs.get("cohen_kappa")) if vs else "—",
                    vs.get("n", n) if vs else n,
                )
            )
    return _table(
        (
            "Who",
            "Human majority",
            "safe",
            "unsafe",
            "needs review",
            "Agreement",
            "Cohen's kappa",
            "n",
        ),
        rows,
        numeric=(2, 3, 4, 5, 6, 7),
        caption="Agreement and kappa: with the human majority, on dialogues both decided.",
    )


# --- 6. Time per dialogue ---------------------------------------------------------------


@dataclass(frozen=True)
class _TimePlot:
    """The box plots' logarithmic time scale, from `lo` to `hi` milliseconds, and
    where the rows go."""

    lo: float
    hi: float
    plot_x: float
    n: int  # rows
    plot_w: float = 520.0
    top: float = 34.0
    row_h: int = 30

    @classmethod
    def of(
        cls, times: Iterable[Mapping[str, float] | None], fast: float, plot_x: float
    ) -> "_TimePlot":
        """From the nice duration below the fastest time (or the fast threshold) to
        the one above the slowest, twice the lowest at least."""
        times = list(times)
        known = [t for t in times if t]
        lows = [t["min"] for t in known] + ([fast] if fast else [])
        highs = [t["max"] for t in known] + ([fast] if fast else [])
        lo_raw = max(min(lows, default=1_000.0), DURATION_TICKS[0])
        hi_raw = max(max(highs, default=60_000.0), lo_raw * 2)
        lo = max([t for t in DURATION_TICKS if t <= lo_raw], default=DURATION_TICKS[0])
        hi = min([t for t in DURATION_TICKS if t >= hi_raw], default=hi_raw)
        return cls(lo=lo, hi=hi, plot_x=plot_x, n=len(times))

    @property
    def right_x(self) -> float:
        return self.plot_x + self.plot_w + 14  # each row's median, right of the plot

    @property
    def bottom(self) -> float:
        return self.top + self.n * self.row_h

    def x_of(self, ms: float) -> float:
        ms = min(max(ms, self.lo), self.hi)
        span = log10(self.hi) - log10(self.lo)
        return self.plot_x + (log10(ms) - log10(self.lo)) / span * self.plot_w


def _time_axes(plot: _TimePlot) -> list[SafeString]:
    """Striped rows, and the vertical grid at nice durations (fewer on a wide
    range), with the axis' title."""
    parts = [
        _el(
            "rect",
            x=0.0,
            y=plot.top + i * plot.row_h,
            width=plot.right_x + 190,
            height=plot.row_h,
            fill=STRIPE,
        )
        for i in range(plot.n)
        if i % 2 == 0
    ]
    ticks = [t for t in DURATION_TICKS if plot.lo <= t <= plot.hi]
    if len(ticks) > 8:
        ticks = [t for t in ticks if t in SPARSE_DURATION_TICKS]
    bottom = plot.bottom
    for t in ticks:
        tx = plot.x_of(t)
        parts += [
            _el("line", x1=tx, x2=tx, y1=plot.top, y2=bottom, stroke=GRID),
            _text(tx, bottom + 16, duration(t), text_anchor="middle", fill=MUTED),
        ]
    axis = _text(
        plot.plot_x + plot.plot_w / 2,
        bottom + 34,
        "time per dialogue (log scale)",
        text_anchor="middle",
        fill=MUTED,
    )
    return [*parts, axis]


def _time_box(
    name: str, t: Mapping[str, float], mid: float, plot: _TimePlot
) -> SafeString:
    """An annotator's box (the middle half), median and whiskers (fastest, slowest)."""
    x_min, x_25, x_50, x_75, x_max = (
        plot.x_of(t[k]) for k in ("min", "p25", "median", "p75", "max")
    )
    box_h = 16.0
    return _group(
        f"{name}: median {duration(t['median'])}, middle half "
        f"{duration(t['p25'])} to {duration(t['p75'])}, range "
        f"{duration(t['min'])} to {duration(t['max'])}",
        *_whisker(x_min, x_max, mid, MUTED),
        _el(
            "rect",
            x=x_25,
            y=mid - box_h / 2,
            width=max(x_75 - x_25, 1.5),
            height=box_h,
            fill="#cfe6f7",
            stroke=BLUE,
            stroke_width=1.5,
        ),
        _el(
            "line",
            x1=x_50,
            x2=x_50,
            y1=mid - box_h / 2,
            y2=mid + box_h / 2,
            stroke=INK,
            stroke_width=3,
        ),
        class_="box",
    )


def _time_row(
    name: str, annotator: Mapping[str, Any], warned: bool, mid: float, plot: _TimePlot
) -> list[SafeString]:
    """An annotator's box plot and median with the count of fast votes, or a note
    that no times were recorded."""
    t = annotator.get("time_ms")
    if not t:
        none = _text(
            plot.plot_x + 6,
            mid,
            "no times recorded",
            dominant_baseline="central",
            fill=MUTED,
            font_style="italic",
        )
        return [none]
    fast_votes = int(annotator.get("fast_votes") or 0)
    note = f"median {duration(t['median'])}"
    if fast_votes:
        note += f" · {fast_votes} fast"
    return [
        _time_box(name, t, mid, plot),
        _text(
            plot.right_x,
            mid,
            note,
            dominant_baseline="central",
            fill=WARN if fast_votes and warned else MUTED,
        ),
    ]


def _fast_threshold(fast: float, plot: _TimePlot) -> list[SafeString]:
    """The fast-labelling threshold as a dashed line, named above the plot."""
    fx = plot.x_of(fast)
    return [
        _el(
            "line",
            x1=fx,
            x2=fx,
            y1=plot.top - 8,
            y2=plot.bottom,
            stroke=VERMILLION,
            stroke_width=2,
            stroke_dasharray="5 3",
            class_="fast-threshold",
        ),
        _text(
            fx + 4,
            plot.top - 12,
            f"fast: under {duration(fast)}",
            fill=VERMILLION,
            font_weight="700",
            font_size=11,
        ),
    ]


def time_boxplots(report: Report) -> SafeString:
    """Each annotator's time per dialogue as a box plot on a log scale, with the
    fast-labelling threshold."""
    slug = "time-boxplots"
    title = "Time per dialogue per annotator (log scale)"
    names = _names(report)
    if not names:
        return _empty(slug, title, "No human votes yet.")
    annotators = report["annotators"]
    fast = float((report.get("settings") or {}).get("fast_label_ms") or 0)
    warned, limit = _warned(report), 20
    plot_x = _label_width(names, limit, extra=26)
    plot = _TimePlot.of((annotators[n].get("time_ms") for n in names), fast, plot_x)
    parts = _time_axes(plot)
    for i, name in enumerate(names):
        mid = plot.top + i * plot.row_h + plot.row_h / 2
        parts.append(_row_label(plot.plot_x - 10, mid, name, warned, limit))
        parts += _time_row(name, annotators[name], name in warned, mid, plot)
    if fast:
        parts += _fast_threshold(fast, plot)
    width, height = plot.right_x + 180, plot.bottom + 44
    return _svg(slug, title, width, height, *parts)


def time_numbers(report: Report) -> SafeString:
    annotators = report.get("annotators") or {}
    rows = []
    for name in _names(report):
        a = annotators[name]
        t = a.get("time_ms")

        def seconds(key: str, t: Mapping[str, float] | None = t) -> str:
            return fmt(t[key] / 1000) if t else "—"

        rows.append(
            (
                name,
                a.get("n_votes", "—"),
                seconds("min"),
                seconds("p25"),
                seconds("median"),
                seconds("p75"),
                seconds("max"),
                a.get("fast_votes", "—"),
                fmt(a.get("fast_share")),
            )
        )
    fast = (report.get("settings") or {}).get("fast_label_ms")
    return _table(
        (
            "Annotator",
            "Votes",
            "Min s",
            "25% s",
            "Median s",
            "75% s",
            "Max s",
            "Fast votes",
            "Fast share",
        ),
        rows,
        numeric=range(1, 9),
        caption=f"A vote is fast under {duration(fast)}." if fast else "",
    )


# --- the dashboard --------------------------------------------------------------------


def dashboard(report: Report) -> list[Chart]:
    """Every chart of the agreement dashboard, in the page's order."""
    return [
        Chart(
            "kappa-heatmap",
            "Annotators with each other",
            "Cohen's kappa on the dialogue label for each pair of annotators "
            "(1 = always agree, 0 = chance, below 0 = worse than chance). Hatched: not "
            "defined (hover for why); outlined: an annotator with warnings.",
            kappa_heatmap(report),
            kappa_numbers(report),
        ),
        Chart(
            "alpha-bars",
            "Agreement per label and category",
            "Krippendorff's alpha with its 95% bootstrap interval. Dashed lines: "
            "0.667 (tentative conclusions) and 0.8 (reliable).",
            alpha_bars(report),
            alpha_numbers(report),
        ),
        Chart(
            "label-distribution",
            "Labels per annotator",
            "How often each annotator chose each dialogue label.",
            label_distribution(report),
            distribution_numbers(report),
        ),
        Chart(
            "time-boxplots",
            "Time per dialogue",
            "Box: the middle half of an annotator's times, line: median, whiskers: "
            "fastest and slowest. Dashed line: the fast-labelling threshold.",
            time_boxplots(report),
            time_numbers(report),
        ),
        Chart(
            "over-time",
            "Agreement over time",
            "Per ISO week, on the dialogues whose last vote fell in that week.",
            over_time(report),
            over_time_numbers(report),
        ),
        Chart(
            "jury-confusion",
            "Jury and humans",
            "Rows: the human majority (binary); columns: the jury's decision or a "
            "judge's vote. Outlined cells agree; colour: share of the row.",
            jury_confusion(report),
            jury_numbers(report),
        ),
    ]
