"""Run `supportbot` (python -m app.cli) as its own process, as an operator would, on a given DATA_DIR."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

# Settings of the machine the tests run on must not leak into a command under test.
_SCRUBBED = ("SLACK_", "IMAP_", "SMTP_", "DATABASE_", "ANTHROPIC_", "API_KEYS", "ADMIN_KEYS", "QDRANT_")


def cli_env(data_dir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED)}
    env.update({"DATA_DIR": str(data_dir), "HTTP_PORT": "0", "HF_HUB_OFFLINE": "1", **(extra or {})})
    return env


def run_cli(
    *args: str, data_dir: Path, env: Mapping[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """`supportbot ARGS...` with DATA_DIR=`data_dir` (also its working directory, so no stray .env is read)."""
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=cli_env(data_dir, env),
        cwd=data_dir,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
