"""Readiness notices a database that answers reads but refuses writes (PostgreSQL in read-only mode)."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from app.build import build_service
from app.http import Readiness, build_http_app
from app.settings import Settings
from tests.dbs import ADMIN_URL, fresh_database_url
from tests.doubles import ScriptedKnowledge

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


async def test_a_read_only_database_makes_the_service_unready(tmp_path: Path) -> None:
    async with fresh_database_url("postgres", tmp_path) as url:
        services = await build_service(
            Settings(database_url=url, data_dir=tmp_path), knowledge=ScriptedKnowledge(), with_escalation=False
        )
        client = TestClient(TestServer(build_http_app(services, Readiness())))
        await client.start_server()
        try:
            assert (await client.get("/health/ready")).status == 200
            name = url.rsplit("/", 1)[1]
            admin = await asyncpg.connect(ADMIN_URL)
            try:
                await admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
            finally:
                await admin.close()
            await services.db.engine.dispose()  # new connections pick the setting up
            resp = await client.get("/health/ready")
            body = await resp.json()
            assert resp.status == 503 and body["checks"]["database"] is False
        finally:
            await client.close()
            await services.db.dispose()
