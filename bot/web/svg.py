"""Line charts drawn on the server as inline SVG (no JavaScript, no CDN: works offline)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from html import escape

WIDTH, HEIGHT = 720, 240
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 64, 16, 16, 28


@dataclass(frozen=True, slots=True)
class Series:
    """One line: a label, a CSS colour and (time, value) points, oldest first."""

    label: str
    colour: str
    points: Sequence[tuple[datetime, Decimal]]


def line_chart(title: str, series: Sequence[Series]) -> str:
    """Return an `<svg>` element plotting every series against one time and value axis."""
    drawn = [s for s in series if s.points]
    head = (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>"
    )
    if not drawn:
        return (
            f'{head}<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" '
            f'class="empty">no data yet</text></svg>'
        )
    times = [p[0].timestamp() for s in drawn for p in s.points]
    values = [float(p[1]) for s in drawn for p in s.points]
    t0, t1 = min(times), max(times)
    v0, v1 = min(values), max(values)
    if t1 == t0:
        t0, t1 = t0 - 1, t1 + 1
    if v1 == v0:
        v0, v1 = v0 - 1, v1 + 1
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM

    def x(t: float) -> float:
        return PAD_LEFT + (t - t0) / (t1 - t0) * plot_w

    def y(v: float) -> float:
        return PAD_TOP + (1 - (v - v0) / (v1 - v0)) * plot_h

    parts = [head, '<g class="axes">']
    for frac in (0.0, 0.5, 1.0):
        v = v0 + frac * (v1 - v0)
        parts.append(
            f'<line x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}" />'
            f'<text x="{PAD_LEFT - 4}" y="{y(v) + 4:.1f}" text-anchor="end">{v:,.2f}</text>'
        )
    for t, anchor in ((t0, "start"), (t1, "end")):
        label = datetime.fromtimestamp(t, tz=drawn[0].points[0][0].tzinfo)
        parts.append(
            f'<text x="{x(t):.1f}" y="{HEIGHT - 8}" text-anchor="{anchor}">'
            f"{label:%Y-%m-%d %H:%M}</text>"
        )
    parts.append("</g>")
    for i, s in enumerate(drawn):
        coords = " ".join(f"{x(p[0].timestamp()):.1f},{y(float(p[1])):.1f}" for p in s.points)
        parts.append(
            f'<polyline class="series" data-label="{escape(s.label)}" fill="none" '
            f'stroke="{escape(s.colour)}" stroke-width="2" points="{coords}" />'
            f'<text x="{PAD_LEFT + 8 + i * 180}" y="{PAD_TOP + 12}" fill="{escape(s.colour)}">'
            f"{escape(s.label)}: {float(s.points[-1][1]):,.2f}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
