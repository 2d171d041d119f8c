"""Pages an admin pastes or uploads in the console, ingested at once through the same `KnowledgeIndex.ingest` as
`supportbot ingest`, `POST /api/admin/ingest` and the KB sync.

Where they live: the database (`bot.store.pages`) is the source of truth, and each page is written as a file to
`DATA_DIR/uploads/` (the folder the KB sync ingests next to `KNOWLEDGE_PATHS`). Before every sync the folder is
written again from the database (`write_all`), so a sync on any replica (with its own DATA_DIR) finds every pasted
page and never deletes one as vanished; a page re-pasted under the same name replaces the old one. Nothing is ever
written into the `KNOWLEDGE_PATHS` folders, which may be read-only or a git checkout.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from pathlib import Path

from bot.ports import IngestSummary, KnowledgeIndex
from bot.store.pages import PageStore, StoredPage

UPLOADS = "uploads"  # under DATA_DIR
SUFFIXES = (".md", ".markdown", ".txt", ".html", ".htm")
MAX_PAGE_BYTES = 512 * 1024
MAX_NAME_CHARS = 80


def page_name(label: str, suffix: str) -> str:
    """A safe file name from a title or an uploaded file's name: lowercase words joined by '-', plus the suffix."""
    stem = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:MAX_NAME_CHARS].strip("-") or "page"
    return f"{stem}{suffix}"


def markdown_page(title: str, text: str, url: str = "") -> str:
    """A pasted Markdown page with its title (and public link) as front matter, unless it brings its own."""
    text = text.replace("\r\n", "\n").strip() + "\n"
    if text.startswith("---"):
        return text
    fields = [f"title: {' '.join(title.split())}"] + ([f"url: {url.strip()}"] if url.strip() else [])
    return "---\n" + "\n".join(fields) + "\n---\n\n" + text


class PastedPages:
    """Stores, writes and ingests pasted pages (the console's `PageUploads` port)."""

    def __init__(self, store: PageStore, folder: Path, index: KnowledgeIndex) -> None:
        self._store = store
        self._folder = folder
        self._index = index
        self._lock = asyncio.Lock()

    @property
    def folder(self) -> Path:
        return self._folder

    async def add(self, name: str, body: str, author: str) -> IngestSummary:
        """Keep the page, write it, and ingest it now; returns what the ingestion did."""
        if Path(name).name != name or not name.endswith(SUFFIXES) or len(body.encode()) > MAX_PAGE_BYTES:
            raise ValueError("not a page name this folder accepts, or too large")
        await self._store.save(name, body, author)
        async with self._lock:
            path = await asyncio.to_thread(_write, self._folder, name, body)
        return await self._index.ingest([path])

    async def write_all(self) -> Path:
        """Write every stored page to the folder (only what changed) and remove files that are no longer pages;
        returns the folder, for the sync to ingest."""
        pages = await self._store.all()
        async with self._lock:
            await asyncio.to_thread(_mirror, self._folder, pages)
        return self._folder


def _write(folder: Path, name: str, body: str) -> Path:
    """Write atomically (a sync reading the folder never sees half a page); an unchanged page keeps its mtime."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    data = body.encode()
    if path.is_file() and path.read_bytes() == data:
        return path.resolve()
    handle, temp = tempfile.mkstemp(dir=folder, prefix=".page-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path.resolve()


def _mirror(folder: Path, pages: list[StoredPage]) -> None:
    folder.mkdir(parents=True, exist_ok=True)  # an empty folder syncs to nothing (a missing one is reported)
    for page in pages:
        _write(folder, page.name, page.body)
    keep = {page.name for page in pages}
    if folder.is_dir():
        for path in folder.iterdir():
            if path.is_file() and not path.name.startswith(".") and path.name not in keep:
                path.unlink()
