"""The small harness every benchmark uses: time things, print figures and ratios as a table (and JSON).

A benchmark is a module in `bench/` with `async def run(report: Report, quick: bool) -> None`; `python -m bench
NAME [--quick] [--json]` runs it. Figures are printed, never judged: goals live in the closing notes and README.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100) of a non-empty sequence."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


@dataclass
class Timer:
    """Collects durations in milliseconds."""

    samples_ms: list[float] = field(default_factory=list)

    @contextmanager
    def measure(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.samples_ms.append((time.perf_counter() - start) * 1000)

    def summary(self) -> dict[str, float]:
        s = self.samples_ms
        return {
            "n": float(len(s)),
            "p50_ms": percentile(s, 50),
            "p95_ms": percentile(s, 95),
            "p99_ms": percentile(s, 99),
            "mean_ms": statistics.fmean(s) if s else float("nan"),
        }


@dataclass
class Report:
    """Rows of (name, value, unit, note) printed as an aligned table at the end of a run."""

    title: str
    rows: list[tuple[str, float, str, str]] = field(default_factory=list)

    def add(self, name: str, value: float, unit: str = "", note: str = "") -> None:
        self.rows.append((name, value, unit, note))

    def add_timer(self, name: str, timer: Timer) -> None:
        summary = timer.summary()
        for key in ("p50_ms", "p95_ms", "p99_ms"):
            self.add(f"{name} {key[:3]}", summary[key], "ms", f"n={int(summary['n'])}")

    def ratio(self, name: str, numerator: float, denominator: float, note: str = "") -> None:
        self.add(name, numerator / denominator if denominator else float("nan"), "x", note)

    def render(self) -> str:
        width = max([len(r[0]) for r in self.rows] + [10])
        lines = [f"== {self.title} =="]
        for name, value, unit, note in self.rows:
            lines.append(f"{name:<{width}}  {value:>12.3f} {unit:<6} {note}".rstrip())
        return "\n".join(lines)

    def as_json(self) -> str:
        return json.dumps(
            {"title": self.title, "rows": [{"name": n, "value": v, "unit": u, "note": t} for n, v, u, t in self.rows]}
        )
