"""The `supportbot` commands end to end, each as its own process on a fresh DATA_DIR (embedded defaults)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.cli import run_cli

pytestmark = pytest.mark.slow

PAGE = """---
title: Parking at the Acme office
url: https://help.acme.example/office/parking
---
# Parking at the Acme office

Visitors park in the north garage. The garage gate code for visitors is 4711 and changes every month.
"""


def _cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, data_dir=data_dir)


@pytest.mark.long
def test_operator_commands_end_to_end(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "parking.md").write_text(PAGE)

    upgraded = _cli("db", "upgrade", data_dir=data)
    assert upgraded.returncode == 0 and "up to date" in upgraded.stdout, upgraded.stderr
    assert (data / "supportbot.db").stat().st_mode & 0o777 == 0o600  # nobody else reads customers' messages

    ingested = _cli("ingest", str(kb), data_dir=data)
    assert ingested.returncode == 0, ingested.stderr
    for path in data.rglob("*"):
        assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"
    assert "1 files: 1 added" in ingested.stdout

    asked = _cli("ask", "--json", "What is the garage gate code for visitors?", data_dir=data)
    assert asked.returncode == 0, asked.stderr
    [reply] = json.loads(asked.stdout)
    assert "4711" in reply["text"]
    assert reply["citations"][0]["title"].startswith("Parking")

    for command, expected in [
        (("tickets",), ""),
        (("gaps",), ""),
        (("replay",), "0 inbound dead letter(s), 0 undelivered reply(ies)"),
        (("forget", "nobody@example.org"), "forgot nobody@example.org: 0 row(s) erased"),
    ]:
        result = _cli(*command, data_dir=data)
        assert result.returncode == 0, (command, result.stderr)
        assert expected in result.stdout
        assert "Traceback" not in result.stderr

    report = _cli("report", "--week", "2026-W46", "--dry-run", "--out", str(tmp_path / "r.png"), data_dir=data)
    assert report.returncode == 0, report.stderr
    assert "2026-W46" in report.stdout and (tmp_path / "r.png").read_bytes().startswith(b"\x89PNG")

    unknown = _cli("job", "no_such_job", data_dir=data)
    assert unknown.returncode == 2 and "weekly_report" in unknown.stderr and "Traceback" not in unknown.stderr


def test_doctor_reports_each_check_without_secrets(tmp_path: Path) -> None:
    env_secret = "sk-ant-doctor-secret-1234"
    extra = {
        "ANTHROPIC_API_KEY": env_secret,
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
        "TICKET_BACKEND": "zendesk",
        "SLACK_BOT_TOKEN": "xoxb-doctor-test",
        "SLACK_SIGNING_SECRET": "doctor-signing-secret",
    }
    result = run_cli("doctor", data_dir=tmp_path, env=extra)
    out = result.stdout
    assert "[warn] SLACK_AGENT_USERS: empty: nobody can claim or resolve a case" in out
    assert env_secret not in out + result.stderr
    assert "[ok  ] DATABASE_URL" in out and "[ok  ] EMBEDDING_MODEL" in out
    assert "[FAIL] TICKET_BACKEND: zendesk: missing ZENDESK_URL" in out
    assert result.returncode == 1 and "check(s) failed" in out


def test_eval_answers_prints_the_rates_and_each_question(tmp_path: Path) -> None:
    """`eval answers DIR --holdout F --json --questions` as an operator runs it on a folder of their own: the rates,
    and per question its kind and what it cited, so a wrong answer can be traced."""
    folder = tmp_path / "set"
    folder.mkdir()
    pages = {
        "gate": ("Parking", "Visitors park in the north garage. The visitor gate code is 4711."),
        "wifi": ("Guest wifi", "The guest wifi network is AcmeGuest and its password is on the reception desk."),
        "lunch": ("Canteen", "The canteen serves lunch from noon to two on weekdays."),
    }
    rows = [{"_id": key, "title": title, "text": text} for key, (title, text) in pages.items()]
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(row) for row in rows))
    questions = {"q1": "What is the visitor gate code?", "q2": "When does the canteen serve lunch?"}
    (folder / "queries.jsonl").write_text("\n".join(json.dumps({"_id": k, "text": v}) for k, v in questions.items()))
    (folder / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tgate\t1\nq2\tlunch\t1\n")
    answers = {"q1": "The visitor gate code is 4711.", "q2": "From noon to two on weekdays."}
    (folder / "answers.jsonl").write_text("\n".join(json.dumps({"id": k, "answer": v}) for k, v in answers.items()))

    result = _cli("eval", "answers", str(folder), "--holdout", "0.5", "--json", "--questions", data_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["summary"]["answerable"] == 1 and report["summary"]["held_out"] == 1
    kinds = {row["question_id"]: row["kind"] for row in report["questions"]}
    assert sorted(kinds.values()).count("off_topic") == 30 and {kinds["q1"], kinds["q2"]} == {"answerable", "held_out"}
    [answerable] = [row for row in report["questions"] if row["kind"] == "answerable"]
    assert answerable["source_hit"] and answerable["fact"] and answerable["cited"]
