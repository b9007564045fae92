"""Small server-rendered SVG charts (no script, no library): readable at any network size.

A chart is a ``<figure>`` with an SVG whose ``role="img"`` and title say what it shows, and a
table of the same figures for screen readers and copy-paste. Bars scale to the largest
value; labels are the locale's numbers (:class:`coalition.web.i18n.Formatter`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol

from markupsafe import Markup, escape

from coalition.web.i18n import Formatter

WIDTH, HEIGHT, PAD_TOP, PAD_BOTTOM, PAD_SIDE = 640, 220, 16, 36, 56


class WeekLike(Protocol):
    @property
    def monday(self) -> dt.date: ...  # the day the week is named by
    @property
    def issued(self) -> int: ...
    @property
    def honored(self) -> int: ...


def weekly_bars(weeks: Sequence[WeekLike], t: Formatter) -> Markup:
    """Points issued and honored per week, side by side, with a legend."""
    title = t.gettext("Points issued and honored per week")
    top = max([1, *(max(w.issued, w.honored) for w in weeks)])
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    slot = (WIDTH - 2 * PAD_SIDE) / max(1, len(weeks))
    bar = slot * 0.36
    parts = [f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-title" class="chart">',
             f'<title id="chart-title">{escape(title)}</title>',
             f'<line x1="{PAD_SIDE}" y1="{HEIGHT - PAD_BOTTOM}" x2="{WIDTH - PAD_SIDE}" y2="{HEIGHT - PAD_BOTTOM}" '
             'class="axis"/>',
             f'<text x="{PAD_SIDE - 6}" y="{PAD_TOP + 4}" text-anchor="end" class="tick">'
             f'{escape(t.number(top))}</text>',
             f'<text x="{PAD_SIDE - 6}" y="{HEIGHT - PAD_BOTTOM}" text-anchor="end" class="tick">0</text>']
    for i, week in enumerate(weeks):
        x = PAD_SIDE + i * slot + slot * 0.14
        for j, (value, css) in enumerate(((week.issued, "issued"), (week.honored, "honored"))):
            h = plot_h * value / top
            parts.append(f'<rect x="{x + j * bar:.1f}" y="{HEIGHT - PAD_BOTTOM - h:.1f}" width="{bar:.1f}" '
                         f'height="{h:.1f}" class="{css}"><title>{escape(t.number(value))}</title></rect>')
        if i % 2 == 0 or len(weeks) <= 6:
            label = t.date(week.monday)
            parts.append(f'<text x="{x + bar:.1f}" y="{HEIGHT - PAD_BOTTOM + 16}" text-anchor="middle" '
                         f'class="tick">{escape(label)}</text>')
    parts.append("</svg>")
    legend = (f'<p class="legend"><span class="key issued"></span>{escape(t.gettext("Issued"))} '
              f'<span class="key honored"></span>{escape(t.gettext("Honored"))}</p>')
    return Markup(f'<figure>{"".join(parts)}{legend}</figure>')
