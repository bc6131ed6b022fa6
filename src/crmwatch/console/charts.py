"""Geometry of the console's two plots, drawn as inline SVG by the templates (no script).

Numbers stay numbers here: every mark carries its count, which the page shows in a
``<title>`` (a tooltip) and in a ``data-`` attribute the browser tests read back.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

from crmwatch.timeutil import iso_z

WIDTH = 900
LEFT = 90  # room for the lane names
LANES = ("okta", "salesforce")
LANE_HEIGHT = 46
TOP = 18


@dataclass
class Mark:
    x: float
    y: float
    w: float
    h: float
    count: int
    label: str


@dataclass
class Line:
    x: float
    kind: str  # first-malicious | detection | alert
    label: str


@dataclass
class Timeline:
    width: int
    height: int
    lanes: list[tuple[str, float]]
    bars: list[Mark]
    lines: list[Line]
    start: str
    end: str
    totals: dict[str, int] = field(default_factory=dict)


def timeline_plot(activity: list[dict], bins: int, start: dt.datetime, end: dt.datetime,
                  alerts: list[tuple[dt.datetime, str]], first_alert: dt.datetime
                  ) -> Timeline:  # fmt: skip
    """Events per slice and source as bars on a lane each (height by log scale, so one
    export of thousands does not flatten a handful of logins), with the first malicious
    event, the detection and every alert as vertical lines on the same time axis."""
    span = max((end - start).total_seconds(), 1.0)
    plot_w = WIDTH - LEFT - 10
    bin_w = plot_w / bins
    peak = max((a["events"] for a in activity), default=1)
    lanes = [(name, TOP + i * (LANE_HEIGHT + 8)) for i, name in enumerate(LANES)]
    lane_y = dict(lanes)
    bars, totals = [], dict.fromkeys(LANES, 0)
    for a in activity:
        lane = a["source"] if a["source"] in lane_y else "salesforce"
        h = max(2.0, LANE_HEIGHT * math.log1p(a["events"]) / math.log1p(peak))
        slice_start = start + dt.timedelta(seconds=span * a["bin"] / bins)
        bars.append(Mark(LEFT + a["bin"] * bin_w, lane_y[lane] + LANE_HEIGHT - h,
                         max(bin_w - 1, 1.0), h, a["events"],
                         f"{a['events']:,} {lane} events from {iso_z(slice_start)}"))  # fmt: skip
        totals[lane] += a["events"]

    def x(t: dt.datetime) -> float:
        return LEFT + plot_w * min(max((t - start).total_seconds() / span, 0.0), 1.0)

    lines = [Line(x(start), "first-malicious", f"first malicious event {iso_z(start)}")]
    lines += [Line(x(t), "alert", f"{iso_z(t)} {title}") for t, title in alerts]
    lines.append(Line(x(first_alert), "detection", f"detection {iso_z(first_alert)}"))
    height = TOP + len(LANES) * (LANE_HEIGHT + 8) + 14
    return Timeline(WIDTH, height, lanes, bars, lines, iso_z(start) or "", iso_z(end) or "",
                    totals)  # fmt: skip


@dataclass
class Bars:
    width: int
    height: int
    rows: list[Mark]


def bar_chart(counts: dict[str, int], limit: int = 15) -> Bars:
    """Horizontal bars, largest first; the rest summed into one bar so the total holds."""
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(items) > limit:
        rest = sum(v for _, v in items[limit - 1 :])
        items = [*items[: limit - 1], (f"{len(items) - limit + 1} others", rest)]
    peak = max((v for _, v in items), default=1) or 1
    row_h, label_w, plot_w = 20, 130, 420
    rows = [
        Mark(label_w, i * row_h, max(plot_w * v / peak, 1.0), row_h - 4, v, k)
        for i, (k, v) in enumerate(items)
    ]
    return Bars(label_w + plot_w + 90, max(len(rows) * row_h, row_h), rows)
