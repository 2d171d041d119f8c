"""Bad configuration stops the start with one clear line naming what to fix, never a traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.cli import run_cli

pytestmark = pytest.mark.slow  # real servers, subprocesses or long scenarios: not in the fast tier



def _run(args: list[str], env_extra: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, data_dir=tmp_path, env=env_extra, timeout=120)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"HTTP_PORT": "eighty"}, "HTTP_PORT"),
        ({"IMAP_SECURITY": "maybe"}, "IMAP_SECURITY"),
        ({"TIMEZONE": "Mars/Olympus"}, "TIMEZONE"),
        ({"DATABASE_URL": "mysql://x@y/z"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}, "database not reachable"),
        ({"EMBEDDING_MODEL": "BAAI/bge-small-en-v1.5"}, "EMBEDDING_MODEL"),  # not shipped, and we are offline
        ({"REPORT_SCHEDULE": "whenever"}, "REPORT_SCHEDULE"),
        ({"API_KEYS": "short-key"}, "API_KEYS"),
        ({"KB_SYNC_SCHEDULE": "*/61 * * *"}, "KB_SYNC_SCHEDULE"),
        ({"QDRANT_URL": "http://127.0.0.1:1"}, "QDRANT_URL: Qdrant not reachable at http://127.0.0.1:1"),
    ],
)
def test_bad_configuration_is_one_line(env: dict[str, str], expected: str, tmp_path: Path) -> None:
    result = _run(["serve"], env, tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert expected in lines[0] and "Traceback" not in result.stderr


def test_secret_values_are_never_echoed(tmp_path: Path) -> None:
    result = _run(["serve"], {"ANTHROPIC_API_KEY": "sk-ant-supersecret", "HTTP_PORT": "-5"}, tmp_path)
    assert result.returncode == 2 and "supersecret" not in result.stderr + result.stdout
