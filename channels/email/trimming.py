"""Reply trimming: the part of an email body the customer just wrote, without quoted history or signature.

mail-parser-reply does the work (reply headers in many languages, Outlook blocks, "Sent from my ...",
sign-offs); hyphen lists are kept (steps a customer tried are content, not a signature). Three gaps it leaves
are closed here, each a few lines: a message that is only a quote, an attribution line in a form its language
table misses ("El mar, ... escribió:", "Op di ... schreef ...:") followed by a trailing quote block, and a
trailing rule of underscores that Outlook puts above the quoted message.

Its signature pattern starts with `\\s*^`, which is quadratic in the length of a whitespace run ("a", 60,000
spaces, "b" took 36 s), so the text is bounded first: every whitespace run longer than `MAX_RUN` becomes one
space (or a blank line, when it spans lines), and at most `MAX_TRIM_CHARS` characters are trimmed.
"""

from __future__ import annotations

import re

from mailparser_reply import EmailMessage

LANGUAGES = ["en", "de", "fr", "es", "nl", "it", "sv", "da", "pl", "cs"]
_RULE = re.compile(r"^\s*[_\-=*]{5,}\s*$")
_QUOTED = re.compile(r"^\s*>")
MAX_TRIM_CHARS = 64 * 1024
MAX_RUN = 16
_LONG_RUN = re.compile(rf"\s{{{MAX_RUN + 1},}}")
# "... 2026 ... <a@b> ...:" or "... 9:15 ...:" -- an attribution, not a customer's own "the error says:"
_ATTRIBUTION = re.compile(r"@|\b(19|20)\d\d\b|\b\d{1,2}:\d\d\b")


def trim_reply(body: str) -> str:
    """The visible, newly written text of `body` ("" when the message only quotes)."""
    text = bounded(body.replace("\r\n", "\n").replace("\r", "\n"))
    if not text.strip():
        return ""
    parsed = EmailMessage(text=text, languages=list(LANGUAGES), keep_hyphen_lists=True).read()
    if not parsed.replies:
        return text.strip()
    first = parsed.replies[0]
    if first.headers:  # the body starts with a reply header: nothing new was written above it
        return ""
    lines = _cut_trailing_quote(first.body.split("\n"))
    while lines and (not lines[-1].strip() or _RULE.match(lines[-1])):
        lines.pop()
    return "\n".join(lines).strip()


def bounded(text: str) -> str:
    """`text` with long whitespace runs collapsed and cut to `MAX_TRIM_CHARS`: linear work for the trimmer."""
    collapsed = _LONG_RUN.sub(lambda m: "\n\n" if "\n" in m.group() else " ", text)
    return collapsed[:MAX_TRIM_CHARS]


def _cut_trailing_quote(lines: list[str]) -> list[str]:
    """Drop a quote block that runs to the end, with the attribution line(s) just above it."""
    start = next((i for i, line in enumerate(lines) if _QUOTED.match(line)), None)
    if start is None:
        return lines
    if any(line.strip() and not _QUOTED.match(line) for line in lines[start:]):
        return lines  # inline replies between quotes: keep everything the customer wrote
    cut = start
    above = cut - 1
    while above >= 0 and not lines[above].strip():
        above -= 1
    if above >= 0 and lines[above].rstrip().endswith(":"):
        attribution = lines[above]
        if above >= 1 and lines[above - 1].strip() and not lines[above - 1].rstrip().endswith((".", "?", "!")):
            attribution = lines[above - 1] + " " + attribution  # wrapped over two lines
        if _ATTRIBUTION.search(attribution):
            cut = above - (1 if attribution != lines[above] else 0)
    return lines[:cut]
