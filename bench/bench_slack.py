"""Slack channel latency: how fast events are acked, and how long until the answer is in the thread.

The service runs in its OWN process (`bench/slack_service.py`: `app.serve.serve`, SupportApp with the Slack channel
in HTTP mode, the real knowledge engine over examples/kb, extractive answers, configured from the environment), on
SQLite and on PostgreSQL. This process holds the load generator (signed HTTP requests to the service's
`/slack/events`) and the fake Slack Web API (tests/fakes/slack_server.py) that receives the answers, so the
figures measure the service, not the load generator competing with it for one event loop. Measured:
1. ack latency at 100 concurrent events (Slack's limit is 3 s; goal p99 under 50 ms): bursts of 100 distinct
   mentions; the ack comes after the inbound-ledger commit, while the burst is being answered. "client" is
   request-to-response as the load generator sees it; "in handler" is the time inside the service's
   /slack/events handler (signature, parsing, routing, the group-committed ledger write);
2. event-to-answer latency: from sending the event to the fake receiving chat.postMessage in the thread, one at a
   time (unloaded), and for a burst of 100 at once.
Then the same in ONE process (service, fake and load generator sharing an event loop, as the channel tests run),
labelled "in-process", for comparison with earlier runs. The machine's cores are shared by both processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import structlog
from slack_sdk.signature import SignatureVerifier

from app.settings import Settings
from bench.harness import Report, Timer
from bot.ports import KnowledgeEngine
from tests.conftest import ManualClock
from tests.dbs import fresh_database_url
from tests.fakes.slack_server import FakeSlack
from tests.slack.conftest import SIGNING_SECRET, load_fixture, open_harness, slack_settings

ROOT = Path(__file__).resolve().parent.parent
KB = ROOT / "examples" / "kb"
BURST = 100
CHANNEL = "C0GENERAL1"


def questions() -> list[str]:
    text = (ROOT / "examples" / "questions.md").read_text() if (ROOT / "examples" / "questions.md").exists() else ""
    found = [m.group(1).strip() for m in re.finditer(r"^- (.+?) ->", text, re.MULTILINE)]
    return found or ["How do I reset my password?", "How do I restore a deleted folder?"]


class Mentions:
    """Distinct app_mention events."""

    def __init__(self) -> None:
        self.n = 0
        self.questions = questions()

    def next(self) -> tuple[str, dict[str, Any]]:
        self.n += 1
        ts = f"19{self.n:08d}.000100"
        body = copy.deepcopy(load_fixture("01_app_mention")["body"])
        body["event_id"] = f"EvBENCH{self.n:07d}"
        text = self.questions[self.n % len(self.questions)]
        body["event"].update(ts=ts, event_ts=ts, text=f"<@UBOT> {text}", user=f"U{self.n % 50:05d}")
        return ts, body


class Service(Protocol):
    """Where events go, and the service's own view of its ack times."""

    def prepare(self, body: Mapping[str, Any]) -> Any:
        """Everything done before the clock starts (serialising, signing), as Slack has it ready too."""

    async def send(self, prepared: Any) -> int: ...

    async def handler_acks_ms(self) -> list[float]: ...


class SignedClient:
    """Signs and posts events to a service's /slack/events, as Slack does."""

    def __init__(self, url: str, http: aiohttp.ClientSession, acks: Callable[[], Awaitable[list[float]]]) -> None:
        self._url, self._http, self._acks = url, http, acks
        self._verifier = SignatureVerifier(SIGNING_SECRET)

    def prepare(self, body: Mapping[str, Any]) -> tuple[bytes, dict[str, str]]:
        data = json.dumps(body)
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": self._verifier.generate_signature(timestamp=timestamp, body=data) or "",
        }
        return data.encode(), headers

    async def send(self, prepared: tuple[bytes, dict[str, str]]) -> int:
        data, headers = prepared
        async with self._http.post(self._url, data=data, headers=headers) as response:
            await response.read()
            return response.status

    async def handler_acks_ms(self) -> list[float]:
        return await self._acks()


async def timed_event(service: Service, prepared: Any, timer: Timer) -> float:
    sent = time.monotonic()
    with timer.measure():
        status = await service.send(prepared)
    assert status == 200, status
    return sent


async def measure(report: Report, label: str, service: Service, fake: FakeSlack, rounds: int, single: int) -> None:
    mentions = Mentions()
    for _ in range(3):  # warm up: connections, caches, the embedding model's first call
        warm_ts, warm = mentions.next()
        await service.send(service.prepare(warm))
        await fake.wait_post(CHANNEL, warm_ts, timeout=120)
    await service.handler_acks_ms()

    # 1. ack latency, bursts of 100 concurrent events (answering runs at the same time)
    ack = Timer()
    burst_e2e = Timer()
    for _ in range(rounds):
        batch = [(ts, service.prepare(body)) for ts, body in (mentions.next() for _ in range(BURST))]
        sent = await asyncio.gather(*(timed_event(service, prepared, ack) for _ts, prepared in batch))
        done = await asyncio.gather(*(fake.wait_post(CHANNEL, ts, timeout=300) for ts, _body in batch))
        burst_e2e.samples_ms += [(d - s) * 1000 for s, d in zip(sent, done, strict=True)]
    in_handler = Timer(await service.handler_acks_ms())
    report.add_timer(f"{label}: ack, {BURST} concurrent (client)", ack)
    report.add_timer(f"{label}: ack, {BURST} concurrent (in handler)", in_handler)
    report.add_timer(f"{label}: event->answer, burst of {BURST}", burst_e2e)

    # 2. event-to-answer, one at a time
    e2e = Timer()
    for _ in range(single):
        ts, body = mentions.next()
        sent_at = await timed_event(service, service.prepare(body), Timer())
        e2e.samples_ms.append((await fake.wait_post(CHANNEL, ts, timeout=60) - sent_at) * 1000)
    report.add_timer(f"{label}: event->answer, one at a time", e2e)
    answers = len(fake.calls_to("chat.postMessage", ok_only=True))
    report.add(f"{label}: answers posted", answers, "msgs", f"events sent={mentions.n}")


# --- the service in its own process ---


def service_env(data: Path, url: str, fake: FakeSlack, freeze: bool) -> dict[str, str]:
    """A clean production-like environment: no API keys (extractive answers), no email, INFO logs to a file."""
    names = ("PATH", "HOME", "LANG", "TMPDIR", "HF_HOME")
    keep = {k: v for k, v in os.environ.items() if k in names or k.startswith("BENCH_")}
    return {
        **keep,
        "PYTHONPATH": str(ROOT),
        "DATA_DIR": str(data),
        "DATABASE_URL": url,
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": "0",
        "SHUTDOWN_GRACE_SECONDS": "0",
        "LOG_LEVEL": "INFO",
        "SLACK_BOT_TOKEN": "xoxb-bench-token",
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake.api_url,
        "SLACK_ALLOWED_CHANNELS": CHANNEL,
        "BENCH_KB": str(KB),
        "BENCH_GC_FREEZE": "1" if freeze else "0",
    }


@contextlib.asynccontextmanager
async def service_process(
    data: Path, url: str, fake: FakeSlack, report: Report, label: str, freeze: bool
) -> AsyncIterator[Service]:
    log_path = data / f"service-{label.replace(' ', '_')}.log"
    with log_path.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.slack_service",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log_file,
            cwd=data,  # no stray .env
            env=service_env(data, url, fake, freeze),
        )
        assert proc.stdin is not None and proc.stdout is not None
        stdin, stdout = proc.stdin, proc.stdout
        try:
            line = await asyncio.wait_for(stdout.readline(), timeout=300)
            if not line:
                raise RuntimeError(f"service did not start; see {log_path}:\n{log_path.read_text()[-3000:]}")
            started = json.loads(line)
            report.add(f"{label}: service start + ingest examples/kb", started["ingest_s"], "s", "own process")

            async def acks() -> list[float]:
                stdin.write(b"acks\n")
                await stdin.drain()
                samples: list[float] = json.loads(await stdout.readline())["acks_ms"]
                return samples

            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as http:
                yield SignedClient(f"http://127.0.0.1:{started['port']}/slack/events", http, acks)
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), timeout=60)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


async def bench_process(report: Report, database: str, data: Path, quick: bool, freeze: bool) -> None:
    rounds, single = (2, 20) if quick else (5, 60)
    label = f"{database} +gc.freeze" if freeze else database
    with tempfile.TemporaryDirectory() as tmp:
        fake = await FakeSlack().start()
        try:
            async with (
                fresh_database_url(database, Path(tmp)) as url,
                service_process(data, url, fake, report, label, freeze) as service,
            ):
                await measure(report, label, service, fake, rounds, single)
        finally:
            await fake.stop()


# --- everything in one process (the channel tests' harness), for comparison ---


class InProcess:
    def __init__(self, harness: Any) -> None:
        self._harness = harness

    def prepare(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        return body

    async def send(self, prepared: Mapping[str, Any]) -> int:
        status: int = await self._harness.event(prepared)  # signs inside the timed part, as before
        return status

    async def handler_acks_ms(self) -> list[float]:
        samples = list(self._harness.server_ack_ms)
        self._harness.server_ack_ms.clear()
        return samples


async def bench_in_process(report: Report, database: str, knowledge: KnowledgeEngine, quick: bool) -> None:
    rounds, single = (2, 20) if quick else (5, 60)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        fake = await FakeSlack().start()
        try:
            async with fresh_database_url(database, tmp_path) as url:
                settings = slack_settings(tmp_path, fake, database_url=url, outbox_flush_seconds=5)
                async with open_harness(settings, fake, ManualClock(), knowledge=knowledge) as harness:
                    harness.services.dispatcher.start()
                    try:
                        await measure(report, f"in-process {database}", InProcess(harness), fake, rounds, single)
                    finally:
                        await harness.services.dispatcher.stop()
        finally:
            await fake.stop()


async def run(report: Report, quick: bool) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    logging.getLogger("slack_bolt").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as data:
        service_data = Path(data) / "service"  # shared by both runs: the second one finds the index built
        service_data.mkdir()
        for freeze in (False, True):
            for database in ("sqlite", "postgres"):
                await bench_process(report, database, service_data, quick, freeze)
        if os.environ.get("BENCH_SLACK_IN_PROCESS", "1") == "0":
            return
        from knowledge import build_knowledge

        settings = Settings(_env_file=None, data_dir=Path(data) / "in-process")
        engine = build_knowledge(settings)
        started = time.perf_counter()
        await engine.ingest([KB])
        report.add("in-process: ingest examples/kb", time.perf_counter() - started, "s", "real engine, extractive")
        try:
            for database in ("sqlite", "postgres"):
                await bench_in_process(report, database, engine, quick)
        finally:
            await engine.close()
