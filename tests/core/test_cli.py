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
