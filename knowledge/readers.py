"""Read knowledge files (Markdown, text, HTML, PDF) into LlamaIndex Documents, or refuse them with one reason.

Every reader returns Markdown-shaped text, so one structure-aware node parser keeps headings with their text for
all formats: HTML headings become `#` lines (html2text), PDF pages become `## Page N` sections. Metadata carries
what citations need: title, source (absolute path, also the document id), url (front matter / canonical link),
updated time (file mtime, ISO 8601). Bad files raise `SkipFile` with a short reason; the caller logs and goes on.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llama_index.core.readers.base import BaseReader
from llama_index.core.schema import Document

TEXT_SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".text": "text", ".rst": "text"}
HTML_SUFFIXES = {".html": "html", ".htm": "html"}
PDF_SUFFIXES = {".pdf": "pdf"}
SUPPORTED = {**TEXT_SUFFIXES, **HTML_SUFFIXES, **PDF_SUFFIXES}
MAX_FILE_BYTES = 25_000_000
MAX_TEXT_CHARS = 2_000_000
STABLE_KEYS = ("title", "source", "url", "file_type", "product", "category", "language")
# Metadata that must not steer embeddings or bloat prompts.
NOT_EMBEDDED = ["source", "url", "updated_at", "file_type", "product", "category", "language"]


class SkipFile(Exception):
    """The file cannot be ingested; the message is the one-line reason."""


class KBDocument(Document):
    """A Document whose hash covers content and stable metadata, not the file's mtime.

    Touching a file (or checking it out again) must not re-embed it; only a change of text or title does.
    """

    @property
    def hash(self) -> str:
        stable = "|".join(f"{k}={self.metadata.get(k, '')}" for k in STABLE_KEYS)
        return hashlib.sha256(f"{stable}\n{self.text}".encode("utf-8", "surrogatepass")).hexdigest()

    @classmethod
    def class_name(cls) -> str:
        return "KBDocument"


def read_file(path: Path) -> KBDocument:
    """Read one supported file, or raise `SkipFile`."""
    kind = SUPPORTED.get(path.suffix.lower())
    if kind is None:
        raise SkipFile("unsupported file type")
    size = path.stat().st_size
    if size == 0:
        raise SkipFile("empty file")
    if size > MAX_FILE_BYTES:
        raise SkipFile(f"too large ({size // 1_000_000} MB > {MAX_FILE_BYTES // 1_000_000} MB)")
    reader: BaseReader = {"markdown": MarkdownReader(), "text": TextReader(), "html": HtmlReader()}.get(
        kind, PdfReader()
    )
    documents = reader.load_data(path)
    document = documents[0]
    if not document.text.strip():
        raise SkipFile("no text")
    if len(document.text) > MAX_TEXT_CHARS:
        raise SkipFile(f"too much text ({len(document.text)} characters)")
    return document  # type: ignore[return-value]


def _base_metadata(path: Path, file_type: str, title: str, url: str = "") -> dict[str, Any]:
    updated = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC).isoformat(timespec="seconds")
    return {"title": title, "source": str(path), "url": url, "updated_at": updated, "file_type": file_type}


def _document(path: Path, text: str, metadata: dict[str, Any]) -> KBDocument:
    return KBDocument(
        id_=str(path),
        text=text,
        metadata=metadata,
        excluded_embed_metadata_keys=list(NOT_EMBEDDED),
        excluded_llm_metadata_keys=list(NOT_EMBEDDED),
    )


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    if b"\x00" in raw[:8192]:
        raise SkipFile("binary content, not text")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return raw.decode("cp1252")
        except UnicodeDecodeError as exc:
            raise SkipFile("not UTF-8 text") from exc


def _humanise(stem: str) -> str:
    return re.sub(r"[-_]+", " ", stem).strip().capitalize() or stem


_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.DOTALL)
_H1 = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)


class MarkdownReader(BaseReader):
    """Markdown with optional front matter (`title:`, `url:`, `product:`, `category:` lines)."""

    def load_data(self, file: Path, extra_info: dict[str, Any] | None = None) -> list[Document]:
        text = _read_text(file)
        fields: dict[str, str] = {}
        match = _FRONT_MATTER.match(text)
        if match:
            for line in match.group(1).splitlines():
                key, sep, value = line.partition(":")
                if sep and key.strip() and value.strip():
                    fields[key.strip().lower()] = value.strip().strip("\"'")
            text = text[match.end() :]
        heading = _H1.search(text)
        title = fields.get("title") or (heading.group(1) if heading else _humanise(file.stem))
        metadata = _base_metadata(file, "markdown", title, fields.get("url", ""))
        metadata.update({k: fields[k] for k in ("product", "category", "language") if k in fields})
        return [_document(file, text, metadata)]


class TextReader(BaseReader):
    """Plain text; the title is the file name."""

    def load_data(self, file: Path, extra_info: dict[str, Any] | None = None) -> list[Document]:
        text = _read_text(file)
        return [_document(file, text, _base_metadata(file, "text", _humanise(file.stem)))]


class HtmlReader(BaseReader):
    """HTML page -> Markdown (headings kept), without scripts, styles and navigation."""

    def load_data(self, file: Path, extra_info: dict[str, Any] | None = None) -> list[Document]:
        import html2text
        from bs4 import BeautifulSoup

        soup = BeautifulSoup(_read_text(file), "html.parser")
        for tag in soup(["script", "style", "nav", "footer", "header", "noscript", "template", "svg"]):
            tag.decompose()
        h1 = soup.find("h1")
        title = (soup.title.get_text(strip=True) if soup.title else "") or (h1.get_text(strip=True) if h1 else "")
        link = soup.find("link", rel="canonical")
        url = str(link.get("href") or "") if link is not None else ""
        body = soup.find("main") or soup.find("article") or soup.body or soup
        converter = html2text.HTML2Text()
        converter.body_width = 0
        converter.ignore_images = True
        converter.ignore_links = False
        text = converter.handle(str(body))
        return [_document(file, text, _base_metadata(file, "html", title or _humanise(file.stem), url))]


class PdfReader(BaseReader):
    """PDF text via pypdf, one `## Page N` section per page so citations can name the page."""

    def load_data(self, file: Path, extra_info: dict[str, Any] | None = None) -> list[Document]:
        import pypdf

        try:
            reader = pypdf.PdfReader(str(file))
            pages = [page.extract_text() or "" for page in reader.pages]
            info_title = (reader.metadata.title if reader.metadata else None) or ""
        except Exception as exc:  # pypdf raises many types for broken files
            raise SkipFile(f"unreadable PDF ({type(exc).__name__})") from exc
        if not any(page.strip() for page in pages):
            raise SkipFile("PDF has no extractable text (scanned?)")
        text = "\n\n".join(f"## Page {n}\n\n{page.strip()}" for n, page in enumerate(pages, 1) if page.strip())
        return [_document(file, text, _base_metadata(file, "pdf", str(info_title) or _humanise(file.stem)))]
