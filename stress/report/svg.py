"""Inline SVG line charts for report.html: no script, no external resource, styled by the page."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from stress.report.tables import abbreviate

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 62, 16, 14, 38
LABEL_CHAR_WIDTH, LABEL_HEIGHT = 7.0, 14.0  # rough size of a 12px label, for overlap checks
MAX_POINTS = 800  # more points than pixels only makes the file bigger


@dataclass(frozen=True, kw_only=True)
class Guide:
    """A horizontal reference line: a threshold, the run's mean, a baseline."""

    value: float
    label: str
    kind: str  # CSS class: "limit", "mean" or "baseline"


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]: steps of 1, 2 or 5 times a power of ten."""
    if high <= low:
        high = low + 1
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value < high + step * 0.999:
        ticks.append(round(value, 10))
        value += step
    return ticks


def tick_label(value: float) -> str:
    """150 -> "150", 0.05 -> "0.05", 22000 -> "22K": short, and distinct for round ticks."""
    if abs(value) >= 1000:
        return abbreviate(value)
    return f"{value:.3g}"


def downsample(points: Sequence[tuple[float, float]],
               limit: int = MAX_POINTS) -> list[tuple[float, float]]:
    if len(points) <= limit:
        return list(points)
    stride = math.ceil(len(points) / limit)
    kept = list(points[::stride])
    if kept[-1] != points[-1]:
        kept.append(points[-1])
    return kept


def line_chart(points: Sequence[tuple[float, float]], *, title: str, y_label: str,
               guides: Sequence[Guide] = (), kind: str = "") -> str:
    """An SVG chart of y over seconds; a short note instead when there is nothing to draw."""
    if len(points) < 2:
        return f'<p class="no-data">{escape(title)}: not enough samples to plot.</p>'
    points = downsample(points)
    x_max = max(points[-1][0], 1e-9)
    values = [y for _, y in points] + [g.value for g in guides]
    y_ticks = nice_ticks(min(0.0, *values), max(values) * 1.05 or 1.0)
    y_low, y_high = y_ticks[0], y_ticks[-1]
    x_ticks = [t for t in nice_ticks(0.0, x_max) if t <= x_max * 1.0001]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + x / x_max * plot_w

    def sy(y: float) -> float:
        return TOP + (y_high - y) / (y_high - y_low) * plot_h

    parts = [f'<svg class="chart {escape(kind)}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'aria-label="{escape(title)}">',
             f"<title>{escape(title)}</title>", '<g class="grid">']
    for tick in y_ticks:
        y = sy(tick)
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>')
        parts.append(f'<text class="y-tick" x="{LEFT - 6}" y="{y + 4:.1f}" '
                     f'text-anchor="end">{tick_label(tick)}</text>')
    for tick in x_ticks:
        x = sx(tick)
        parts.append(f'<text class="x-tick" x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" '
                     f'text-anchor="middle">{tick_label(tick)}</text>')
    parts.append("</g>")
    parts.append(f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" '
                 f'y2="{TOP + plot_h}"/>')
    parts.append(f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}"/>')
    placed: list[tuple[float, float, float]] = []  # labels drawn so far: y, left, right
    for guide in guides:
        y = sy(guide.value)
        parts.append(f'<line class="guide {escape(guide.kind)}" x1="{LEFT}" y1="{y:.1f}" '
                     f'x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>')
        # Guides close together (a baseline equal to the mean) would print labels on top of
        # each other: move this one left of any label it would overlap.
        right = WIDTH - RIGHT - 4.0
        width = LABEL_CHAR_WIDTH * len(guide.label)
        for other_y, other_left, other_right in sorted(placed, key=lambda p: -p[2]):
            if abs(other_y - y) < LABEL_HEIGHT and right - width < other_right and \
                    right > other_left:
                right = other_left - 10
        placed.append((y, right - width, right))
        parts.append(f'<text class="guide-label {escape(guide.kind)}" x="{right:.1f}" '
                     f'y="{y - 4:.1f}" text-anchor="end">{escape(guide.label)}</text>')
    coordinates = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
    parts.append(f'<polyline class="series" points="{coordinates}"/>')
    parts.append(f'<text class="axis-title" x="{LEFT + plot_w / 2:.0f}" y="{HEIGHT - 4}" '
                 'text-anchor="middle">seconds</text>')
    parts.append(f'<text class="axis-title" x="14" y="{TOP + plot_h / 2:.0f}" '
                 f'text-anchor="middle" transform="rotate(-90 14 {TOP + plot_h / 2:.0f})">'
                 f"{escape(y_label)}</text>")
    parts.append("</svg>")
    return "\n".join(parts)
