"""The knowledge base of a running service changes through it: `supportbot ingest` next to `supportbot serve`
(embedded defaults) sends the work to the service, and the admin API serves automation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ports import free_port

pytestmark = pytest.mark.slow

ADMIN_KEY = "admin-key-for-tests-0123456789"
OLD_PAGE = "# Opening hours\n\nOur support desk is open from 8:00 to 18:00 on weekdays.\n"
NEW_PAGE = "# Office dogs\n\nThe office dog is called Biscuit and visits on Fridays.\n"
SYNCED_PAGE = "# Office plants\n\nThe office fern is called Fernando and is watered on Mondays.\n"


def _post(url: str, payload: dict[str, object] | None = None, key: str = "") -> tuple[int, dict[str, object]]:
    data = json.dumps(payload or {}).encode()
    request = urllib.request.Request(  # noqa: S310  (a loopback URL we built)
        url, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=120) as resp:  # noqa: S310  (a loopback URL we built)
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):  # refused, or a busy service that did not answer in time
        return False


def _env(data: Path, kb: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "IMAP_", "SMTP_", "DATABASE_"))}
    env.update(
        {
            "DATA_DIR": str(data),
            "KNOWLEDGE_PATHS": str(kb),
            "HTTP_PORT": str(port),
            "ADMIN_KEYS": ADMIN_KEY,
            "SHUTDOWN_GRACE_SECONDS": "0",
            "HF_HUB_OFFLINE": "1",
        }
    )
    return env


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], str, Path]]:
    """One service for the module (starting one costs seconds); each test works on a page of its own."""
    tmp_path = tmp_path_factory.mktemp("live-kb")
    data, kb = tmp_path / "data", tmp_path / "kb"
    kb.mkdir()
    (kb / "hours.md").write_text(OLD_PAGE)
    port = free_port()
    env = _env(data, kb, port)
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve"], env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            if _ready(f"{base}/health/ready"):
                break
            time.sleep(0.5)
        else:
            pytest.fail("the service did not become ready")
        yield env, base, kb
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], env=env, capture_output=True, text=True, timeout=240, check=False
    )


@pytest.mark.long
def test_ingest_next_to_a_running_service_goes_through_it(served: tuple[dict[str, str], str, Path]) -> None:
    env, _base, kb = served
    page = kb / "dogs.md"
    page.write_text(NEW_PAGE)
    added = _cli(env, "ingest", str(page))
    assert added.returncode == 0, added.stderr
    assert "ingested by the running service" in added.stderr and "1 added" in added.stdout
    asked = _cli(env, "ask", "--json", "What is the name of the office dog?")
    assert asked.returncode == 0, asked.stderr
    [reply] = json.loads(asked.stdout)
    assert "Biscuit" in reply["text"]

    page.unlink()
    removed = _cli(env, "ingest", str(page))
    assert removed.returncode == 0, removed.stderr
    assert "1 deleted" in removed.stdout
    again = json.loads(_cli(env, "ask", "--json", "What is the name of the office dog?").stdout)[0]
    assert "Biscuit" not in again["text"]

    nothing = _cli(env, "ingest", str(kb / "never-existed.md"))
    assert nothing.returncode == 2 and "no such file or folder" in nothing.stderr


def test_admin_api_syncs_and_keeps_to_the_knowledge_folders(served: tuple[dict[str, str], str, Path]) -> None:
    _, base, kb = served
    (kb / "plants.md").write_text(SYNCED_PAGE)
    status, synced = _post(f"{base}/api/admin/sync", key=ADMIN_KEY)
    assert status == 200 and "1 added" in str(synced["summary"])
    status, _ = _post(f"{base}/api/admin/ingest", {"paths": ["/etc/hostname"]}, key=ADMIN_KEY)
    assert status == 403
    status, _ = _post(f"{base}/api/admin/ingest", {"paths": [str(kb / ".." / "data")]}, key=ADMIN_KEY)
    assert status == 403  # resolved before the check: no walking out with ".."
    assert _post(f"{base}/api/admin/sync")[0] == 401
    assert _post(f"{base}/api/admin/sync", key="nope")[0] == 401
