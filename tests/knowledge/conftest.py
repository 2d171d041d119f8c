"""Knowledge fixtures: a copy of the small KB, settings with a shared model folder, a fake Anthropic server."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.settings import Settings
from knowledge.service import KnowledgeService, build_knowledge
from tests.fakes.anthropic_server import FakeAnthropic

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "knowledge"


@pytest.fixture(scope="session")
def model_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One DATA_DIR for the assembled embedding model, shared by the session (copying it is the slow part)."""
    return tmp_path_factory.mktemp("supportbot-models")


@pytest.fixture
def kb(tmp_path: Path) -> Path:
    """A writable copy of the fixture knowledge base."""
    target = tmp_path / "kb"
    shutil.copytree(FIXTURES / "kb", target)
    return target


@pytest.fixture
def make_settings(model_home: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"data_dir": model_home, "anthropic_api_key": None, "qdrant_url": ""}
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return make


@pytest.fixture
async def knowledge(make_settings: Callable[..., Settings], tmp_path: Path) -> AsyncIterator[KnowledgeService]:
    service = build_knowledge(make_settings(), root=tmp_path / "index")
    yield service
    await service.close()


@pytest.fixture
async def anthropic() -> AsyncIterator[FakeAnthropic]:
    fake = FakeAnthropic()
    await fake.start()
    yield fake
    await fake.stop()
