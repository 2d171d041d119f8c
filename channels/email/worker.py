"""A worker process with a hard timeout, for CPU work on hostile input (MIME parsing, reply trimming).

A pathological email can make the standard library's parser or the trimmer's regexes run for seconds to
minutes. In a worker PROCESS that never blocks the event loop (nor holds our GIL), and a call that overruns its
timeout kills the worker; the next call starts a fresh one. `concurrent.futures.ProcessPoolExecutor` cannot
kill one stuck task, hence these few lines. The blocking pipe I/O runs on one dedicated thread; the worker is
started with "spawn" (forking a process that runs threads is unsafe) and exits when its pipe closes, so it
never outlives us, not even a SIGKILL of the parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import multiprocessing
import resource
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

T = TypeVar("T")
A = TypeVar("A")


class WorkerTimeout(Exception):
    """The call ran past its timeout; the worker was killed."""


class WorkerCrashed(Exception):
    """The worker died during the call (killed, out of memory); it is replaced on the next call."""


def _serve(conn: Connection, memory_bytes: int, preload: tuple[str, ...]) -> None:
    for module in preload:  # import before saying ready, so no call's timeout pays for imports
        importlib.import_module(module)
    if memory_bytes:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    conn.send("ready")
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return  # the parent went away
        if job is None:
            return
        fn, arg = job
        try:
            reply: tuple[str, Any] = ("ok", fn(arg))
        except Exception as exc:
            reply = ("error", exc)
        try:
            conn.send(reply)
        except Exception as exc:  # an unpicklable result or exception
            conn.send(("error", RuntimeError(f"{type(exc).__name__} in worker: {exc}")))


class ProcessWorker:
    """One worker process; `call(fn, arg, deadline)` runs `fn(arg)` there (`fn` must be importable by name).

    `preload` names modules the worker imports before it counts as started; `memory_bytes` caps its address
    space, so a memory bomb kills the worker, not the service.
    """

    def __init__(
        self, *, preload: tuple[str, ...] = (), memory_bytes: int = 2 * 1024**3, start_seconds: float = 120.0
    ) -> None:
        self._preload = preload
        self._memory_bytes = memory_bytes
        self._start_seconds = start_seconds
        self._context = multiprocessing.get_context("spawn")
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="email-worker")
        self.restarts = 0  # how many workers were killed or lost

    async def call(self, fn: Callable[[A], T], arg: A, deadline_seconds: float) -> T:
        """`fn(arg)` in the worker; raises what `fn` raised, or `WorkerTimeout` after `deadline_seconds` (the
        worker is killed: an asyncio timeout could only stop waiting, not stop the work), or `WorkerCrashed`."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._call, fn, arg, deadline_seconds)

    async def start(self) -> None:
        """Start the worker ahead of the first call (it takes a moment to import)."""
        await asyncio.get_running_loop().run_in_executor(self._thread, self._ensure)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._stop)
        self._thread.shutdown(wait=False)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def _ensure(self) -> Connection:
        if self._conn is None or self._process is None or not self._process.is_alive():
            self._kill()
            parent, child = self._context.Pipe()
            process = self._context.Process(
                target=_serve, args=(child, self._memory_bytes, self._preload), name="email-parser", daemon=True
            )
            process.start()
            child.close()
            self._process, self._conn = process, parent
            try:
                ready = parent.poll(self._start_seconds) and parent.recv() == "ready"
            except (EOFError, OSError):
                ready = False
            if not ready:
                self._kill()
                raise WorkerCrashed("the worker did not start")
        return self._conn

    def _call(self, fn: Callable[[A], T], arg: A, timeout: float) -> T:
        conn = self._ensure()
        try:
            conn.send((fn, arg))
            if not conn.poll(timeout):
                self._kill()
                raise WorkerTimeout(f"no result within {timeout:g}s")
            status, value = conn.recv()
        except (EOFError, OSError, BrokenPipeError) as exc:
            self._kill()
            raise WorkerCrashed(type(exc).__name__) from exc
        if status == "error":
            raise value
        return value  # type: ignore[no-any-return]

    def _kill(self, *, lost: bool = True) -> None:
        if self._process is not None:
            self.restarts += int(lost)
            with contextlib.suppress(Exception):
                self._process.kill()
                self._process.join(timeout=5)
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._process, self._conn = None, None

    def _stop(self) -> None:
        if self._conn is not None and self._process is not None:
            with contextlib.suppress(Exception):
                self._conn.send(None)
                self._process.join(timeout=2)
        self._kill(lost=False)
