"""Ingestion never fails on one document: hostile pages are chunked or skipped with a reason; the rest go in."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from llama_index.core.ingestion import run_transformations
from llama_index.core.schema import MetadataMode

from knowledge.chunking import markdown_sections, node_parsers
from knowledge.embedding import MAX_TOKENS, model_tokenizer
from knowledge.readers import Origin, SkipFile, decode_text, read_file
from knowledge.service import KnowledgeService
from tests.knowledge.conftest import FIXTURES

pytestmark = pytest.mark.slow  # loads the embedding model and builds an index: not in the fast tier

GOOD = {
    "docker-errors.md",  # 300+ character error messages as headings
    "shell-snippets.md",  # `#` lines inside ``` and ~~~ code blocks
    "latin1-office-hours.txt",
    "utf16-retention.md",  # UTF-16 with a BOM
    "bad-utf8-billing.md",  # UTF-8 with two invalid bytes
    "huge-table.md",
    "wide-heading-words.md",
}
SKIPPED = {
    "broken.pdf": "unreadable PDF",
    "empty.md": "empty file",
    "whitespace-only.md": "no text",
    "front-matter-only.md": "no text",
    "junk-binary.md": "binary content",
    "junk-no-nul.md": "binary content",
}


def hostile_corpus(target: Path) -> Path:
    """The committed hostile pages plus the big ones, generated here to keep the repository small."""
    shutil.copytree(FIXTURES / "hostile", target)
    rows = "\n".join(f"| plan-{n} | {n * 3} GB | {n} devices | {'yes' if n % 2 else 'no'} |" for n in range(400))
    (target / "huge-table.md").write_text(
        "# Plan matrix\n\nEvery plan and its limits.\n\n| Plan | Storage | Devices | Priority support |\n"
        "|---|---|---|---|\n" + rows + "\n"
    )
    word = "Supercalifragilistic" * 20
    (target / "wide-heading-words.md").write_text(f"# {word}\n\n## {word} {word}\n\nOne sentence of text.\n")
    return target


async def test_hostile_folder_indexes_every_good_page_and_names_each_skipped_one(
    knowledge: KnowledgeService, tmp_path: Path
) -> None:
    folder = hostile_corpus(tmp_path / "hostile")
    report = await knowledge.ingest([folder])
    reasons = {Path(item.path).name: item.reason for item in report.skipped}
    assert set(reasons) == set(SKIPPED), report.summary()
    for name, reason in SKIPPED.items():
        assert reason in reasons[name]
    assert report.files_seen == len(GOOD) + len(SKIPPED)
    assert report.docs_added == len(GOOD)
    paris = await knowledge.answer("When does the Paris office answer tickets in French?")
    assert "Café" in paris.text and "17:00" in paris.text  # latin-1 decoded, not mojibake
    trash = await knowledge.answer("How long are deleted files kept in the trash?")
    assert "30 days" in trash.text  # UTF-16 with a BOM
    summary = report.summary()
    assert all(name in summary for name in SKIPPED)
    assert all(len(line) < 300 for line in summary.splitlines())


async def test_long_error_heading_is_answerable_and_its_fix_quoted(knowledge: KnowledgeService, tmp_path: Path) -> None:
    folder = hostile_corpus(tmp_path / "hostile")
    await knowledge.ingest([folder])
    answer = await knowledge.answer("The agent cannot resolve backup-api.acme.example, UnknownHostException. Fix?")
    assert not answer.abstained
    assert "DNS" in answer.text
    assert all(len(c.section) <= 200 for c in answer.citations)


def test_a_200_kb_page_chunks_within_the_model_window(tmp_path: Path, model_home: Path) -> None:
    # chunked, not embedded: 400 chunks would take minutes on a busy CI machine, and chunking is where pages break
    paragraph = "The agent retries a failed upload with exponential backoff and resumes where it stopped. " * 12
    sections = [f"## Upload behaviour {n}: {'/var/lib/acme/' * 20}\n\n{paragraph}\n" for n in range(200)]
    page = tmp_path / "long-page.md"
    page.write_text("# Upload internals\n\n" + "\n".join(sections))
    assert page.stat().st_size > 200_000
    tokenizer = model_tokenizer(model_home)
    chunks = run_transformations([read_file(page)], node_parsers(tokenizer))
    assert len(chunks) >= 200
    assert max(len(tokenizer(c.get_content(MetadataMode.EMBED))) for c in chunks) <= MAX_TOKENS
    assert all(str(c.metadata["section"]).startswith("Upload behaviour") for c in chunks[1:])


def test_hash_lines_inside_code_fences_are_not_headings() -> None:
    text = (FIXTURES / "hostile" / "shell-snippets.md").read_text()
    sections = markdown_sections(text)
    assert len(sections) == 1  # only the page's own heading starts a section
    assert "acme-backup --version" in sections[0][1]


def test_decoding_accepts_text_in_common_encodings_and_refuses_junk() -> None:
    assert decode_text("Café — déjà vu".encode("utf-16")) == "Café — déjà vu"
    assert decode_text("Café au lait".encode("latin-1")) == "Café au lait"
    assert decode_text("déjà vu ".encode() + b"\xff" + " naïve".encode()) == "déjà vu \ufffd naïve"
    assert decode_text(b"line one\r\nline two\r\n") == "line one\nline two\n"
    for junk in (b"\x00\x01\x02" * 50, bytes(range(1, 32)) * 40):
        try:
            decode_text(junk)
        except SkipFile as exc:
            assert "binary" in str(exc)
        else:
            raise AssertionError("junk decoded as text")


def test_a_short_page_opening_is_chunked_with_the_section_it_introduces(tmp_path: Path, model_home: Path) -> None:
    page = tmp_path / "refunds.md"
    page.write_text(
        "# Refund policy\n\nThis page says when a refund is possible.\n\n## The 14-day window\n\n"
        "You can get a full refund within 14 days of the charge.\n\n## Exceptions\n\nDuplicate charges are refunded.\n"
    )
    chunks = run_transformations([read_file(page)], node_parsers(model_tokenizer(model_home)))
    assert [c.metadata["section"] for c in chunks] == ["The 14-day window", "Exceptions"]
    assert "This page says" in chunks[0].get_content() and "within 14 days" in chunks[0].get_content()


def test_public_url_is_the_base_joined_with_the_path_under_the_kb(tmp_path: Path) -> None:
    page = tmp_path / "billing" / "refund policy.md"
    page.parent.mkdir()
    page.write_text("# Refund policy\n\nFull refund within 14 days.\n")
    document = read_file(page, Origin("billing/refund policy.md", "https://help.acme.example/"))
    assert document.metadata["url"] == "https://help.acme.example/billing/refund%20policy"
    assert document.metadata["source"] == "billing/refund policy.md"
    page.write_text("---\nurl: https://acme.example/refunds\n---\n# Refund policy\n\nFull refund within 14 days.\n")
    assert read_file(page, Origin("billing/refund policy.md", "https://help.acme.example/")).metadata["url"] == (
        "https://acme.example/refunds"  # the page's own url wins
    )


def test_plain_text_has_no_markdown_headings(tmp_path: Path, model_home: Path) -> None:
    page = tmp_path / "agent.conf.txt"
    page.write_text("Agent settings.\n# the proxy host\nproxy = 10.0.0.1\n# the port\nport = 8443\n")
    chunks = run_transformations([read_file(page)], node_parsers(model_tokenizer(model_home)))
    assert len(chunks) == 1 and chunks[0].metadata["section"] == ""
