"""Read knowledge files (Markdown, text, HTML, PDF) into LlamaIndex Documents, or refuse them with one reason.

Every reader returns Markdown-shaped text, so one structure-aware node parser keeps headings with their text for
all formats: HTML headings become `#` lines (html2text), PDF pages become `## Page N` sections. Metadata carries
what citations need: title, source (the path relative to the ingested folder: an internal id, never shown), url (a
public link: front matter / canonical link, or KNOWLEDGE_BASE_URL joined with that relative path), updated time
(file mtime, ISO 8601), and trust: "official" or "community" (front matter `trust:`; without it, a page under a
folder named `community` or `forum` is a community tip, anything else official; an unknown value counts as
community, the lower trust). The document id stays the absolute path (incremental bookkeeping needs it; no customer sees
it). Bad files raise `SkipFile` with a short reason; the caller reports it and goes on.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from llama_index.core.readers.base import BaseReader
from llama_index.core.schema import Document

TEXT_SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".text": "text", ".rst": "text"}
HTML_SUFFIXES = {".html": "html", ".htm": "html"}
PDF_SUFFIXES = {".pdf": "pdf"}
SUPPORTED = {**TEXT_SUFFIXES, **HTML_SUFFIXES, **PDF_SUFFIXES}
MAX_FILE_BYTES = 25_000_000
MAX_TEXT_CHARS = 2_000_000
MAX_TITLE_CHARS = 120
STABLE_KEYS = ("title", "source", "url", "file_type", "product", "category", "language")
# Metadata that must not steer embeddings or bloat prompts.
NOT_EMBEDDED = ["source", "url", "updated_at", "file_type", "product", "category", "language", "trust"]
OFFICIAL, COMMUNITY = "official", "community"
COMMUNITY_FOLDERS = {"community", "forum", "forums"}


class SkipFile(Exception):
    """The file cannot be ingested; the message is the one-line reason."""


class KBDocument(Document):
    """A Document whose hash covers content and stable metadata, not the file's mtime.

    Touching a file (or checking it out again) must not re-embed it; only a change of text or title does.
    """

    @property
    def hash(self) -> str:
        stable = "|".join(f"{k}={self.metadata.get(k, '')}" for k in STABLE_KEYS)
        if self.metadata.get("trust", OFFICIAL) != OFFICIAL:  # only then, so official pages keep their old hashes
            stable += f"|trust={self.metadata['trust']}"
        return hashlib.sha256(f"{stable}\n{self.text}".encode("utf-8", "surrogatepass")).hexdigest()

    @classmethod
    def class_name(cls) -> str:
        return "KBDocument"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a file sits in a knowledge base: its path under the ingested folder and the public site's root URL."""

    relative: str = ""  # e.g. "billing/refund-policy.md"; "" = the file name
    base_url: str = ""  # KNOWLEDGE_BASE_URL, e.g. "https://help.acme.example/"

    def public_url(self, path: Path) -> str:
        """The page's address under `base_url` (suffix dropped: `billing/refund-policy`), or "" without a base."""
        if not self.base_url:
            return ""
        relative = PurePosixPath(self.relative or path.name).with_suffix("")
        return self.base_url.rstrip("/") + "/" + quote(str(relative))


def read_file(path: Path, origin: Origin | None = None) -> KBDocument:
    """Read one supported file, or raise `SkipFile`."""
    origin = origin or Origin()
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
    try:
        documents = reader.load_data(path)
    except SkipFile:
        raise
    except (ValueError, LookupError, RecursionError, AssertionError) as exc:  # parser bugs on odd input
        raise SkipFile(f"cannot parse ({type(exc).__name__})") from exc
    document: KBDocument = documents[0]  # type: ignore[assignment]
    if not document.text.strip():
        raise SkipFile("no text")
    if len(document.text) > MAX_TEXT_CHARS:
        raise SkipFile(f"too much text ({len(document.text)} characters)")
    metadata = document.metadata
    metadata["title"] = _short(str(metadata.get("title", "")), MAX_TITLE_CHARS) or _humanise(path.stem)
    metadata["source"] = origin.relative or path.name
    metadata["url"] = str(metadata.get("url") or "") or origin.public_url(path)
    metadata["trust"] = trust_level(str(metadata.get("trust") or ""), metadata["source"], path)
    return document


def trust_level(declared: str, relative: str, path: Path) -> str:
    """ "official" or "community": the declared level, else community under a community/forum folder (the folders
    below the ingested one, or the file's own folder when it sits at the top: `ingest kb/forum`)."""
    declared = declared.strip().lower()
    if not declared:
        folders = PurePosixPath(relative).parts[:-1] or (path.parent.name,)
        return COMMUNITY if any(part.lower() in COMMUNITY_FOLDERS for part in folders) else OFFICIAL
    return OFFICIAL if declared == OFFICIAL else COMMUNITY


def _short(text: str, limit: int) -> str:
    """One line of at most `limit` characters, cut at a word boundary with an ellipsis."""
    line = " ".join(text.split())
    if len(line) <= limit:
        return line
    cut = line[: limit - 1].rsplit(" ", 1)[0] if " " in line[: limit - 1] else line[: limit - 1]
    return cut.rstrip(" ,;:-") + "…"


def _base_metadata(path: Path, file_type: str, title: str, url: str = "") -> dict[str, Any]:
    updated = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC).isoformat(timespec="seconds")
    return {"title": title, "source": path.name, "url": url, "updated_at": updated, "file_type": file_type}


def _document(path: Path, text: str, metadata: dict[str, Any]) -> KBDocument:
    return KBDocument(
        id_=str(path),
        text=text,
        metadata=metadata,
        excluded_embed_metadata_keys=list(NOT_EMBEDDED),
        excluded_llm_metadata_keys=list(NOT_EMBEDDED),
    )


_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd]")
_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")
MAX_BAD_SHARE = 0.01  # decoding errors or control characters above this share (plus 2): not text


def _read_text(path: Path) -> str:
    """Decode a text file: a BOM's encoding, else UTF-8 (a few bad bytes replaced), else Windows-1252/latin-1."""
    return decode_text(path.read_bytes())


def decode_text(raw: bytes) -> str:
    """Bytes -> text with `\n` line ends, or `SkipFile` when they are not text in any encoding we accept."""
    text = None
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError as exc:
                raise SkipFile(f"broken {encoding} text") from exc
            break
    if text is None:
        if b"\x00" in raw[:8192]:
            raise SkipFile("binary content, not text")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            # Valid multi-byte sequences mean UTF-8 with a few bad bytes (replaced); none mean a legacy single-byte
            # encoding, read as Windows-1252 (a superset of latin-1's printable range).
            utf8 = _UTF8_MULTIBYTE.search(raw) is not None
            text = raw.decode("utf-8", errors="replace") if utf8 else raw.decode("cp1252", errors="replace")
    if len(_CONTROL.findall(text)) > 2 + MAX_BAD_SHARE * len(text):
        raise SkipFile("binary content, not text")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _humanise(stem: str) -> str:
    return re.sub(r"[-_]+", " ", stem).strip().capitalize() or stem


_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.DOTALL)
_H1 = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)


class MarkdownReader(BaseReader):
    """Markdown with optional front matter (`title:`, `url:`, `product:`, `category:`, `trust:` lines)."""

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
        metadata.update({k: fields[k] for k in ("product", "category", "language", "trust") if k in fields})
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
