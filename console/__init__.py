"""The operator console: server-rendered pages (aiohttp + Jinja2) where whoever runs the bot sees what it did
and fixes what it got wrong: overview, conversations with their traces, the review queue, knowledge (with pages
pasted or uploaded by admins), dead letters, tickets and hand-offs, gaps, weekly reports, and the audit log.

It is a channel-layer package: it reads the store (bot/), asks the knowledge engine (knowledge/ through the
`KnowledgeEngine` port; pasted pages go through the `PageUploads` port) and is mounted by the composition root
(`app/http.py`) under `/console`, only when `ADMIN_KEYS` is set.
"""

from console.app import ConsoleConfig, ConsolePorts, DocumentCatalog, DocumentInfo, PageUploads
from console.server import build_console_app

__all__ = ["ConsoleConfig", "ConsolePorts", "DocumentCatalog", "DocumentInfo", "PageUploads", "build_console_app"]
