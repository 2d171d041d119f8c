"""`doctor` in-process: each dependency is tried for real (the Anthropic key with one authenticated call)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.doctor import Check, collect
from app.settings import Settings
from tests.fakes.anthropic_server import FakeAnthropic

pytestmark = pytest.mark.slow  # real servers, subprocesses or long scenarios: not in the fast tier


@pytest.fixture
async def anthropic_api() -> AsyncIterator[FakeAnthropic]:
    fake = FakeAnthropic(valid_keys={"sk-ant-good-key-123456"})
    await fake.start()
    yield fake
    await fake.stop()


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


async def test_anthropic_key_is_tried_not_just_present(anthropic_api: FakeAnthropic, tmp_path: Path) -> None:
    good = Settings(
        data_dir=tmp_path, anthropic_api_key="sk-ant-good-key-123456", anthropic_base_url=anthropic_api.base_url
    )  # type: ignore[arg-type]
    bad = good.model_copy(update={"anthropic_api_key": Settings(anthropic_api_key="sk-ant-bad").anthropic_api_key})  # type: ignore[arg-type]
    gone = good.model_copy(update={"anthropic_base_url": "http://127.0.0.1:9"})
    assert _by_name(await collect(good))["ANTHROPIC_API_KEY"].ok
    rejected = _by_name(await collect(bad))["ANTHROPIC_API_KEY"]
    assert not rejected.ok and rejected.required and "rejected" in rejected.detail
    unreachable = _by_name(await collect(gone))["ANTHROPIC_API_KEY"]
    assert not unreachable.ok and "NOT reachable" in unreachable.detail
    presented = [h.get("x-api-key") or h["authorization"].removeprefix("Bearer ") for h in anthropic_api.headers]
    assert presented[:2] == ["sk-ant-good-key-123456", "sk-ant-bad"]
    assert all("sk-ant" not in c.detail for c in await collect(bad))  # never a secret value in the output


async def test_qdrant_url_is_named_and_checked(tmp_path: Path) -> None:
    unreachable = _by_name(await collect(Settings(data_dir=tmp_path, qdrant_url="http://127.0.0.1:9")))["QDRANT_URL"]  # type: ignore[arg-type]
    assert not unreachable.ok and unreachable.detail.startswith("http://127.0.0.1:9 NOT reachable")
    garbage = _by_name(await collect(Settings(data_dir=tmp_path, qdrant_url="qdrant")))["QDRANT_URL"]  # type: ignore[arg-type]
    assert not garbage.ok and "not a URL" in garbage.detail and "None" not in garbage.detail


async def test_the_reranker_files_are_found_offline_or_the_check_says_it_is_off(tmp_path: Path) -> None:
    on = _by_name(await collect(Settings(data_dir=tmp_path)))["RERANK_DEPTH"]  # type: ignore[arg-type]
    assert on.ok and on.detail.startswith("20: ") and "reranker_en" in on.detail
    off = _by_name(await collect(Settings(data_dir=tmp_path, rerank_depth=0)))["RERANK_DEPTH"]  # type: ignore[arg-type]
    assert off.ok and not off.required and off.detail.startswith("0: no reranking")
