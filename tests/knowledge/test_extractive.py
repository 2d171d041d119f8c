"""Extractive answers quote the fact: whole units (never cut at a hard wrap), lists with their lead-in, table rows
with their header; over the real sample KB, the refund window, invitation validity and API rate limit are quoted."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from llama_index.core.schema import TextNode

from knowledge.answerers import ExtractiveAnswerer
from knowledge.config import KnowledgeConfig
from knowledge.retrieval import Hit
from knowledge.segments import segment, sentences, unwrap
from knowledge.service import KnowledgeService, build_knowledge
from knowledge.sparse import Bm25Encoder

SAMPLE_KB = Path(__file__).resolve().parents[2] / "examples" / "kb"

PAGE = """# Containers

When the agent runs in a container, the configuration path on the host must be a folder. Create the folder
`/var/lib/acme/config` and start the container again.

You can get a **full refund** within **14 days** of the charge, if the charge was for:

- a new paid subscription, or
- an automatic **annual** renewal that was
  charged by mistake.

```bash
# not a heading: a shell comment
acme-backup --version
```

| Plan | Requests per minute | Requests per day |
|---|---|---|
| Pro | 120 | 20,000 |
| Team | 600 | 200,000 |

1. Click **Restore** and choose where to put the files:
   - **Original location** puts them back.
   - **Download** gives you a zip file.
"""


def test_a_hard_wrap_is_never_a_sentence_boundary() -> None:
    units = [u.text for u in segment(PAGE)]
    assert "Create the folder `/var/lib/acme/config` and start the container again." in units
    assert unwrap(["A paragraph that was wrapped at", "eighty columns by an editor."]) == [
        "A paragraph that was wrapped at eighty columns by an editor."
    ]
    assert unwrap(["Wireless PowerShare", "Wirelessly charge your watch."]) == [
        "Wireless PowerShare",
        "Wirelessly charge your watch.",
    ]


def test_sentences_keep_abbreviations_and_versions_whole() -> None:
    assert sentences("Use a key, e.g. a YubiKey. Version 2.1 is out. Then restart.") == [
        "Use a key, e.g. a YubiKey.",
        "Version 2.1 is out.",
        "Then restart.",
    ]


def test_list_items_carry_their_lead_in_and_nested_items() -> None:
    units = segment(PAGE)
    whole = next(u for u in units if u.kind == "list")
    assert whole.lead.startswith("You can get a **full refund** within **14 days**")
    assert whole.text.splitlines() == [
        "- a new paid subscription, or",
        "- an automatic **annual** renewal that was charged by mistake.",
    ]
    assert all(u.text != whole.lead for u in units)  # the lead-in is never quoted alone, dangling on its colon
    restore = next(u for u in units if u.text.startswith("1. Click **Restore**"))
    assert "**Original location**" in restore.text and "**Download**" in restore.text


def test_table_rows_carry_their_header_and_code_is_not_quoted() -> None:
    units = segment(PAGE)
    assert "Team — Requests per minute: 600; Requests per day: 200,000" in [u.text for u in units]
    assert not any("shell comment" in u.quoted or "--version" in u.quoted for u in units)
    assert not any(u.quoted.lstrip().startswith("#") for u in units)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sample_kb(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[KnowledgeService]:
    """The shipped sample KB through the real engine and the extractive answerer (no API key). Abstention is off
    here: what is checked is which sentences get quoted, not the confidence threshold (tested elsewhere)."""
    models = tmp_path_factory.mktemp("models")
    config = KnowledgeConfig(data_dir=models, abstain_threshold=0.0)
    service = build_knowledge(config, root=tmp_path_factory.mktemp("index"))
    report = await service.ingest([SAMPLE_KB])
    assert report.files_skipped == 0
    yield service
    await service.close()


def quoted_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(">")]


STEPS = """## Mobile hotspot
To share your connection with other devices, open Settings and tap Connections. Then tap Mobile hotspot and
tethering. Finally tap the switch at the top.

## Battery
Charging takes about two hours. Sharing a connection uses more battery.
"""


def test_the_steps_right_after_the_best_unit_are_quoted_with_it() -> None:
    hits = [Hit(node=TextNode(text=STEPS, metadata={"title": "Hotspot"}), score=1.0, cosine=0.6)]
    question = "How do I share my connection with other devices?"
    text = ExtractiveAnswerer(Bm25Encoder()).answer(question, hits).text
    assert "Then tap Mobile hotspot" in text and "Finally tap the switch" in text  # the two steps after the best
    assert "two hours" not in text  # another heading's text is no continuation
    alone = ExtractiveAnswerer(Bm25Encoder(), window=0).answer(question, hits).text
    assert "Finally tap the switch" not in alone


FACTS: list[tuple[str, Callable[[str], bool]]] = [
    ("How long do I have to ask for a refund?", lambda q: "within **14 days** of the charge" in q),
    ("How long is a team invitation valid?", lambda q: "expire after **7 days**" in q),
    ("What is the API rate limit?", lambda q: "600" in q),
]


@pytest.mark.long
@pytest.mark.slow  # indexes the sample knowledge base
@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(("question", "states_fact"), FACTS, ids=["refund-14-days", "invite-7-days", "api-600"])
async def test_sample_kb_answers_quote_the_fact(
    sample_kb: KnowledgeService, question: str, states_fact: Callable[[str], bool]
) -> None:
    answer = await sample_kb.answer(question)
    assert answer.answerer == "extractive" and not answer.abstained
    assert any(states_fact(line) for line in quoted_lines(answer.text)), answer.text


@pytest.mark.slow  # indexes the sample knowledge base
@pytest.mark.asyncio(loop_scope="module")
async def test_extractive_text_is_clean_markdown(sample_kb: KnowledgeService) -> None:
    for question, _ in FACTS:
        answer = await sample_kb.answer(question)
        lines = answer.text.splitlines()
        for line, following in zip(lines, [*lines[1:], ""], strict=True):
            body = line.lstrip("> ").strip()
            assert not body.startswith("#"), line  # no heading markers inside a quote
            assert body.count("**") % 2 == 0, line  # emphasis never cut in half
            if line.startswith(">") and body.endswith(":"):  # a lead-in is followed by its list, never left dangling
                assert re.match(r">\s*(-|\d+\.) ", following), (line, following)
        markers = [int(n) for n in re.findall(r"\[(\d+)\]", answer.text)]
        assert markers and sorted(set(markers)) == list(range(1, max(markers) + 1))
        assert [c.index for c in answer.citations] == list(range(1, len(answer.citations) + 1))
