"""The weekly report as people read it: one document (`report_document`) rendered as plain text (CLI, the email's
text part) and HTML (the email, chart inline); `scheduler.blocks` renders the same document for Slack.

Every renderer prints the same strings, so a figure reads the same in Slack, email and the terminal. Missing
values (no inquiries, no hand-offs) read as "—" and a quiet week says so, rather than printing 0%.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from scheduler.quality import ALL, HEADLINE_DEFINITION, PERSON_SIGNAL, Quality
from scheduler.report import TREND_WEEKS, Operations, Series, WeeklyReport

CHART_CID = "weekly-chart@supportbot.report"
HYGIENE_LABELS = {
    "auto_reply": "Auto-replies ignored",
    "bounce": "Bounces",
    "list": "Mailing-list mail ignored",
    "loop": "Loops stopped",
    "quarantined": "Quarantined messages",
}
DASH = "—"


def pct(value: float | None) -> str:
    return DASH if value is None else f"{value:.0%}"


def of(part: int, whole: int) -> str:
    """ "7 of 20 (35%)", or "0 of 0" when there is nothing to divide."""
    return f"{part} of {whole} ({part / whole:.0%})" if whole else f"{part} of 0"


def duration(minutes: float | None) -> str:
    if minutes is None:
        return DASH
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def _value(series: Series, value: float | None) -> str:
    if series.unit == "rate":
        return pct(value)
    if series.unit == "minutes":
        return duration(value)
    return DASH if value is None else f"{value:.0f}"


def _delta(series: Series, delta: float | None) -> str:
    if delta is None:
        return DASH
    if series.unit == "rate":
        return f"{delta * 100:+.0f} pts"
    if series.unit == "minutes":
        return f"{delta:+.0f} min"
    return f"{delta:+.0f}"


def trend_line(series: Series) -> tuple[str, str]:
    """(name, "42% (+5 pts vs last week, -3 pts vs 8-week median 45%)")."""
    return (
        series.name,
        f"{_value(series, series.now)} ({_delta(series, series.vs_previous)} vs last week, "
        f"{_delta(series, series.vs_median)} vs {TREND_WEEKS}-week median {_value(series, series.median)})",
    )


def quality_lines(q: Quality) -> list[tuple[str, str]]:
    """At most ten (label, value) pairs: one channel's (or the total's) quality."""
    verdicts = (
        f"{q.reviewed} reviewed: {q.correct} correct, {q.wrong} wrong, {q.should_abstain} should have abstained"
        if q.reviewed
        else "none yet"
    )
    n = q.inquiries
    return [
        ("Answered, high confidence", of(q.confident, n)),
        ("Answered, low confidence + offer", of(q.low_confidence, n)),
        ("Abstained", of(q.abstained, n)),
        ("Handed off", of(q.handed_off, n)),
        ("Errors", of(q.failed, n)),
        ("Answers with feedback", of(q.rated, q.answers)),
        ("👍 / 👎 (of rated answers)", f"{q.thumbs_up} ({pct(q.up_rate)}) / {q.thumbs_down} ({pct(q.down_rate)})"),
        ("Answered, then escalated (24 h)", of(q.escalated_after, q.answers)),
        ("Reviewer verdicts", verdicts),
        ("Resolved without a person", of(q.resolved, n)),
    ]


def _count(now: int, before: int) -> str:
    delta = now - before
    return f"{now} ({delta:+d})" if delta else f"{now} (=)"


def operations_lines(now: Operations, before: Operations) -> list[tuple[str, str]]:
    prior = dict(before.hygiene)
    lines = [
        ("Tickets opened", _count(now.tickets_opened, before.tickets_opened)),
        ("Tickets resolved", _count(now.tickets_resolved, before.tickets_resolved)),
    ]
    lines += [(HYGIENE_LABELS[kind], _count(n, prior.get(kind, 0))) for kind, n in now.hygiene]
    lines += [
        ("LLM tokens in / out", f"{now.input_tokens} / {now.output_tokens}"),
        ("LLM cost", f"${now.cost_usd:.2f} ({now.cost_usd - before.cost_usd:+.2f})"),
    ]
    return lines


@dataclass(frozen=True, slots=True)
class Section:
    """A titled part of the report: (label, value) pairs and/or bullet lines, and an optional note."""

    title: str
    pairs: tuple[tuple[str, str], ...] = ()
    bullets: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True, slots=True)
class ReportDocument:
    title: str
    headline: str
    definition: str
    sections: tuple[Section, ...]
    footer: str


def title(report: WeeklyReport) -> str:
    return f"Support report {report.week.label} ({report.timezone})"


def headline(report: WeeklyReport) -> str:
    total = report.total
    if total.inquiries == 0:
        return "No inquiries this week."
    resolved = report.series[0]
    return (
        f"Resolved without a person: {of(total.resolved, total.inquiries)} of inquiries "
        f"({_delta(resolved, resolved.vs_previous)} vs last week, "
        f"{_delta(resolved, resolved.vs_median)} vs {TREND_WEEKS}-week median)."
    )


def _channel_title(q: Quality) -> str:
    count = f"{q.inquiries} inquir{'y' if q.inquiries == 1 else 'ies'}"
    return f"All channels: {count}" if q.channel == ALL else f"{q.channel}: {count}"


def report_document(report: WeeklyReport) -> ReportDocument:
    """The report's content, in order, for every renderer."""
    wait, fixes = report.wait, report.fixes
    sections = [Section(_channel_title(q), tuple(quality_lines(q))) for q in report.quality]
    sections.append(
        Section(
            f"Trend, last {TREND_WEEKS} weeks ({report.trend[0].label} to {report.trend[-1].label})",
            tuple(trend_line(s) for s in report.series),
            note="The chart shows each figure week by week.",
        )
    )
    sections.append(
        Section(
            "Time to a person",
            (
                ("Hand-offs", str(wait.handoffs)),
                ("Median / p90", f"{duration(wait.median_min)} / {duration(wait.p90_min)}"),
                (f"Over the {wait.sla_hours:g} h SLA", str(wait.sla_breaches)),
                ("Still waiting at the end of the week", str(wait.waiting)),
            ),
            note=f"From the hand-off to the {PERSON_SIGNAL} in the conversation.",
        )
    )
    sections += [
        Section("Fix first: knowledge gaps", bullets=tuple(g.line for g in fixes.gaps) or ("No open gaps.",)),
        Section(
            "Fix first: documents cited in 👎 answers",
            bullets=tuple(d.line for d in fixes.documents) or ("No 👎 answers cited a document.",),
        ),
        Section(
            "Fix first: questions answered with low confidence",
            bullets=tuple(q.line for q in fixes.questions) or ("None this week.",),
        ),
        Section("Operations", tuple(operations_lines(report.operations, report.previous_operations))),
    ]
    return ReportDocument(
        title=title(report),
        headline=headline(report),
        definition=HEADLINE_DEFINITION,
        sections=tuple(sections),
        footer=f"Changes are against the week before and the median of the last {TREND_WEEKS} weeks.",
    )


def render_text(doc: ReportDocument) -> str:
    """Plain text: `supportbot report --dry-run` and the email's text part."""
    out = [doc.title, "", doc.headline, doc.definition]
    for section in doc.sections:
        out += ["", section.title]
        width = max((len(label) for label, _ in section.pairs), default=0)
        out += [f"  {label.ljust(width)}  {value}" for label, value in section.pairs]
        out += [f"  - {line}" for line in section.bullets]
        out += [f"  ({section.note})"] if section.note else []
    out += ["", doc.footer]
    return "\n".join(out) + "\n"


def render_html(doc: ReportDocument, chart_cid: str = CHART_CID) -> str:
    """HTML for the email, every string escaped; the chart is the inline image `cid:{chart_cid}`."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>",
        esc(doc.title),
        "</title></head><body style='font-family:sans-serif'>",
        f"<h2>{esc(doc.title)}</h2>",
        f"<p style='font-size:1.3em'><strong>{esc(doc.headline)}</strong></p>",
        f"<p><small>{esc(doc.definition)}</small></p>",
        f"<p><img src='cid:{esc(chart_cid)}' alt='{TREND_WEEKS}-week trend chart' width='1000'"
        " style='max-width:100%'></p>",
    ]
    for section in doc.sections:
        parts.append(f"<h3>{esc(section.title)}</h3>")
        if section.pairs:
            rows = "".join(f"<tr><th align='left'>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in section.pairs)
            parts.append(f"<table cellpadding='3'>{rows}</table>")
        if section.bullets:
            parts.append("<ul>" + "".join(f"<li>{esc(line)}</li>" for line in section.bullets) + "</ul>")
        if section.note:
            parts.append(f"<p><small>{esc(section.note)}</small></p>")
    parts.append(f"<p><small>{esc(doc.footer)}</small></p></body></html>")
    return "".join(parts)
