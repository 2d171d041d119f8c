"""The weekly report for Slack: the report document as Block Kit, built with slack_sdk's block classes.

Slack's limits hold by construction: a header of at most 150 characters, at most ten fields per section, section
text under 3000 characters. Customer words in the document (gap labels, example questions) are PII-masked already;
the Slack publisher escapes every text object (`channels.slack.escape.slack_text`) before posting.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from scheduler.render import ReportDocument, Section

TEXT_LIMIT = 3000
FIELD_LIMIT = 2000
FIELDS_PER_SECTION = 10


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _section_blocks(section: Section) -> list[Block]:
    blocks: list[Block] = []
    pairs = list(section.pairs)
    title = f"*{section.title}*"
    if not pairs and not section.bullets:
        return [SectionBlock(text=MarkdownTextObject(text=title))]
    for start in range(0, max(len(pairs), 1), FIELDS_PER_SECTION):
        chunk = pairs[start : start + FIELDS_PER_SECTION]
        if not chunk:
            break
        fields = [MarkdownTextObject(text=_cut(f"*{label}*\n{value}", FIELD_LIMIT)) for label, value in chunk]
        blocks.append(SectionBlock(text=MarkdownTextObject(text=title) if start == 0 else None, fields=fields))
    if section.bullets:
        body = "\n".join(f"• {line}" for line in section.bullets)
        text = body if pairs else f"{title}\n{body}"
        blocks.append(SectionBlock(text=MarkdownTextObject(text=_cut(text, TEXT_LIMIT))))
    if section.note:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=_cut(section.note, TEXT_LIMIT))]))
    return blocks


def render_blocks(doc: ReportDocument) -> list[dict[str, Any]]:
    """Header, the headline and its definition, then each section (fields, bullets, note), then the footer."""
    blocks: list[Block] = [
        HeaderBlock(text=_cut(doc.title, 150)),
        SectionBlock(text=MarkdownTextObject(text=_cut(f"*{doc.headline}*", TEXT_LIMIT))),
        ContextBlock(elements=[MarkdownTextObject(text=doc.definition)]),
    ]
    for section in doc.sections:
        blocks.append(DividerBlock())
        blocks += _section_blocks(section)
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=doc.footer)]))
    return [block.to_dict() for block in blocks]
