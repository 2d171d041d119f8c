"""Keep the knowledge engine off the network.

Several libraries reach for the internet on first use: the Hugging Face hub (model files), tiktoken (BPE files)
and nltk (punkt). LlamaIndex also falls back to OpenAI when no embed model or LLM is set. `go_offline()` sets the
libraries' own offline switches and pins LlamaIndex's globals to local objects, so a fresh machine with no network
ingests, answers and evaluates. It is idempotent and called by every entry point of this package.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

_OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "ANONYMIZED_TELEMETRY": "False",
}


def go_offline(tokenizer: Callable[[str], list[Any]] | None = None) -> None:
    """Set offline switches and LlamaIndex globals (no OpenAI fallback, a local tokenizer)."""
    for key, value in _OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    # LlamaIndex ships its own nltk and tiktoken caches; point the libraries at them rather than the network.
    from llama_index.core import Settings
    from llama_index.core.llms import MockLLM

    # Never the OpenAI default; real answerers are passed explicitly. (Setting None would print a line on stdout,
    # which breaks `supportbot ask --json`.)
    Settings.llm = MockLLM()
    Settings.tokenizer = tokenizer or word_tokenizer  # never tiktoken's downloaded encodings


def word_tokenizer(text: str) -> list[str]:
    """A dependency-free token counter (whitespace words); close enough for budgeting prompt sizes."""
    return text.split()
