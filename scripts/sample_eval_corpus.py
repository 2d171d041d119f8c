"""Write the sample eval sets' corpus.jsonl from examples/kb, read by the same readers as ingestion.

Run after editing a page of the sample knowledge base: `uv run python scripts/sample_eval_corpus.py`. The eval gate
(`tests/knowledge/test_eval_gate.py`) fails while the corpus and the pages disagree.
"""

from __future__ import annotations

import json
from pathlib import Path

from knowledge.beir import knowledge_base_corpus

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def main() -> None:
    rows = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in knowledge_base_corpus(EXAMPLES / "kb"))
    for name in ("acme_help_qa", "acme_help_noisy"):
        (EXAMPLES / "eval" / name / "corpus.jsonl").write_text(rows, encoding="utf-8")
        print(f"wrote examples/eval/{name}/corpus.jsonl")


if __name__ == "__main__":
    main()
