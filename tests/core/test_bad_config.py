"""Every bad setting, unreachable dependency and bad input ends in one clear line naming what to fix, never a
traceback: a table of them.

- settings checked at load (any command, here `serve` and `doctor`): one line, exit code 2;
- dependencies `doctor` tries for real (the embedding model by name, Qdrant, the Anthropic key with one cheap
  authenticated call against the fake API): one `[FAIL] VARIABLE: ... what to do` line each, exit code 1;
- command mistakes (a missing path or folder, `ask` where there is no index): one line, exit code 2;
- invalid text in a question over the JSON API: cleaned at the edge, answered (never a 503 or a dead letter).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from app.build import build_service
from app.serve import SupportApp
from app.settings import Settings
from knowledge.edge_store import EdgeVectorStore
from knowledge.fusion import FusionPlan
from knowledge.sparse import Bm25Encoder
from tests.cli import cli_env, run_cli
from tests.doubles import ScriptedKnowledge
from tests.fakes.anthropic_server import FakeAnthropic

# real servers, subprocesses or long scenarios: not in the fast tier; ~20 processes in all: the file starts first
pytestmark = [pytest.mark.slow, pytest.mark.long]

GOOD_KEY = "sk-ant-good-key-123456"
BAD_KEY = "sk-ant-rejected-key-999"
API_KEY = "api-key-1234567890abcdef"
SAMPLE_SET = Path(__file__).resolve().parents[2] / "examples" / "eval" / "acme_help_qa"


def _run(args: list[str], env_extra: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, data_dir=tmp_path, env=env_extra, timeout=120)


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.mark.parametrize(
    ("command", "env", "expected"),
    [
        ("serve", {"HTTP_PORT": "eighty"}, "HTTP_PORT"),
        ("serve", {"IMAP_SECURITY": "maybe"}, "IMAP_SECURITY"),
        ("serve", {"TIMEZONE": "Mars/Olympus"}, "TIMEZONE"),
        ("serve", {"DATABASE_URL": "mysql://x@y/z"}, "DATABASE_URL"),
        ("serve", {"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}, "database not reachable"),
        ("serve", {"EMBEDDING_MODEL": "BAAI/bge-small-en-v1.5"}, "EMBEDDING_MODEL"),  # not shipped; we are offline
        ("serve", {"EMBEDDING_MODEL": "doesnotexist"}, "EMBEDDING_MODEL 'doesnotexist' is not a fastembed text model"),
        ("serve", {"REPORT_SCHEDULE": "whenever"}, "REPORT_SCHEDULE"),
        ("doctor", {"REPORT_SCHEDULE": "whenever"}, "e.g. '0 9 * * mon'"),
        ("serve", {"API_KEYS": "short-key"}, "API_KEYS"),
        ("serve", {"KB_SYNC_SCHEDULE": "*/61 * * *"}, "KB_SYNC_SCHEDULE"),
        ("serve", {"QDRANT_URL": "http://127.0.0.1:1"}, "QDRANT_URL: Qdrant not reachable at http://127.0.0.1:1"),
    ],
)
def test_bad_configuration_is_one_line(command: str, env: dict[str, str], expected: str, tmp_path: Path) -> None:
    result = _run([command], env, tmp_path)
    assert result.returncode == 2
    assert expected in _one_line(result.stderr)


def test_secret_values_are_never_echoed(tmp_path: Path) -> None:
    result = _run(["serve"], {"ANTHROPIC_API_KEY": "sk-ant-supersecret", "HTTP_PORT": "-5"}, tmp_path)
    assert result.returncode == 2 and "supersecret" not in result.stderr + result.stdout


async def test_doctor_names_each_broken_dependency_and_what_to_do(tmp_path: Path) -> None:
    """One `doctor` run with a misspelt model, an unreachable Qdrant and a key the (fake) Anthropic API rejects."""
    api = FakeAnthropic(valid_keys={GOOD_KEY})
    await api.start()
    env = cli_env(
        tmp_path,
        {
            "EMBEDDING_MODEL": "doesnotexist",
            "QDRANT_URL": "http://127.0.0.1:9",
            "ANTHROPIC_API_KEY": BAD_KEY,
            "ANTHROPIC_BASE_URL": api.base_url,
        },
    )
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app.cli", "doctor", env=env, cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out_b, err_b = await asyncio.wait_for(process.communicate(), 120)
    finally:
        await api.stop()
    out, err = out_b.decode(), err_b.decode()
    assert process.returncode == 1 and "Traceback" not in out + err and BAD_KEY not in out + err
    failed = {line.split(":", 1)[0]: line for line in out.splitlines() if line.startswith("[FAIL]")}
    assert set(failed) == {"[FAIL] EMBEDDING_MODEL", "[FAIL] QDRANT_URL", "[FAIL] ANTHROPIC_API_KEY"}, out
    assert "list_supported_models" in failed["[FAIL] EMBEDDING_MODEL"]
    assert "http://127.0.0.1:9 NOT reachable: start Qdrant there or unset QDRANT_URL" in failed["[FAIL] QDRANT_URL"]
    assert "rejected by the API (401): check the key" in failed["[FAIL] ANTHROPIC_API_KEY"]
    presented = [h.get("x-api-key") or h.get("authorization", "").removeprefix("Bearer ") for h in api.headers]
    assert presented == [BAD_KEY]  # one cheap authenticated call, no retries


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["ingest", "no-such-folder"], "no such file or folder"),
        (["eval", "fit-confidence", str(SAMPLE_SET), "no-such-folder"], "no-such-folder is not a BEIR folder"),
        (["ask", "How do I restore a folder?"], "no knowledge base under DATA_DIR="),
    ],
)
def test_command_mistakes_are_one_line(args: list[str], expected: str, tmp_path: Path) -> None:
    """Run from a directory that holds nothing, with DATA_DIR left at its default (./var)."""
    result = run_cli(*args, data_dir=tmp_path, env={"DATA_DIR": "./var"}, timeout=120)
    assert result.returncode == 2, result.stderr
    assert expected in _one_line(result.stderr)
    if args[0] == "ask":
        assert "supportbot ingest PATH" in result.stderr
    if args[0] in ("ask", "ingest"):
        assert not (tmp_path / "var").exists()  # a command in the wrong place creates no empty DATA_DIR


def test_ask_next_to_an_index_another_process_holds_is_one_line(tmp_path: Path) -> None:
    """A service on another HTTP_PORT than the command's holds the embedded index: the command names the cause."""
    held = EdgeVectorStore(tmp_path / "qdrant" / "supportbot", 384, Bm25Encoder(), FusionPlan())
    try:
        result = _run(["ask", "How do I restore a folder?"], {"HTTP_PORT": "1"}, tmp_path)
    finally:
        held.close()
    assert result.returncode == 2, result.stderr
    assert "is open in another process" in _one_line(result.stderr) and "HTTP_PORT" in result.stderr


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[SupportApp, str]]:
    settings = Settings(_env_file=None, data_dir=tmp_path, http_port=0, api_keys=[API_KEY])  # type: ignore[call-arg]
    services = await build_service(settings, knowledge=ScriptedKnowledge(), with_escalation=False)
    app = SupportApp(services)
    await app.start()
    try:
        yield app, f"http://127.0.0.1:{app.port}/api/ask"
    finally:
        await app.stop(grace_seconds=0)


@pytest.mark.parametrize(
    "body",
    [
        b'{"question": "How often does backup run?\\ud800"}',  # a lone surrogate, as a JSON escape
        b'{"question": "How often does backup \xff\xfe run?"}',  # bytes that are not UTF-8
        b'{"question": "How often does backup run?", "conversation_id": "c\\udfff"}',  # surrogate in the id
    ],
)
async def test_invalid_text_over_the_api_is_cleaned_and_answered(api: tuple[SupportApp, str], body: bytes) -> None:
    app, url = api
    async with aiohttp.ClientSession() as http:
        resp = await http.post(
            url, data=body, headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
        )
        payload = await resp.json()
    assert resp.status == 200 and payload["outcome"] == "answered", payload
    assert await app.services.ledger.dead_letters() == []
    _pending, _age, dead = await app.services.outbox.stats()
    assert dead == 0
