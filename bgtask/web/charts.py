"""Stacked bar charts for the admin dashboard, laid out here and drawn as inline SVG by the
template: no JavaScript, no CDN, and colours that come from CSS classes, so they follow the
admin's light and dark themes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

SERIES = ("succeeded", "retried", "failed")
WIDTH, HEIGHT = 720, 180
LEFT, BOTTOM, TOP = 44, 22, 8  # room for the axis labels


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: str
    title: str


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str


@dataclass
class Chart:
    width: int = WIDTH
    height: int = HEIGHT
    bars: list[Bar] = field(default_factory=list)
    x_labels: list[Label] = field(default_factory=list)
    y_labels: list[Label] = field(default_factory=list)
    grid: list[float] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)
    left: int = LEFT
    plot_bottom: float = HEIGHT - BOTTOM


def _nice_max(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten that is >= value (at least 1)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def stacked_bars(points: list[dict[str, Any]], label_every: int, time_format: str) -> Chart:
    """One bar per point (``{"start": datetime, "succeeded": n, "retried": n, "failed": n}``),
    the series stacked bottom to top; an x label every ``label_every`` bars."""
    chart = Chart()
    chart.totals = {name: sum(p[name] for p in points) for name in SERIES}
    if not points:
        return chart
    top = _nice_max(max(sum(p[name] for name in SERIES) for p in points))
    plot_height = HEIGHT - BOTTOM - TOP
    slot = (WIDTH - LEFT) / len(points)
    gap = max(1.0, slot * 0.15)
    for i, point in enumerate(points):
        x = LEFT + i * slot + gap / 2
        base = HEIGHT - BOTTOM
        start: datetime = point["start"]
        for name in SERIES:
            if not point[name]:
                continue
            height = point[name] / top * plot_height
            base -= height
            title = f"{start.strftime(time_format)}: {point[name]} {name}"
            chart.bars.append(Bar(round(x, 2), round(base, 2), round(slot - gap, 2),
                                  round(height, 2), name, title))  # fmt: skip
        if i % label_every == 0:
            chart.x_labels.append(
                Label(round(x + (slot - gap) / 2, 2), HEIGHT - 6, start.strftime(time_format))
            )
    for fraction in (0, 0.5, 1) if top > 1 else (0, 1):
        y = round(HEIGHT - BOTTOM - fraction * plot_height, 2)
        chart.grid.append(y)
        chart.y_labels.append(Label(LEFT - 6, y + 4, f"{top * fraction:,.0f}"))
    return chart
