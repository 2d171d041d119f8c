"""Reply -> email: threading headers, our own unguessable Message-ID, text and HTML parts, sources as links.

A reply's Message-ID is random (`reply_message_id`), never derived from the customer's Message-ID, so nobody
can compute the id of an answer they did not receive and thread into that conversation. The sender reserves it
on the reply's outbox row before sending (`DeliveryRefs`), so a resend after a crash carries the same id and the
customer's mail client shows one message. A reply that offers a ticket gets the unguessable id the escalation
service expects (`<offer-{token}@{domain}>`, the token is 192 random bits): a "yes" only counts as a reply to it.
"""

from __future__ import annotations

import html
import re
import secrets
from email.message import EmailMessage
from email.utils import formatdate

import html2text
from markdown_it import MarkdownIt

from bot.messages import ActionKind, Citation, Reply
from bot.offers import offer_message_id, offer_reference, support_domain
from bot.strings import for_customers
from channels.email.parsing import aligned

LOW_CONFIDENCE_NOTE = f"{for_customers.LOW_CONFIDENCE} {for_customers.REPLY_TO_CLARIFY}"
SOURCES_HEADING = f"{for_customers.SOURCES}:"

_RE_PREFIX = re.compile(r"^\s*((re|aw|sv|antw|ref|rif|vs)(\[\d+\])?\s*:\s*)+", re.IGNORECASE)


def reply_message_id(reply: Reply, support_address: str) -> str:
    """A Message-ID for `reply`: the offer id when it offers a ticket, else a fresh random one (the sender keeps
    the first one it reserved for the reply, so resends reuse it)."""
    offer = next((a for a in reply.actions if a.kind is ActionKind.OFFER_TICKET and a.value), None)
    if offer is not None:
        return offer_message_id(offer.value, support_address)
    return f"<reply-{secrets.token_urlsafe(24)}@{support_domain(support_address)}>"


def reply_subject(subject: str) -> str:
    """'Re: ' + the subject without any existing Re:/AW:/SV: prefixes (never 'Re: Re:')."""
    base = _RE_PREFIX.sub("", subject).strip()
    return f"Re: {base}" if base else for_customers.DEFAULT_SUBJECT


def _source_lines(citations: tuple[Citation, ...]) -> list[tuple[int, str, str]]:
    """(number, title, public link or "") per citation: a page without a public URL is named, never located."""
    return [(c.index, _title(c), c.url if c.url.startswith(("http://", "https://")) else "") for c in citations]


# The answer is Markdown (from Claude or quoted from the help centre): rendered to HTML for the HTML part, with raw
# HTML in it escaped (never passed through) and images off; the text part is that HTML back as clean text.
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).disable("image")


def answer_html(markdown: str) -> str:
    return str(_MARKDOWN.render(markdown))


def answer_text(markdown: str) -> str:
    converter = html2text.HTML2Text(bodywidth=0)
    converter.ignore_emphasis = True  # no **bold** or _italic_ markers in the text part
    converter.ignore_images = True
    lines = [line.rstrip() for line in str(converter.handle(answer_html(markdown))).splitlines()]
    text = "\n".join(
        line for i, line in enumerate(lines) if not (line == ">" and (i + 1 == len(lines) or not lines[i + 1]))
    )
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _title(citation: Citation) -> str:
    title = citation.title or citation.source
    return f"{title} ({for_customers.COMMUNITY_TIP})" if citation.community else title


def _instructions(reply: Reply) -> list[str]:
    kinds = {a.kind for a in reply.actions}
    offer = next((a for a in reply.actions if a.kind is ActionKind.OFFER_TICKET and a.value), None)
    lines = []
    if offer is not None:
        lines.append(for_customers.CONFIRM_TICKET_BY_REPLY.format(reference=offer_reference(offer.value)))
    elif ActionKind.TALK_TO_PERSON in kinds:
        lines.append(for_customers.TALK_TO_PERSON_BY_REPLY)
    return lines


def render_text(reply: Reply) -> str:
    parts = [answer_text(reply.text)]
    if reply.low_confidence:
        parts.append(LOW_CONFIDENCE_NOTE)
    sources = _source_lines(reply.citations)
    if sources:
        lines = [f"[{i}] {title} - {link}" if link else f"[{i}] {title}" for i, title, link in sources]
        parts.append(SOURCES_HEADING + "\n" + "\n".join(lines))
    parts += _instructions(reply)
    parts.append(for_customers.FOOTER)
    return "\n\n".join(p for p in parts if p) + "\n"


def render_html(reply: Reply) -> str:
    paragraphs = [answer_html(reply.text)]
    if reply.low_confidence:
        paragraphs.append(f"<p><em>{html.escape(LOW_CONFIDENCE_NOTE)}</em></p>")
    sources = _source_lines(reply.citations)
    if sources:
        items = "".join(
            f'<li value="{i}"><a href="{html.escape(link, quote=True)}">{html.escape(title)}</a></li>'
            if link
            else f'<li value="{i}">{html.escape(title)}</li>'
            for i, title, link in sources
        )
        paragraphs.append(f"<p>{html.escape(SOURCES_HEADING)}</p><ol>{items}</ol>")
    paragraphs += [f"<p><strong>{html.escape(line)}</strong></p>" for line in _instructions(reply)]
    paragraphs.append(f'<p style="color:#666">{html.escape(for_customers.FOOTER)}</p>')
    return "<!doctype html><html><body>" + "".join(paragraphs) + "</body></html>"


def reply_address(reply: Reply) -> str:
    """Where `reply` goes: the sender, or the Reply-To of the message it answers when that is aligned with the
    sender (same address or organisation). Never a third party a stranger named in Reply-To."""
    reply_to = reply.metadata.get("reply_to", "")
    return reply_to if reply_to and aligned(reply_to, reply.recipient) else reply.recipient


def build_reply(reply: Reply, support_address: str, message_id: str = "") -> EmailMessage:
    """The email for `reply` with `message_id` (default: a new one), addressed to `reply_address(reply)`."""
    md = reply.metadata
    msg = EmailMessage()
    msg["From"] = support_address
    msg["To"] = reply_address(reply)
    msg["Subject"] = reply_subject(reply.subject)
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = message_id or reply_message_id(reply, support_address)
    parent = md.get("message_id_header", "")
    if parent:
        msg["In-Reply-To"] = parent
        refs = md.get("references", "").split()
        msg["References"] = " ".join([*[r for r in refs if r != parent][-20:], parent])
    msg["Auto-Submitted"] = "auto-replied"
    msg["X-Auto-Response-Suppress"] = "All"
    msg.set_content(render_text(reply))
    msg.add_alternative(render_html(reply), subtype="html")
    return msg
