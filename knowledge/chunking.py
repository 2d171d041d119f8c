"""Structure-aware chunking: split at headings first, then long sections by sentences.

`FencedMarkdownParser` (LlamaIndex's `MarkdownNodeParser`, taught CommonMark fences) cuts a document at its
headings, so a heading and the text under it stay in one chunk; a `#` line inside a ``` or ~~~ code block is code,
not a heading. `SectionPath` turns the heading path into a readable section ("Restore > From the web app"), bounded
in the embedding model's word pieces: LlamaIndex counts embedded metadata against the chunk size and refuses a
document whose metadata alone is longer, so a 300-character error message used as a heading must be shortened
(the full heading stays in the chunk text). A `SentenceSplitter` sized in those word pieces splits only sections
longer than the model reads (256 pieces), so nothing is silently truncated.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from llama_index.core.node_parser import MarkdownNodeParser, SentenceSplitter
from llama_index.core.schema import BaseNode, TextNode, TransformComponent
from pydantic import Field

CHUNK_TOKENS = 200
CHUNK_OVERLAP = 24
LEAD_TOKENS = 80  # an untitled page opening up to this long is merged into the first section
METADATA_TOKENS = 64  # title + section, in word pieces; leaves >= 136 pieces of text in every chunk
SECTION_PART_CHARS = 80
SECTION_SEPARATOR = " > "  # between the headings of a chunk's `section` metadata ("Restore > From the web app")
_PATH_SEPARATOR = "\x1f"  # headings contain "/" (paths, error messages); the ASCII unit separator never does
_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|\n+|$)\s*")


def split_sentences(text: str) -> list[str]:
    """Sentences and lines, by regex: nltk's punkt (LlamaIndex's default) reads data files we do not want to need."""
    return [part for part in _SENTENCE.findall(text) if part]


def markdown_sections(text: str) -> list[tuple[list[str], str]]:
    """(heading path above the section, section text starting with its own heading line) for each section.

    A heading is an ATX heading outside fenced code (CommonMark: a fence closes with the same character, at least
    as long). Text before the first heading is a section with an empty path.
    """
    sections: list[tuple[list[str], str]] = []
    stack: list[tuple[int, str]] = []
    current: list[str] = []
    fence = ""
    for line in text.split("\n"):
        opener = _FENCE.match(line)
        if fence:
            closes = opener is not None and opener.group(1)[0] == fence[0] and len(opener.group(1)) >= len(fence)
            if closes and not line.strip().lstrip(fence[0]):
                fence = ""
        elif opener:
            fence = opener.group(1)
        else:
            heading = _HEADING.match(line)
            if heading and (heading.group(2) or "").strip():
                if "".join(current).strip():
                    sections.append(([title for _, title in stack[:-1]] if stack else [], "\n".join(current)))
                level = len(heading.group(1))
                while stack and stack[-1][0] >= level:
                    stack.pop()
                stack.append((level, (heading.group(2) or "").strip()))
                current = [line]
                continue
        current.append(line)
    if "\n".join(current).strip():
        sections.append(([title for _, title in stack[:-1]] if stack else [], "\n".join(current)))
    return sections


def merge_lead(sections: list[tuple[list[str], str]], size: Callable[[str], int]) -> list[tuple[list[str], str]]:
    """A page's short opening (its title heading and a sentence or two) joins the first section under it: "This
    page says when a refund is possible" alone is a chunk that wins retrieval and holds no fact, while the rule it
    introduces sits in the next section."""
    if len(sections) < 2 or sections[0][0]:
        return sections
    (_, lead), (path, first) = sections[0], sections[1]
    heading = _HEADING.match(lead.lstrip().split("\n", 1)[0])
    title = (heading.group(2) or "").strip() if heading else ""
    if path != ([title] if heading else []) or size(lead) > LEAD_TOKENS:
        return sections
    if size(lead) + size(first) > CHUNK_TOKENS - 32:  # room for the title and section metadata
        return sections
    child = _HEADING.match(first.lstrip().split("\n", 1)[0])
    # the merged chunk is filed under the section it introduces ("Paying by invoice"), not under the page title
    merged_path = [*path, (child.group(2) or "").strip()] if child else path
    return [(merged_path, f"{lead.rstrip()}\n\n{first.strip()}"), *sections[2:]]


class FencedMarkdownParser(MarkdownNodeParser):
    """`MarkdownNodeParser` with CommonMark fences (``` and ~~~), a separator no heading contains, and a short
    untitled opening kept with the first section (`merge_lead`)."""

    tokenizer: Any = Field(default=None, exclude=True)

    def get_nodes_from_node(self, node: BaseNode) -> list[TextNode]:
        if node.metadata.get("file_type") == "text":  # plain text: a "# comment" line is not a heading
            return [self._build_node_from_split(node.get_content().strip(), node, "")]
        sections = markdown_sections(node.get_content())
        if self.tokenizer is not None:
            sections = merge_lead(sections, lambda text: len(self.tokenizer(text)))
        nodes = []
        for path, section in sections:
            if section.strip():
                nodes.append(self._build_node_from_split(section.strip(), node, _PATH_SEPARATOR.join(path)))
        return nodes


class SectionPath(TransformComponent):
    """Sets `section` from the heading path and the chunk's own heading (bounded), and drops `header_path`."""

    tokenizer: Any = Field(default=None, exclude=True)
    max_tokens: int = METADATA_TOKENS

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        for node in nodes:
            parts = [p for p in str(node.metadata.pop("header_path", "")).split(_PATH_SEPARATOR) if p.strip()]
            first_line = node.get_content().lstrip().split("\n", 1)[0]
            heading = _HEADING.match(first_line)
            if heading and (heading.group(2) or "").strip():
                parts.append((heading.group(2) or "").strip())
            title = str(node.metadata.get("title", "")).strip().lower()
            parts = [part for part in parts if part.strip().lower() != title]
            node.metadata["section"] = self._bounded(SECTION_SEPARATOR.join(_clip(part) for part in parts), title)
            for excluded in (node.excluded_embed_metadata_keys, node.excluded_llm_metadata_keys):
                if "header_path" in excluded:
                    excluded.remove("header_path")
        return nodes

    def _bounded(self, section: str, title: str) -> str:
        """The section, cut word by word until title and section fit `max_tokens` word pieces."""
        count: Callable[[str], int] = (lambda s: len(self.tokenizer(s))) if self.tokenizer else (lambda s: len(s) // 3)
        budget = self.max_tokens - count(title) - 8  # 8: the "title: " / "section: " labels and separators
        words = section.split()
        while words and count(" ".join(words)) > budget:
            words = words[: max(0, min(len(words) - 1, len(words) * 3 // 4))]
        bounded = " ".join(words)
        return bounded if bounded == section else (bounded + " …").strip()


def _clip(part: str) -> str:
    line = " ".join(part.split())
    return line if len(line) <= SECTION_PART_CHARS else line[: SECTION_PART_CHARS - 1].rstrip() + "…"


def node_parsers(tokenizer: Callable[[str], list[Any]]) -> list[TransformComponent]:
    """The chunking transformations, in order (an embed model goes after them in the pipeline)."""
    return [
        FencedMarkdownParser(include_prev_next_rel=False, header_path_separator=_PATH_SEPARATOR, tokenizer=tokenizer),
        SectionPath(tokenizer=tokenizer),
        SentenceSplitter(
            chunk_size=CHUNK_TOKENS,
            chunk_overlap=CHUNK_OVERLAP,
            tokenizer=tokenizer,
            chunking_tokenizer_fn=split_sentences,
            include_prev_next_rel=False,
        ),
    ]
