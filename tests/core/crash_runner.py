"""A service process for the crash tests: `python -m tests.core.crash_runner PHASE N` with settings from the env.

Phase "first" accepts N messages and answers them, delivering to a sink that never responds (the test kills the
process with SIGKILL while replies are decided but unsent). Phase "restart" runs the real SupportApp, accepts
the same N messages again (a channel redelivering after a crash) and delivers to the sink, which now answers.
The sender is a test double for the ReplySender *port*: it POSTs the reply to the sink (SINK_URL).
Phase "slack" (no SINK_URL) delivers through the real Slack channel the settings turn on (SLACK_API_URL: the
fake Slack), in the threads `C1:<i>.0`; the test SIGKILLs and restarts it mid-run.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import UTC, datetime

import aiohttp

from app.build import build_service
from app.serve import SupportApp
from app.settings import load_settings
from bot.errors import DeliveryError
from bot.messages import Channel, InboundMessage, Reply
from tests.doubles import ScriptedKnowledge


class SinkSender:
    def __init__(self, url: str) -> None:
        self._url = url

    async def send(self, reply: Reply) -> str:
        async with aiohttp.ClientSession() as http:
            resp = await http.post(self._url, json={"key": reply.idempotency_key, "text": reply.text})
            if resp.status != 200:
                raise DeliveryError(f"sink answered {resp.status}")
        return reply.idempotency_key


def messages(n: int) -> list[InboundMessage]:
    at = datetime(2026, 11, 16, 9, tzinfo=UTC)
    return [InboundMessage(Channel.SLACK, f"C1:{i}.0", f"C1:{i}.0", "U1", f"backup question {i}", at) for i in range(n)]


async def main(phase: str, n: int) -> None:
    settings = load_settings()
    services = await build_service(settings, knowledge=ScriptedKnowledge(), with_escalation=False)
    if phase != "slack":
        services.dispatcher.register(Channel.SLACK, SinkSender(os.environ["SINK_URL"]))
    app = SupportApp(services)
    await app.start()
    for msg in messages(n):
        await services.pipeline.accept(msg, [f"slack:event:Ev{msg.message_id}"])
    print("ACCEPTED", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()  # SIGKILL in the first phase; SIGTERM (graceful stop) after the restart
    await app.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
