"""Every command in README.md's quick start works as written, from a copy of the repository (a fresh clone)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.ports import free_port

ROOT = Path(__file__).parents[2]

pytestmark = pytest.mark.slow


def _quick_start() -> tuple[str, str]:
    """The run block and the second-terminal block of the README's quick start."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("**Run**") : readme.index("**Test**")]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 2, "the quick start has a run block and a second-terminal block"
    return blocks[0].strip(), blocks[1]


def _copy_repository(target: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in files:
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


@pytest.mark.long
def test_the_quick_start_works_as_written(tmp_path: Path) -> None:
    run_block, commands = _quick_start()
    assert run_block == "./scripts/run"
    clone = tmp_path / "clone"
    _copy_repository(clone)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "IMAP_", "SMTP_", "DATABASE_", "API_"))}
    env.pop("VIRTUAL_ENV", None)  # the clone gets its own environment, as a fresh clone would
    env["HTTP_PORT"] = str(port)
    log = (tmp_path / "run.log").open("w")
    service = subprocess.Popen(
        ["bash", "-c", run_block], cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 420
        while "supportbot: ready" not in (tmp_path / "run.log").read_text():
            assert service.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "scripts/run never said it was ready"
            time.sleep(1)
        printed = (tmp_path / "run.log").read_text()
        assert "supportbot ask" in printed and "Authorization: Bearer" in printed  # the next commands, with a key
        script = "set -euo pipefail\n" + commands.replace("8080", str(port))
        result = subprocess.run(
            ["bash", "-c", script], cwd=clone, env=env, capture_output=True, text=True, timeout=600, check=False
        )
        out = result.stdout
        assert result.returncode == 0, result.stderr[-3000:]
        assert '"status": "ok"' in out
        assert "14 days" in out  # the refund rule, quoted
        assert '"answer"' in out and "restore" in out.lower()
        assert "Biscuit" in out  # the page ingested through the running service answers at once
        assert str(clone) not in out  # sources show titles or public URLs, never a path on the server
    finally:
        if service.poll() is None:
            os.killpg(service.pid, signal.SIGTERM)
        service.wait(timeout=120)
        log.close()
