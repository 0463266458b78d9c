"""Chart geometry for the dashboard, drawn as inline SVG by ``templates/_charts.html``.

The server lays the charts out and the template only places shapes, so the
page needs no script and no external asset to show them, and every label -
model and action names are user data - goes through the template's
autoescaping like any other text.  Two shapes cover the dashboard:

* :func:`columns`: vertical bars over time (activity);
* :func:`bars`: horizontal stacked bars, one row per label (tokens by model,
  latency, errors, feedback).  A "p50 inside p95" or "errors inside calls"
  bar is a stack of the smaller value and the rest.

Every bar keeps its number (``value``) so the page can show it as a
``data-value`` attribute and a tooltip, and tests can read it back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

WIDTH = 520
ROW_HEIGHT = 24
LABEL_WIDTH = 120
CAPTION_WIDTH = 150
COLUMN_HEIGHT = 100
#: Room above the columns for the "max" label, and below them for the axis labels.
TOP_HEIGHT = 14
AXIS_HEIGHT = 16
SENTIMENTS = ("positive", "neutral", "negative")


@dataclass(frozen=True)
class Segment:
    """One piece of a horizontal bar: where it sits, its number and its colour class."""

    x: float
    width: float
    value: float
    css: str
    title: str


@dataclass(frozen=True)
class Row:
    """A labelled horizontal bar with a caption on its right."""

    label: str
    y: float
    segments: tuple[Segment, ...]
    caption: str
    key: str


@dataclass(frozen=True)
class BarChart:
    """Horizontal stacked bars; ``legend`` is ``(css class, name)`` pairs."""

    width: int
    height: int
    label_width: int
    caption_x: int
    row_height: int
    rows: tuple[Row, ...]
    legend: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Column:
    """One vertical bar; ``tick`` is its axis label (empty on most columns)."""

    x: float
    y: float
    width: float
    height: float
    value: int
    title: str
    tick: str
    start: str


@dataclass(frozen=True)
class ColumnChart:
    """Vertical bars over time, with the maximum marked on the axis."""

    width: int
    height: int
    plot_top: int
    plot_bottom: int
    columns: tuple[Column, ...]
    max_value: int
    css: str


def bars(
    rows: Sequence[tuple[str, Sequence[tuple[float, str, str]], str]],
    *,
    legend: Sequence[tuple[str, str]] = (),
    scale_max: float | None = None,
) -> BarChart:
    """Lay out horizontal stacked bars.

    Args:
        rows: ``(label, [(value, css class, tooltip), ...], caption)`` per
            row; segments are stacked left to right.
        legend: ``(css class, name)`` pairs shown under the chart.
        scale_max: the value of a full-width bar (default: the longest row).

    Returns:
        The chart; a row's ``key`` is its label (for ``data-key``).
    """
    plot = WIDTH - LABEL_WIDTH - CAPTION_WIDTH
    longest = max((sum(v for v, _, _ in segs) for _, segs, _ in rows), default=0.0)
    top = scale_max if scale_max else longest
    laid = []
    for index, (label, segments, caption) in enumerate(rows):
        x = float(LABEL_WIDTH)
        pieces = []
        for value, css, title in segments:
            width = plot * value / top if top > 0 else 0.0
            pieces.append(Segment(x, width, value, css, title))
            x += width
        laid.append(Row(label, index * ROW_HEIGHT, tuple(pieces), caption, label))
    return BarChart(
        width=WIDTH,
        height=max(1, len(rows)) * ROW_HEIGHT,
        label_width=LABEL_WIDTH,
        caption_x=WIDTH - CAPTION_WIDTH + 6,
        row_height=ROW_HEIGHT,
        rows=tuple(laid),
        legend=tuple(legend),
    )


def columns(
    points: Sequence[tuple[str, str, int]], *, css: str, every: int | None = None
) -> ColumnChart:
    """Lay out vertical bars over time.

    Args:
        points: ``(start ISO, axis label, value)`` per bucket, oldest first.
        css: the bars' colour class.
        every: label every n-th column (default: about eight labels).

    Returns:
        The chart; a column's ``tick`` is its label or ``""``.
    """
    count = max(1, len(points))
    slot = WIDTH / count
    top = max((v for _, _, v in points), default=0)
    step = every or max(1, math.ceil(count / 8))
    laid = []
    for index, (start, label, value) in enumerate(points):
        height = COLUMN_HEIGHT * value / top if top else 0.0
        laid.append(
            Column(
                x=index * slot + slot * 0.1,
                y=TOP_HEIGHT + COLUMN_HEIGHT - height,
                width=slot * 0.8,
                height=height,
                value=value,
                title=f"{label}: {value}",
                tick=label if index % step == 0 else "",
                start=start,
            )
        )
    return ColumnChart(
        width=WIDTH,
        height=TOP_HEIGHT + COLUMN_HEIGHT + AXIS_HEIGHT,
        plot_top=TOP_HEIGHT,
        plot_bottom=TOP_HEIGHT + COLUMN_HEIGHT,
        columns=tuple(laid),
        max_value=top,
        css=css,
    )


def number(value: float | None, digits: int = 0) -> str:
    """*value* with thousands separators and *digits* decimals; ``—`` for ``None``."""
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def _bucket_label(start: str, unit: str) -> str:
    moment = datetime.fromisoformat(start)
    return moment.strftime("%H:00") if unit == "hour" else moment.strftime("%b %d")


Part = tuple[str, tuple[float, str], tuple[float, str], str]


def _two_part(
    items: Sequence[Mapping[str, Any]],
    part: Callable[[Mapping[str, Any]], Part],
    legend: tuple[tuple[str, str], tuple[str, str]],
) -> BarChart | None:
    """A two-colour bar per item (``None`` without items).

    *part* gives an item's ``(label, (first value, tooltip), (rest value,
    tooltip), caption)``; the colours are *legend*'s.
    """
    if not items:
        return None
    (first_css, _), (rest_css, _) = legend
    rows = []
    for label, (first, first_title), (rest, rest_title), caption in map(part, items):
        rows.append(
            (label, [(first, first_css, first_title), (rest, rest_css, rest_title)], caption)
        )
    return bars(rows, legend=legend)


def dashboard(data: Mapping[str, Any]) -> dict[str, Any]:
    """The dashboard's charts, laid out from :meth:`Storage.dashboard`'s numbers.

    Returns:
        ``{"events", "conversations"}`` column charts and ``{"tokens",
        "latency", "errors", "feedback"}`` bar charts (``None`` when there is
        nothing to draw).
    """
    activity = data["activity"]
    unit = activity["unit"]
    points = [(b["start"], _bucket_label(b["start"], unit), b) for b in activity["buckets"]]
    charts: dict[str, Any] = {
        "unit": unit,
        "events": columns([(s, label, b["events"]) for s, label, b in points], css="c-events")
        if points
        else None,
        "conversations": columns(
            [(s, label, b["conversations"]) for s, label, b in points], css="c-conversations"
        )
        if points
        else None,
    }
    charts["tokens"] = _two_part(
        data["tokens_by_model"],
        lambda t: (
            t["model"] or "(model not stated)",
            (t["input_tokens"], f"input {t['input_tokens']:,}"),
            (t["output_tokens"], f"output {t['output_tokens']:,}"),
            f"{t['total_tokens']:,} tokens",
        ),
        (("c-input", "input"), ("c-output", "output")),
    )
    charts["latency"] = _two_part(
        [a for a in data["actions"] if a["p95_ms"] is not None],
        lambda a: (
            a["action_name"],
            (a["p50_ms"], f"p50 {a['p50_ms']:,.1f} ms"),
            (a["p95_ms"] - a["p50_ms"], f"p95 {a['p95_ms']:,.1f} ms"),
            f"p50 {number(a['p50_ms'])} · p95 {number(a['p95_ms'])} ms",
        ),
        (("c-p50", "p50"), ("c-p95", "p95")),
    )
    charts["errors"] = _two_part(
        data["actions"],
        lambda a: (
            a["action_name"],
            (a["errors"], f"{a['errors']} failed"),
            (a["calls"] - a["errors"], f"{a['calls'] - a['errors']} succeeded"),
            f"{a['errors']} of {a['calls']} failed",
        ),
        (("c-error", "failed"), ("c-ok", "succeeded")),
    )
    feedback = data["feedback"]
    rows = [("all feedback", feedback["by_sentiment"])] + [
        (f"from {source}", counts) for source, counts in sorted(feedback["by_source"].items())
    ]
    charts["feedback"] = (
        bars(
            [
                (
                    label,
                    [(counts[s], f"c-{s}", f"{counts[s]} {s}") for s in SENTIMENTS],
                    " · ".join(f"{counts[s]} {s[:3]}" for s in SENTIMENTS),
                )
                for label, counts in rows
            ],
            legend=tuple((f"c-{s}", s) for s in SENTIMENTS),
        )
        if feedback["total"]
        else None
    )
    return charts
