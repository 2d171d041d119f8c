"""The email service as a separate process, for the SIGKILL tests and the benchmark.

`python -m tests.email.runner` reads settings from the environment, builds `Wiring` through the composition
root, and runs what `supportbot serve` runs for email: the channel (IDLE loop), the outbox dispatcher and the
pipeline's crash recovery. RUNNER_KNOWLEDGE picks the engine: "scripted" (a port double, default) or "real"
(`knowledge.build_knowledge`, the extractive answerer without an API key). RUNNER_LEASE_SECONDS shortens the
mailbox lease so a restarted process takes over quickly.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from app.build import build_email, build_service
from app.settings import load_settings
from bot.ports import KnowledgeEngine
from tests.doubles import ScriptedKnowledge


async def main() -> None:
    settings = load_settings()
    knowledge: KnowledgeEngine | None = None
    if os.environ.get("RUNNER_KNOWLEDGE", "scripted") == "scripted":
        knowledge = ScriptedKnowledge({"": ("Here is what our guide says [1].", 0.9)})
    services = await build_service(settings, knowledge=knowledge, with_escalation=False)
    ingest = getattr(services.knowledge, "ingest", None)
    if knowledge is None and ingest is not None and settings.knowledge_paths:
        await ingest([Path(p) for p in settings.knowledge_paths])  # incremental: a restart re-reads nothing
    channel = build_email(services, lease_seconds=float(os.environ.get("RUNNER_LEASE_SECONDS", "3")))
    await channel.start()
    services.dispatcher.start()
    print("runner.ready", flush=True)
    while True:
        await services.pipeline.recover()
        await asyncio.sleep(1.0)


if __name__ == "__main__":
    asyncio.run(main())
