"""The weekly report as people read it: plain text (CLI, email), Block Kit (Slack), HTML (email), a PNG chart.

Each figure comes with its change from the week before. Missing values (no inquiries, no escalations) read as
"—" and a quiet week says so, rather than printing 0% deflection.
"""

from __future__ import annotations

import html
import io
from collections.abc import Callable
from typing import Any

from scheduler.report import WeekFigures, WeeklyReport

HYGIENE_LABELS = {
    "auto_reply": "auto-replies ignored",
    "bounce": "bounces",
    "list": "mailing-list mail ignored",
    "loop": "loops stopped",
    "quarantined": "quarantined messages",
}


def _count(now: int, before: int) -> str:
    delta = now - before
    return f"{now} ({delta:+d})" if delta else f"{now} (=)"


def _rate(now: float | None, before: float | None) -> str:
    if now is None:
        return "—"
    text = f"{now:.0%}"
    return f"{text} ({(now - before) * 100:+.0f} pts)" if before is not None else text


def _minutes(now: float | None, before: float | None) -> str:
    if now is None:
        return "—"
    text = _duration(now)
    if before is None:
        return text
    delta = now - before
    return f"{text} ({delta:+.0f} min)" if abs(delta) < 120 else f"{text} ({delta / 60:+.1f} h)"


def _duration(minutes: float) -> str:
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def _money(now: float, before: float) -> str:
    return f"${now:.2f} ({now - before:+.2f})"


def report_lines(report: WeeklyReport) -> list[tuple[str, str]]:
    """(label, value with change) pairs, shared by every renderer."""
    c, p = report.current, report.previous
    channels = ", ".join(f"{name} {n}" for name, n in c.by_channel) or "none"
    lines = [
        ("Inquiries", _count(c.inquiries, p.inquiries)),
        ("By channel", channels),
        ("Answered", _count(c.answered, p.answered)),
        ("Abstained", _count(c.abstained, p.abstained)),
        ("Escalated", _count(c.escalated, p.escalated)),
        ("Deflection rate", _rate(c.deflection_rate, p.deflection_rate)),
        ("Feedback 👍 / 👎", f"{_count(c.thumbs_up, p.thumbs_up)} / {_count(c.thumbs_down, p.thumbs_down)}"),
        ("Escalated conversations", _count(c.escalations, p.escalations)),
        (
            "Time to a person (median / p90)",
            f"{_minutes(c.first_response_median_min, p.first_response_median_min)} / "
            f"{_minutes(c.first_response_p90_min, p.first_response_p90_min)}",
        ),
        ("Awaiting a person", str(c.awaiting_person)),
        (
            "Tickets opened / resolved",
            f"{_count(c.tickets_opened, p.tickets_opened)} / {_count(c.tickets_resolved, p.tickets_resolved)}",
        ),
    ]
    before = dict(p.hygiene)
    lines += [(HYGIENE_LABELS[kind].capitalize(), _count(n, before.get(kind, 0))) for kind, n in c.hygiene]
    lines += [
        (
            "LLM tokens (in / out)",
            f"{_count(c.input_tokens, p.input_tokens)} / {_count(c.output_tokens, p.output_tokens)}",
        ),
        ("LLM cost", _money(c.cost_usd, p.cost_usd)),
    ]
    return lines


def title(report: WeeklyReport) -> str:
    return f"Support report {report.week.label} ({report.timezone})"


def _summary(c: WeekFigures) -> str:
    if c.inquiries == 0:
        return "No inquiries this week."
    rate = c.deflection_rate or 0.0
    return f"{c.inquiries} inquiries; the bot answered {c.answered} ({rate:.0%}) and escalated {c.escalated}."


def render_text(report: WeeklyReport) -> str:
    """Plain text: `supportbot report --dry-run` and the email body."""
    lines = report_lines(report)
    width = max(len(label) for label, _ in lines)
    out = [title(report), "(changes are against the week before)", "", _summary(report.current), ""]
    out += [f"{label.ljust(width)}  {value}" for label, value in lines]
    out += ["", "Top knowledge gaps:"]
    out += [f"  {g.count:>4}  {g.label}  [{g.trend}]" for g in report.top_gaps] or ["  none open"]
    return "\n".join(out) + "\n"


def render_blocks(report: WeeklyReport) -> list[dict[str, Any]]:
    """Slack Block Kit: header, summary, the figures as fields (at most 10 per section), the gaps."""
    lines = report_lines(report)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title(report)[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _summary(report.current)}},
    ]
    for start in range(0, len(lines), 10):
        fields = [{"type": "mrkdwn", "text": f"*{label}*\n{value}"} for label, value in lines[start : start + 10]]
        blocks.append({"type": "section", "fields": fields})
    gaps = "\n".join(f"• {g.label} — {g.count} ({g.trend})" for g in report.top_gaps) or "none open"
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*Top knowledge gaps*\n{gaps}"[:3000]}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": "Changes are against the week before."}]})
    return blocks


def render_html(report: WeeklyReport) -> str:
    """HTML for the optional email."""
    esc: Callable[[str], str] = html.escape
    rows = "".join(
        f"<tr><th align='left'>{esc(label)}</th><td>{esc(value)}</td></tr>" for label, value in report_lines(report)
    )
    gaps = (
        "".join(f"<li>{esc(g.label)} — {g.count} ({esc(g.trend)})</li>" for g in report.top_gaps)
        or "<li>none open</li>"
    )
    return (
        f"<h2>{esc(title(report))}</h2><p>{esc(_summary(report.current))}</p><table>{rows}</table>"
        f"<h3>Top knowledge gaps</h3><ul>{gaps}</ul><p><small>Changes are against the week before.</small></p>"
    )


def render_chart(report: WeeklyReport) -> bytes:
    """A PNG bar chart of inquiries per day by outcome (matplotlib, Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    days = [d.day.strftime("%a %d") for d in report.daily]
    answered = [d.answered for d in report.daily]
    abstained = [d.abstained for d in report.daily]
    escalated = [d.escalated for d in report.daily]
    figure = Figure(figsize=(8, 4), dpi=100)
    axes = figure.subplots()
    axes.bar(days, answered, label="answered", color="#2e7d32")
    axes.bar(days, abstained, bottom=answered, label="abstained", color="#f9a825")
    axes.bar(
        days,
        escalated,
        bottom=[a + b for a, b in zip(answered, abstained, strict=True)],
        label="escalated",
        color="#c62828",
    )
    axes.set_title(f"Inquiries per day, {report.week.label}" + (" (no inquiries)" if report.quiet else ""))
    axes.set_ylabel("inquiries")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend(loc="upper right")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
