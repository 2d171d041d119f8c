"""Quotable units of a passage: whole sentences, list items with their lead-in, table rows with their header, and
short code blocks (the command a "how do I install" question needs is often only in a fenced block).

The extractive answerer quotes units, so a unit must read as a whole: hard-wrapped lines of a paragraph are joined
before sentences are found (a wrap is never a boundary), a list item carries the sentence that introduces it, a
table row carries the header that names its cells, and a heading line is context for scoring, never a quote. Each
unit knows its section (the units under one heading) and paragraph, so a quote can keep a section's units together
in document order and run a paragraph's sentences on one line.

Sentences come from NLTK's Punkt model for English, loaded from the `punkt_tab` files that llama-index-core ships
inside its wheel (`llama_index/core/_static/nltk_cache`), so nothing is downloaded; if those files are missing, a
regex splitter on `.!?` followed by a capital takes over (Punkt's gain is abbreviations: "e.g.", "approx.", "v2.").
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

_HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ITEM = re.compile(r"^(\s*)([-*+•]|\d{1,3}[.)])\s+(.*\S)\s*$")
_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?\s*$")
_QUOTE = re.compile(r"^\s*>\s?")
_UNDERLINE = re.compile(r"^[=\-~_*#]{3,}$")
_TERMINAL = re.compile(r"[.!?:;)\"'”’*`]\s*$")
_FALLBACK_SENTENCE = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[\"'(\[]?[A-Z0-9*`])")
MAX_LIST_WORDS = 120  # a lead-in quoted with its whole list only while the list stays this short
MAX_CODE_LINES = 12  # a longer code block (a whole config file) is reference material, not an answer to quote


@dataclass(frozen=True, slots=True)
class Unit:
    """One quotable piece of a passage, in document order.

    `text` is what is quoted (clean Markdown: a sentence, "- item", or "Row: cell; header: cell"); `lead` is the
    sentence that introduces a list item (quoted once above the items chosen from that list, `group` tells which
    list); `context` holds words that help scoring but are not quoted (heading, table header, lead-in). `section`
    numbers the heading groups of the passage (0 before the first heading) and `heading` names the unit's group;
    `paragraph` is shared by the sentences of one paragraph (-1 for other kinds). A "code" unit's text is the
    block's lines, without the fence.
    """

    text: str
    position: int
    kind: str = "sentence"  # "sentence" | "item" | "list" | "row" | "code"
    lead: str = ""
    group: int = -1
    context: str = ""
    section: int = 0
    heading: str = ""
    paragraph: int = -1

    @property
    def quoted(self) -> str:
        """The words a reader sees when this unit is quoted (its lead-in included)."""
        return f"{self.lead}\n{self.text}" if self.lead else self.text


@functools.cache
def _punkt() -> Callable[[str], list[str]] | None:
    """Punkt for English from llama-index-core's bundled tables, read here with plain `open()`: nltk's own loader
    refuses files that a package installer hard-linked (uv does), so it cannot be trusted to load them."""
    try:
        import llama_index.core
        from nltk.tabdata import PunktDecoder  # type: ignore[import-untyped]
        from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer  # type: ignore[import-untyped]

        folder = Path(llama_index.core.__file__).parent / "_static/nltk_cache/tokenizers/punkt_tab/english"
        decoder, params = PunktDecoder(), PunktParameters()
        with (folder / "collocations.tab").open(encoding="utf-8") as file:
            params.collocations = set(decoder.tab2tups(file))
        with (folder / "sent_starters.txt").open(encoding="utf-8") as file:
            params.sent_starters = decoder.txt2set(file)
        with (folder / "abbrev_types.txt").open(encoding="utf-8") as file:
            params.abbrev_types = decoder.txt2set(file)
        with (folder / "ortho_context.tab").open(encoding="utf-8") as file:
            params.ortho_context = decoder.tab2intdict(file)
        tokenizer = PunktSentenceTokenizer(params)
    except (ImportError, OSError, LookupError, ValueError, AttributeError):
        return None
    return tokenizer.tokenize  # type: ignore[no-any-return]


def sentences(text: str) -> list[str]:
    """Sentences of one unwrapped paragraph."""
    text = " ".join(text.split())
    if not text:
        return []
    splitter = _punkt()
    parts = [part.strip() for part in (splitter(text) if splitter else _FALLBACK_SENTENCE.split(text))]
    merged: list[str] = []
    for part in parts:
        if merged and part and (part[0].islower() or len(merged[-1].split()) == 1):
            merged[-1] = f"{merged[-1]} {part}"  # "e.g. the", "Approx. 5": an abbreviation, not a sentence end
        elif part:
            merged.append(part)
    return merged


def _title_like(line: str) -> bool:
    """A short line without end punctuation: a heading of a text that puts one paragraph on each line (but not a
    table row cut off from its header by a chunk boundary: "| E1550 | Clock out of sync |")."""
    row = line.startswith("|") or line.endswith("|")
    return len(line) < 60 and not _TERMINAL.search(line) and len(line.split()) <= 8 and not row


def unwrap(lines: list[str]) -> list[str]:
    """Join hard-wrapped lines into paragraphs; a short title-like line followed by a line stays on its own."""
    paragraphs: list[str] = []
    for line in (raw.strip() for raw in lines):
        previous = paragraphs[-1] if paragraphs else ""
        wrapped = previous and not _TERMINAL.search(previous) and not _title_like(previous)
        if previous and (wrapped or line[:1].islower()):
            paragraphs[-1] = f"{previous} {line}"
        else:
            paragraphs.append(line)
    return paragraphs


@dataclass
class _Cursor:
    units: list[Unit]
    heading: str = ""
    groups: int = 0
    last_block: str = ""
    section: int = 0
    paragraphs: int = 0

    def open_section(self, heading: str) -> None:
        self.heading = heading
        self.section += 1

    def add(
        self, text: str, kind: str = "sentence", lead: str = "", group: int = -1, context: str = "", paragraph: int = -1
    ) -> None:
        if text.strip():
            extra = " ".join(part for part in (self.heading, context) if part)
            body = text.strip("\n") if kind == "code" else text.strip()
            unit = Unit(body, len(self.units), kind, lead, group, extra, self.section, self.heading, paragraph)
            self.units.append(unit)


def segment(text: str, heading: str = "") -> list[Unit]:
    """The passage's quotable units, in document order (headings are context, long code blocks are left out).
    `heading` names the text before the passage's first heading: a chunk that continues a section cut by the
    chunker starts without its heading line, and its units still belong under that heading."""
    cursor = _Cursor([], heading=heading)
    for kind, lines in _blocks(text.replace("\r\n", "\n").split("\n")):
        follows_paragraph, cursor.last_block = cursor.last_block == "paragraph", kind
        if kind == "heading":
            cursor.open_section(lines[0])
        elif kind == "paragraph":
            for paragraph in unwrap(lines):
                if _UNDERLINE.match(paragraph):
                    continue  # "=====" under a plain-text title: the title above is the heading
                if _title_like(paragraph) and len(lines) > 1:
                    cursor.open_section(paragraph)
                    continue
                cursor.paragraphs += 1
                for sentence in sentences(paragraph):
                    cursor.add(sentence, paragraph=cursor.paragraphs)
        elif kind == "list":
            _add_list(cursor, lines, follows_paragraph)
        elif kind == "table":
            _add_table(cursor, lines)
        elif kind == "code" and len(lines) <= MAX_CODE_LINES and any(line.strip() for line in lines):
            cursor.add("\n".join(line.rstrip() for line in lines), "code")
    return cursor.units


def _add_list(cursor: _Cursor, lines: list[str], follows_paragraph: bool) -> None:
    items = _items(lines)
    lead = ""
    last = cursor.units[-1] if cursor.units and follows_paragraph else None
    if last is not None and last.kind == "sentence" and last.text.endswith(":"):
        lead = cursor.units.pop().text  # the lead-in is quoted with its items, never alone
    cursor.groups += 1
    group = cursor.groups
    if lead and sum(len(item.split()) for item in items) <= MAX_LIST_WORDS:
        cursor.add("\n".join(items), "list", lead, group)
    for item in items:
        cursor.add(item, "item", lead, group)


def _items(lines: list[str]) -> list[str]:
    """List items as "- text" / "1. text"; continuation lines are joined to their item, and a nested list stays
    with the item that introduces it (an item ending "choose where to put the files:" is nothing without them)."""
    items: list[str] = []
    base = -1
    for line in lines:
        match = _ITEM.match(line)
        if match:
            indent = len(match.group(1).expandtabs(4))
            base = indent if base < 0 else base
            marker = match.group(2) if match.group(2)[0].isdigit() else "-"
            if indent > base and items:
                items[-1] = f"{items[-1]}\n  {marker} {match.group(3).strip()}"
            else:
                items.append(f"{marker} {match.group(3).strip()}")
        elif items and line.strip():
            items[-1] = f"{items[-1]} {line.strip()}"
    return items


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _add_table(cursor: _Cursor, lines: list[str]) -> None:
    header = _cells(lines[0])
    for line in lines[1:]:
        if _RULE.match(line):
            continue
        cells = _cells(line)
        if not any(cells):
            continue
        named = [f"{name}: {cell}" for name, cell in zip(header[1:], cells[1:], strict=False) if cell]
        text = f"{cells[0]} — " + "; ".join(named) if named else " ".join(cells)
        cursor.add(text, "row")


def _blocks(lines: list[str]) -> Iterator[tuple[str, list[str]]]:
    """(kind, lines) for headings, paragraphs, lists, tables and fenced code (its lines inside the fence)."""
    index, block, kind = 0, list[str](), ""
    while index < len(lines):
        line = _QUOTE.sub("", lines[index])
        fence = _FENCE.match(line)
        heading = _HEADING.match(line)
        is_table = "|" in line and index + 1 < len(lines) and _RULE.match(lines[index + 1]) is not None
        if fence or heading or is_table or not line.strip():
            if block:
                yield kind, block
            block, kind = [], ""
        if fence:
            end = _fence_end(lines, index, fence.group(1))
            yield "code", [_QUOTE.sub("", line) for line in lines[index + 1 : end]]
            index = end + 1  # past the closing fence
            continue
        if heading:
            yield "heading", [heading.group(1).strip()]
        elif is_table:
            rows = [line]
            index += 1
            while index < len(lines) and "|" in lines[index]:
                rows.append(lines[index])
                index += 1
            yield "table", rows
            continue
        elif line.strip():
            item = _ITEM.match(line) is not None
            if kind == "list" and (item or line.startswith((" ", "\t"))):
                block.append(line)
            else:
                if block and (item or kind == "list"):
                    yield kind, block
                    block = []
                kind = "list" if item else "paragraph"
                block.append(line)
        index += 1
    if block:
        yield kind, block


def _fence_end(lines: list[str], index: int, fence: str) -> int:
    """The index of the line closing the fence opened at `index` (len(lines) when it is never closed)."""
    index += 1
    while index < len(lines):
        closing = _FENCE.match(_QUOTE.sub("", lines[index]))
        if closing and closing.group(1)[0] == fence[0] and len(closing.group(1)) >= len(fence):
            return index
        index += 1
    return index
