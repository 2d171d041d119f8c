"""Extractive answers quote the fact: whole units (never cut at a hard wrap), lists with their lead-in, table rows
with their header, short code blocks; the best section in document order within a word budget; over the real sample
KB, the refund window, invitation validity, API rate limit and the Ubuntu install command are quoted."""

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


def test_table_rows_carry_their_header_and_a_code_block_is_one_unit() -> None:
    units = segment(PAGE)
    assert "Team — Requests per minute: 600; Requests per day: 200,000" in [u.text for u in units]
    code = [u for u in units if u.kind == "code"]
    assert [u.text for u in code] == ["# not a heading: a shell comment\nacme-backup --version"]
    assert not any(u.quoted.lstrip().startswith("#") for u in units if u.kind != "code")
    long_block = "```\n" + "\n".join(f"line {n}" for n in range(40)) + "\n```\n\nAfter the block."
    assert [u.text for u in segment(long_block)] == ["After the block."]  # a whole file is no quote


def test_units_know_their_section_and_a_plain_text_underline_is_no_heading() -> None:
    units = segment("# Setup\n\nSign in first. Then pick a plan.\n\n## Linux\n\nInstall the package.\n")
    assert [(u.text, u.section, u.heading) for u in units] == [
        ("Sign in first.", 1, "Setup"),
        ("Then pick a plan.", 1, "Setup"),
        ("Install the package.", 2, "Linux"),
    ]
    assert units[0].paragraph == units[1].paragraph != units[2].paragraph
    plain = segment("STATUS AND BACKUPS\n------------------\n\nShows the state of the service.\n")
    assert [(u.text, u.heading) for u in plain] == [("Shows the state of the service.", "STATUS AND BACKUPS")]


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


def test_the_best_section_is_quoted_in_document_order_without_other_sections() -> None:
    hits = [Hit(node=TextNode(text=STEPS, metadata={"title": "Hotspot"}), score=1.0, cosine=0.6)]
    question = "How do I share my connection with other devices?"
    text = ExtractiveAnswerer(Bm25Encoder(), second_share=0.0).answer(question, hits).text
    # the section's sentences in the page's order, one paragraph on one line, its heading in the label
    assert "**Hotspot** (Mobile hotspot):" in text
    assert "open Settings and tap Connections. Then tap Mobile hotspot and tethering. Finally tap the switch" in text
    assert "two hours" not in text  # another heading's text is no continuation


def test_a_section_cut_into_two_passages_is_one_section_in_document_order() -> None:
    # The chunker cut "If you lost your second factor" in two; only the first passage starts with the heading line,
    # and retrieval ranks the continuation first. Both are one section: one label, the heading's start first.
    section = "If you lost your second factor"
    meta = {"title": "Two-factor authentication", "section": section, "source": "2fa.md"}
    opening = f"## {section}\n\n- Team members: ask a team Admin to reset your second factor.\n"
    rest = "Everyone else: contact support from the sign-in page. Verification takes 3 to 5 business days.\n"
    hits = [
        Hit(node=TextNode(text=rest, metadata=meta, start_char_idx=90), score=1.0, cosine=0.6),
        Hit(node=TextNode(text=opening, metadata=meta), score=0.9, cosine=0.55),
    ]
    question = "I lost my second factor, how do I get back in?"
    text = ExtractiveAnswerer(Bm25Encoder(), second_share=0.0).answer(question, hits).text
    assert text.count("**Two-factor authentication**") == 1
    assert f"**Two-factor authentication** ({section}):" in text
    lines = quoted_lines(text)
    team = next(n for n, line in enumerate(lines) if "Team members" in line)
    support = next(n for n, line in enumerate(lines) if "contact support" in line)
    assert team < support  # the page's order, not the retrieval order
    assert lines[team].endswith("[2]") and lines[support].endswith("[1]")  # each unit cites its own passage


INSTALL = """# Installing the desktop app

The app runs on Windows, macOS and Linux. The current version is 4.2.

## Updating the app

Windows and macOS apps install the update the next time the app restarts. Linux updates arrive through your
package manager.

## Ubuntu and Debian

```
sudo apt install ./acme-backup_4.2.0_amd64.deb
sudo systemctl enable --now acme-backup
```

On Arm64 Ubuntu use `acme-backup_4.2.0_arm64.deb`.
"""


def test_a_command_in_a_code_block_is_quoted_with_its_section() -> None:
    hits = [Hit(node=TextNode(text=INSTALL, metadata={"title": "Installing"}), score=1.0, cosine=0.6)]
    text = ExtractiveAnswerer(Bm25Encoder(), second_share=0.0).answer("How do I install the app on Ubuntu?", hits).text
    lines = text.splitlines()
    assert "**Installing** (Ubuntu and Debian):" in lines
    start = lines.index("> ```")
    assert lines[start : start + 4] == [
        "> ```",
        "> sudo apt install ./acme-backup_4.2.0_amd64.deb",
        "> sudo systemctl enable --now acme-backup",
        "> ```",
    ]
    assert lines.index("> On Arm64 Ubuntu use `acme-backup_4.2.0_arm64.deb`. [1]") > start  # document order
    assert "update the next time" not in text


def test_a_long_section_is_quoted_within_the_word_budget_around_its_best_unit() -> None:
    filler = " ".join(f"Step {n} of the setup is routine." for n in range(30))
    page = f"## Setup\n\n{filler}\n\nThe vault key expires after 90 days.\n\n{filler}\n"
    hits = [Hit(node=TextNode(text=page, metadata={"title": "Setup"}), score=1.0, cosine=0.6)]
    answerer = ExtractiveAnswerer(Bm25Encoder(), budget=40)
    picks = answerer.select("When does the vault key expire?", hits)
    assert "The vault key expires after 90 days." in [pick.unit.text for pick in picks]
    assert sum(len(pick.unit.quoted.split()) for pick in picks) <= 40
    positions = [pick.unit.position for pick in picks]
    assert positions == list(range(positions[0], positions[0] + len(positions)))  # one run, in order


API_KEYS = """## Creating an API key

1. Sign in to the web console and open **Developer > API keys**. Only Owners and Admins see this page.
2. Click **Create key**.
3. Give the key a name, for example "Monitoring script".
4. Choose the scopes the key needs.
5. Choose an expiry: 30 days, 90 days, 365 days (the default) or no expiry.
6. Click **Create** and copy the key. It starts with `acb_live_` and is shown **only once**.

An account can have up to 10 active keys. Delete a key under **Developer > API keys** to revoke it immediately.
Creating and deleting keys is recorded in the audit log on Team plans, which keeps it for one year.
"""


def test_numbered_steps_are_quoted_from_the_first_step_when_they_fit() -> None:
    # The steps that share the question's words are 2 and 6; the budget cannot hold the steps and the paragraph
    # after them. Before, the run with the most score started at step 2 and took the paragraph: "Click Create key"
    # with no word of where.
    hits = [Hit(node=TextNode(text=API_KEYS, metadata={"title": "API"}), score=1.0, cosine=0.6)]
    answerer = ExtractiveAnswerer(Bm25Encoder(), budget=90, second_share=0.0)
    quoted = [pick.unit.text for pick in answerer.select("How do I create a key and copy it?", hits)]
    assert quoted[0].startswith("1. Sign in to the web console")
    assert [text.split(".")[0] for text in quoted[:6]] == ["1", "2", "3", "4", "5", "6"]
    # when the steps before the best one cannot fit, the run may still start within the list
    tight = ExtractiveAnswerer(Bm25Encoder(), budget=25, second_share=0.0)
    quoted = [pick.unit.text for pick in tight.select("How long can the key's expiry be?", hits)]
    assert any(text.startswith("5. Choose an expiry") for text in quoted)


def test_a_unit_two_overlapping_passages_hold_is_quoted_once() -> None:
    # Chunks overlap: the step that ends the first passage opens the second one of the same section.
    meta = {"title": "Installing", "section": "Windows", "source": "install.md"}
    first = "## Windows\n\n1. Download the installer.\n2. Double-click it, click **Yes**.\n3. Click **Start backup**.\n"
    second = "3. Click **Start backup**.\n\nThe app is installed in `C:\\Program Files\\Acme Backup`.\n"
    hits = [
        Hit(node=TextNode(text=first, metadata=meta), score=1.0, cosine=0.6),
        Hit(node=TextNode(text=second, metadata=meta, start_char_idx=80), score=0.9, cosine=0.55),
    ]
    text = ExtractiveAnswerer(Bm25Encoder(), second_share=0.0).answer("How do I install on Windows?", hits).text
    assert text.count("Start backup") == 1, text
    assert "1. Download the installer." in text and "C:\\Program Files\\Acme Backup" in text
    # one passage that says a thing twice keeps both: they are two steps, not an overlap
    twice = "## Windows\n\nTo rename it, type a name. Click **Save**.\n\nTo move it, pick a folder. Click **Save**.\n"
    hits = [Hit(node=TextNode(text=twice, metadata=meta), score=1.0, cosine=0.6)]
    text = ExtractiveAnswerer(Bm25Encoder(), second_share=0.0).answer("How do I rename it?", hits).text
    assert text.count("Click **Save**.") == 2, text


FACTS: list[tuple[str, Callable[[str], bool]]] = [
    ("How long do I have to ask for a refund?", lambda q: "within **14 days** of the charge" in q),
    ("How long is a team invitation valid?", lambda q: "expire after **7 days**" in q),
    ("What is the API rate limit?", lambda q: "600" in q),
    ("How do I install the app on Ubuntu?", lambda q: "sudo apt install ./acme-backup_4.2.0_amd64.deb" in q),
]


@pytest.mark.long
@pytest.mark.slow  # indexes the sample knowledge base
@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(
    ("question", "states_fact"), FACTS, ids=["refund-14-days", "invite-7-days", "api-600", "ubuntu-apt"]
)
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
        fenced = False
        for line, following in zip(lines, [*lines[1:], ""], strict=True):
            body = line.lstrip("> ").strip()
            if body.startswith(("```", "~~~~")) or fenced:  # a code block is quoted verbatim
                fenced = fenced != body.startswith(("```", "~~~~"))
                continue
            assert not body.startswith("#"), line  # no heading markers inside a quote
            assert body.count("**") % 2 == 0, line  # emphasis never cut in half
            if line.startswith(">") and body.endswith(":"):  # a lead-in is followed by its list, never left dangling
                assert re.match(r">\s*(-|\d+\.) ", following), (line, following)
        markers = [int(n) for n in re.findall(r"\[(\d+)\]", answer.text)]
        assert markers and sorted(set(markers)) == list(range(1, max(markers) + 1))
        assert [c.index for c in answer.citations] == list(range(1, len(answer.citations) + 1))
