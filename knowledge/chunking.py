"""Structure-aware chunking: split at headings first, then long sections by sentences.

`MarkdownNodeParser` cuts a document at its headings, so a heading and the text under it stay in one chunk;
`SectionPath` turns LlamaIndex's `header_path` into a readable section ("Restore > From the web app"); a
`SentenceSplitter` sized in the embedding model's own word pieces splits only sections longer than the model reads
(256 pieces), so nothing is silently truncated. Title and section are part of the embedded and BM25 text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from llama_index.core.node_parser import MarkdownNodeParser, SentenceSplitter
from llama_index.core.schema import BaseNode, TransformComponent

CHUNK_TOKENS = 200
CHUNK_OVERLAP = 24
_HEADING = re.compile(r"^\s*#{1,6}\s+(.+?)\s*#*\s*$")
_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|\n+|$)\s*")


def split_sentences(text: str) -> list[str]:
    """Sentences and lines, by regex: nltk's punkt (LlamaIndex's default) reads data files we do not want to need."""
    return [part for part in _SENTENCE.findall(text) if part]


class SectionPath(TransformComponent):
    """Sets `section` from the heading path and the chunk's own heading, and drops LlamaIndex's `header_path`."""

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        for node in nodes:
            parts = [p for p in str(node.metadata.pop("header_path", "")).split("/") if p]
            first_line = node.get_content().lstrip().split("\n", 1)[0]
            heading = _HEADING.match(first_line)
            if heading:
                parts.append(heading.group(1))
            title = str(node.metadata.get("title", ""))
            if parts and parts[0].strip().lower() == title.strip().lower():
                parts = parts[1:]
            node.metadata["section"] = " > ".join(parts)
            for excluded in (node.excluded_embed_metadata_keys, node.excluded_llm_metadata_keys):
                if "header_path" in excluded:
                    excluded.remove("header_path")
        return nodes


def node_parsers(tokenizer: Callable[[str], list[Any]]) -> list[TransformComponent]:
    """The chunking transformations, in order (an embed model goes after them in the pipeline)."""
    return [
        MarkdownNodeParser(include_prev_next_rel=False),
        SectionPath(),
        SentenceSplitter(
            chunk_size=CHUNK_TOKENS,
            chunk_overlap=CHUNK_OVERLAP,
            tokenizer=tokenizer,
            chunking_tokenizer_fn=split_sentences,
            include_prev_next_rel=False,
        ),
    ]
