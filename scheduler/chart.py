"""The report's chart: small multiples of the headline figures over the trend weeks, as a PNG.

matplotlib with the Agg backend (no display needed), one panel per series, the report's week highlighted. A week
with nothing to measure (no answers, no hand-offs) is a gap in its line, not a zero.
"""

from __future__ import annotations

import io
from typing import Any

from scheduler.report import Series, WeeklyReport

COLUMNS = 3


def render_chart(report: WeeklyReport) -> bytes:
    """A 1000x600 PNG: one small line chart per headline figure, TREND_WEEKS weeks each."""
    import matplotlib  # lazy: matplotlib takes a second to import and only the report draws

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    series = report.series
    labels = [p.label.split("-")[-1] for p in report.trend]  # "W49"
    rows = (len(series) + COLUMNS - 1) // COLUMNS
    figure = Figure(figsize=(10, 6), dpi=100)
    axes_grid = figure.subplots(rows, COLUMNS, squeeze=False)
    for n, s in enumerate(series):
        axes = axes_grid[n // COLUMNS][n % COLUMNS]
        _panel(axes, s, labels)
        if s.unit == "rate":
            axes.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
            axes.set_ylim(0, 1.05)
        else:
            axes.yaxis.set_major_locator(MaxNLocator(integer=s.unit == "count"))
            axes.set_ylim(bottom=0)
    for n in range(len(series), rows * COLUMNS):
        axes_grid[n // COLUMNS][n % COLUMNS].set_visible(False)
    figure.suptitle(f"Last {len(labels)} weeks to {report.week.label}" + (" (no inquiries)" if report.quiet else ""))
    figure.subplots_adjust(left=0.06, right=0.98, top=0.88, bottom=0.07, hspace=0.4, wspace=0.25)  # tight_layout
    # would double the drawing time
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _panel(axes: Any, s: Series, labels: list[str]) -> None:
    values = [float("nan") if v is None else v for v in s.values]
    x = list(range(len(labels)))  # positions, not categories: a week without a value keeps its place
    axes.plot(x, values, marker="o", color="#1565c0")
    if s.now is not None:
        axes.plot([x[-1]], [s.now], marker="o", markersize=9, color="#c62828")
    axes.set_xticks(x, labels)
    axes.set_xlim(-0.5, len(labels) - 0.5)
    unit = ", minutes" if s.unit == "minutes" else ""
    axes.set_title(s.name.replace("👎", "Thumbs-down") + unit, fontsize=10)  # the default font has no emoji
    axes.tick_params(axis="x", labelsize=7)
    axes.grid(alpha=0.3)
