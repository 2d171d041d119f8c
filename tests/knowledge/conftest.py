"""Knowledge fixtures: a copy of the small KB, a config with a shared model folder, a fake Anthropic server."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from knowledge.config import KnowledgeConfig
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
def make_settings(model_home: Path) -> Callable[..., KnowledgeConfig]:
    """A `KnowledgeConfig` factory sharing the session's model folder (kept under its old fixture name)."""

    def make(**overrides: Any) -> KnowledgeConfig:
        values: dict[str, Any] = {"data_dir": model_home}
        values.update(overrides)
        return KnowledgeConfig(**values)

    return make


@pytest.fixture
async def knowledge(make_settings: Callable[..., KnowledgeConfig], tmp_path: Path) -> AsyncIterator[KnowledgeService]:
    service = build_knowledge(make_settings(), root=tmp_path / "index")
    yield service
    await service.close()


@pytest.fixture
async def anthropic() -> AsyncIterator[FakeAnthropic]:
    fake = FakeAnthropic()
    await fake.start()
    yield fake
    await fake.stop()
