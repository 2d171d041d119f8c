"""The one rule for putting text we did not write into a Slack message.

Customer words (questions, ticket subjects and summaries, hand-off posts, knowledge-gap labels and examples) and
model words (answers) reach Slack's mrkdwn, where `<!channel>`, `<!here>`, `<@U…>`, `<#C…>` and `<url|label>`
are live: they notify a whole channel, ping people, or hide where a link goes. `slack_text()` is the only way
such text is rendered, everywhere the Slack channel posts (answers, previews, agents' posts, reports):

- every `&`, `<`, `>` is escaped, so none of the above can be written by anyone but us;
- customer text (`markdown=False`) is not converted: `[label](https://x)` stays literal, never a disguised link;
- model text (`markdown=True`) is converted from Markdown, and a link stays a link only when its host is one of
  `link_hosts` (or below one); any other link shows its label only, and a bare URL to another host is shown as
  code, which Slack does not make clickable.

The one way to ping someone is `with_mentions()`: user ids that came from Slack itself (the clicker of a signed
payload, carried on `Reply.mentions`), checked against Slack's id shape, become `<@U…>` after the escaping.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from urllib.parse import urlsplit

from markdown_to_mrkdwn import SlackMarkdownConverter

_LINE_START_QUOTE = re.compile(r"^&gt;", re.MULTILINE)
_LINK = re.compile(r"<(https?://[^|>\s]+)(?:\|([^>]*))?>")
SLACK_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")
_BARE_URL = re.compile(r"(?<![<|`/\w])https?://[^\s<>|`]+")


def escape(text: str) -> str:
    """Slack's control characters (&, <, >) as entities: no mention, broadcast or link can come alive."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def host_allowed(url: str, link_hosts: Collection[str]) -> bool:
    """True when the URL's host is one of `link_hosts` or a subdomain of one (`help.example.com` under
    `example.com`); URLs that are not http(s) never are."""
    try:
        parts = urlsplit(url.replace("&amp;", "&"))
    except ValueError:
        return False
    host = (parts.hostname or "").casefold().rstrip(".")
    if parts.scheme not in ("http", "https") or not host:
        return False
    for allowed in link_hosts:
        domain = allowed.casefold().strip().strip(".")
        if domain and (host == domain or host.endswith("." + domain)):
            return True
    return False


def slack_text(text: str, *, markdown: bool = False, link_hosts: Collection[str] = (), quotes: bool = False) -> str:
    """`text` made safe for a Slack mrkdwn field (see the module docstring).

    `quotes=True` keeps a `>` at the start of a line as Slack's block quote (our own layout, e.g. the report's
    examples); with `markdown=True` quotes are always kept, as Markdown has them too.
    """
    escaped = escape(text)
    if not markdown:
        return _LINE_START_QUOTE.sub(">", escaped) if quotes else escaped
    converted = str(SlackMarkdownConverter().convert(_LINE_START_QUOTE.sub(">", escaped)))
    return _allowed_links_only(converted, link_hosts)


def _allowed_links_only(mrkdwn: str, link_hosts: Collection[str]) -> str:
    def link(match: re.Match[str]) -> str:
        url, label = match.group(1), match.group(2)
        if host_allowed(url, link_hosts):
            return match.group(0)
        return label if label else f"`{url}`"

    def bare(match: re.Match[str]) -> str:
        url = match.group(0)
        return url if host_allowed(url, link_hosts) else f"`{url}`"

    return _BARE_URL.sub(bare, _LINK.sub(link, mrkdwn))


def with_mentions(mrkdwn: str, user_ids: Collection[str]) -> str:
    """Escaped `mrkdwn` with each whole-word occurrence of a Slack user id from `user_ids` shown as a mention.

    Only ids shaped like Slack's (`U…`/`W…`, capitals and digits) count; `user_ids` must come from Slack's own
    payloads, never from text, which is why a customer who types an id still cannot ping anyone elsewhere.
    """
    for user_id in sorted({u for u in user_ids if SLACK_USER_ID.fullmatch(u)}, key=len, reverse=True):
        mrkdwn = re.sub(rf"(?<![\w@]){user_id}(?!\w)", f"<@{user_id}>", mrkdwn)
    return mrkdwn
