"""The service under test for `bench/bench_slack.py`, in its own process: `python -m bench.slack_service`.

Runs the real service (`app.serve.serve`: SupportApp with the Slack channel in HTTP mode, the real knowledge engine,
extractive answers) configured from the environment like production, so the bench's load generator and fake Slack
do not share its event loop. Protocol on stdin/stdout, one JSON line each:
- at start it ingests BENCH_KB, then prints {"port": ..., "ingest_s": ...};
- "acks" on stdin: prints {"acks_ms": [...]}, the time inside the /slack/events handler of every event since the
  last "acks" (verification, parsing, routing, the inbound-ledger commit);
- SIGTERM (or stdin closed): drains and stops.
BENCH_GC_FREEZE=1 runs `gc.collect(); gc.freeze()` once started (see bench_slack.py); BENCH_PROFILE=PATH writes a
cProfile of the event loop's thread there.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import sys
import time
from pathlib import Path

from app.process import setup_logging
from app.serve import SupportApp, serve
from app.settings import load_settings


async def main() -> None:
    settings = load_settings()
    setup_logging(settings)
    acks_ms: list[float] = []
    background: list[asyncio.Task[None]] = []

    async def on_started(app: SupportApp) -> None:
        started = time.perf_counter()
        ingest = getattr(app.services.knowledge, "ingest", None)
        if ingest is not None:
            await ingest([Path(os.environ["BENCH_KB"])])
        if os.environ.get("BENCH_GC_FREEZE") == "1":
            gc.collect()
            gc.freeze()  # what is loaded by now (models, libraries, the index) is never scanned by the GC again
        for channel in app.channels:
            endpoint = getattr(channel, "endpoint", None)
            if endpoint is not None:
                endpoint.observers.append(lambda seconds: acks_ms.append(seconds * 1000))
        print(json.dumps({"port": app.port, "ingest_s": time.perf_counter() - started}), flush=True)
        background.append(asyncio.create_task(commands(acks_ms)))

    await serve(settings, on_started=on_started)


async def commands(acks_ms: list[float]) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        if line.strip() == b"acks":
            print(json.dumps({"acks_ms": acks_ms}), flush=True)
            acks_ms.clear()
    os.kill(os.getpid(), signal.SIGTERM)  # the bench went away: stop


if __name__ == "__main__":
    if os.environ.get("BENCH_PROFILE"):  # where to write a cProfile of the event loop's thread
        import cProfile

        with cProfile.Profile() as profile:
            asyncio.run(main())
        profile.dump_stats(os.environ["BENCH_PROFILE"])
    else:
        asyncio.run(main())
