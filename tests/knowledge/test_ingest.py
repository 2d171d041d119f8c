"""Ingestion: formats, structure-aware chunks, incremental runs, deletes, bad files, restarts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot.ports import SystemClock
from bot.store.db import Database
from bot.store.documents import DocumentStateStore
from knowledge.config import KnowledgeConfig
from knowledge.service import KnowledgeService, build_knowledge

pytestmark = pytest.mark.slow  # loads the embedding model and builds an index: not in the fast tier


def tiny_pdf(text: str) -> bytes:
    """A minimal one-page PDF with a line of text (pypdf extracts it)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


async def test_first_run_ingests_every_format_and_second_run_is_a_no_op(knowledge: KnowledgeService, kb: Path) -> None:
    (kb / "manual.pdf").write_bytes(tiny_pdf("The Cloudbox hardware appliance has two USB ports."))
    first = await knowledge.ingest([kb])
    assert first.files_seen == 6 and first.files_skipped == 0
    assert first.chunks_added > 6 and first.docs_added == 6
    second = await knowledge.ingest([kb])
    assert second.chunks_added == 0 and second.chunks_deleted == 0
    assert second.docs_unchanged == 6
    assert await knowledge.ready()


async def test_chunks_carry_title_section_source_url_and_time(knowledge: KnowledgeService, kb: Path) -> None:
    await knowledge.ingest([kb])
    answer = await knowledge.answer("How do I restore files from the web console?")
    assert not answer.abstained
    top = answer.citations[0]
    assert top.title == "Restoring files"
    assert top.section == "Restore from the web console"
    assert top.url == "https://help.example.com/backup/restore"
    assert top.source == top.url  # a public link, never the file's path on the server
    html = await knowledge.answer("Can business plans pay by bank transfer against an invoice?")
    assert html.citations[0].title == "Payment methods"
    assert html.citations[0].section == "Paying by invoice"
    assert html.citations[0].url == "https://help.example.com/billing/payment-methods"
    assert "tracking" not in html.text  # scripts are dropped


async def test_pdf_pages_become_sections(knowledge: KnowledgeService, kb: Path) -> None:
    (kb / "appliance.pdf").write_bytes(tiny_pdf("The Cloudbox hardware appliance has two USB ports."))
    await knowledge.ingest([kb])
    answer = await knowledge.answer("How many USB ports does the hardware appliance have?")
    assert answer.citations and answer.citations[0].section == "Page 1"


async def test_changed_file_replaces_its_chunks_and_deleted_file_disappears(
    knowledge: KnowledgeService, kb: Path
) -> None:
    await knowledge.ingest([kb])
    before = await knowledge.chunk_count()
    page = kb / "backup" / "restore-files.md"
    page.write_text(page.read_text().replace("90 days", "180 days"))
    changed = await knowledge.ingest([kb])
    assert changed.docs_updated == 1 and changed.chunks_deleted > 0 and changed.chunks_added == changed.chunks_deleted
    assert await knowledge.chunk_count() == before
    answer = await knowledge.answer("How long are old versions of files kept?")
    assert "180 days" in answer.text and "90 days" not in answer.text

    (kb / "billing" / "payment-methods.html").unlink()
    deleted = await knowledge.ingest([kb])
    assert deleted.docs_deleted == 1 and deleted.chunks_deleted > 0
    gone = await knowledge.answer("Do you accept American Express or PayPal?")
    assert all(c.title != "Payment methods" for c in gone.citations)


async def test_ingesting_one_folder_leaves_another_alone(knowledge: KnowledgeService, kb: Path) -> None:
    await knowledge.ingest([kb / "backup"])
    total = await knowledge.chunk_count()
    report = await knowledge.ingest([kb / "billing"])
    assert report.chunks_deleted == 0
    assert await knowledge.chunk_count() > total


async def test_bad_files_are_skipped_with_one_line_each(knowledge: KnowledgeService, kb: Path) -> None:
    (kb / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (kb / "binary.md").write_bytes(b"\x00\x01\x02\x03" * 100)
    (kb / "empty.txt").write_text("")
    (kb / "huge.txt").write_bytes(b"a" * 26_000_000)
    (kb / "logo.png").write_bytes(b"\x89PNG")  # unsupported types are not knowledge files: ignored
    report = await knowledge.ingest([kb, kb / "missing-folder"])
    assert report.files_skipped == 5
    reasons = "\n".join(str(item) for item in report.skipped)
    assert "broken.pdf: unreadable PDF" in reasons
    assert "binary.md: binary content" in reasons
    assert "empty.txt: empty file" in reasons
    assert "huge.txt: too large" in reasons
    assert "missing-folder: not found" in reasons
    assert report.docs_added == 5  # the good files went in anyway
    assert all("\n" not in str(item) for item in report.skipped)


async def test_restart_keeps_the_index(
    make_settings: Callable[..., KnowledgeConfig], kb: Path, tmp_path: Path, sqlite_db: Database
) -> None:
    root = tmp_path / "index"
    states = DocumentStateStore(sqlite_db, SystemClock(), "supportbot")
    first = build_knowledge(make_settings(), root=root, states=states, holder="first")
    added = (await first.ingest([kb])).chunks_added
    await first.close()
    second = build_knowledge(make_settings(), root=root, states=states, holder="second")
    try:
        assert await second.chunk_count() == added
        report = await second.ingest([kb])
        assert report.chunks_added == 0 and report.docs_unchanged == 5
        assert not (await second.answer("Which credit cards do you accept?")).abstained
    finally:
        await second.close()
