"""The test command brings its own PostgreSQL when none answers (scripts/postgres-for-tests, run by scripts/test)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import tempfile
from pathlib import Path

import asyncpg

from tests.dbs import ADMIN_URL
from tests.ports import free_port

SCRIPT = Path(__file__).parents[2] / "scripts" / "postgres-for-tests"


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return False
    return True


def _script(*args: str) -> str:
    done = subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


async def _create_and_drop_a_database(url: str) -> str:
    """What tests/dbs.py does with the admin URL."""
    admin = await asyncpg.connect(url)
    try:
        await admin.execute('CREATE DATABASE "sb_probe"')
        await admin.execute('DROP DATABASE "sb_probe"')
        return str(await admin.fetchval("SELECT current_setting('port')"))
    finally:
        await admin.close()


def test_a_throwaway_cluster_serves_the_run_when_no_server_answers() -> None:
    dead = free_port()
    # a folder of its own under the system's temporary directory, as scripts/test makes it (mktemp -d): the server
    # runs as the postgres user, who cannot enter pytest's root-only tmp_path
    folder = Path(tempfile.mkdtemp(prefix="supportbot-pg-"))
    url = _script("up", f"postgresql://postgres@127.0.0.1:{dead}/test", str(folder))
    try:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        assert url == f"postgresql://postgres@127.0.0.1:{port}/test" and port != dead
        assert asyncio.run(_create_and_drop_a_database(url)) == str(port)
    finally:
        _script("down", str(folder))
    assert not folder.exists()
    assert not _answers(port)  # stopped, not left running after the run


def test_a_server_that_answers_is_used_as_it_is(tmp_path: Path) -> None:
    folder = tmp_path / "pg"
    folder.mkdir()
    assert _script("up", ADMIN_URL, str(folder)) == ADMIN_URL
    assert list(folder.iterdir()) == []  # no cluster made
    _script("down", str(folder))
    assert not folder.exists()
