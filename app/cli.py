"""`supportbot` command line: serve, ingest, ask, eval, doctor, db, report, gaps, tickets, replay.

Configuration errors end the command with one line saying what to fix (exit code 2), never a traceback.

Each command imports the part of the service it runs when it runs (`# lazy:` below): the service graph (LlamaIndex,
Qdrant, ONNX, the Slack and Anthropic SDKs) takes about ten seconds to import, and `--help`, a bad setting or
`supportbot forget` should not wait for it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import uuid
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from app.process import local_key_path, offline_environment, setup_logging
from app.settings import Settings, load_settings
from bot.errors import ConfigError, SupportbotError
from bot.messages import Channel, InboundMessage, Reply
from bot.store.codec import reply_from_json, reply_to_json
from bot.store.db import safe_url
from scheduler.jobs import JOB_NAMES


class UsageError(SupportbotError):
    """A command was given something that cannot work (a missing path); one line, exit code 2."""


Command = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="supportbot", description="Support bot for Slack and email.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the service (HTTP, channels, scheduler)")
    ingest = sub.add_parser(
        "ingest",
        help="ingest folders or files into the knowledge base (incremental; through the running service if one "
        "runs on this DATA_DIR)",
    )
    ingest.add_argument(
        "paths", nargs="+", type=Path, help="files or folders; a deleted file named here is removed from the index"
    )
    ask = sub.add_parser("ask", help="ask the knowledge base a question (through the running service if one runs)")
    ask.add_argument("question", help="the question, in quotes")
    ask.add_argument("--json", action="store_true", help="print the answer as JSON")
    evaluate = sub.add_parser("eval", help="evaluations")
    eval_sub = evaluate.add_subparsers(dest="eval_kind", required=True)
    retrieval = eval_sub.add_parser("retrieval", help="retrieval metrics over a BEIR-format folder")
    retrieval.add_argument("folder", type=Path, help="corpus.jsonl, queries.jsonl and qrels/test.tsv")
    retrieval.add_argument("--json", action="store_true", help="print the metrics as JSON")
    answers = eval_sub.add_parser(
        "answers",
        help="answer quality over a BEIR folder with answers.jsonl: source cited, fact present, abstention, "
        "confidently wrong",
    )
    answers.add_argument("folder", type=Path, help="corpus.jsonl, queries.jsonl, qrels/test.tsv and answers.jsonl")
    answers.add_argument("--json", action="store_true", help="print the figures as JSON")
    answers.add_argument(
        "--holdout",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="remove the answering documents of this share of questions and score abstention on them",
    )
    answers.add_argument(
        "--questions", action="store_true", help="with --json: every question's result too (kind, confidence, cited)"
    )
    answers.add_argument(
        "--noise",
        type=int,
        default=None,
        metavar="SEED",
        help="wrap every question in a customer-style message (greeting, story, names, sign-off) drawn with this seed",
    )
    fit = eval_sub.add_parser("fit", help="fit the hybrid fusion weights on half the questions, score the other half")
    fit.add_argument("folder", type=Path, help="a BEIR folder of your own questions")
    fit.add_argument("--json", action="store_true", help="print the fit as JSON")
    refit = eval_sub.add_parser(
        "fit-confidence",
        help="refit the confidence model on half of each folder's questions, score the other half, print the constants",
    )
    refit.add_argument(
        "folders", type=Path, nargs="+", metavar="folder", help="BEIR folders (qrels; answers not needed)"
    )
    refit.add_argument("--json", action="store_true", help="print the fit as JSON")
    export = eval_sub.add_parser(
        "export-verdicts",
        help="write the console's review verdicts as a labelled set (JSON lines: question, expected_source, verdict)",
    )
    export.add_argument("--out", type=Path, default=None, help="the file to write (default: standard output)")
    sub.add_parser("doctor", help="check configuration and reachability (never prints secret values)")
    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply migrations")
    report = sub.add_parser("report", help="the weekly report")
    report.add_argument("--week", help="ISO week, e.g. 2026-W46 (default: last week)")
    report.add_argument("--dry-run", action="store_true", help="print it and write the PNG instead of posting")
    report.add_argument("--out", type=Path, default=None, help="where --dry-run writes the chart PNG")
    sub.add_parser("gaps", help="list the knowledge-gap backlog")
    tickets = sub.add_parser("tickets", help="list tickets")
    tickets.add_argument("--limit", type=int, default=50, help="how many, newest first (default 50)")
    replay = sub.add_parser("replay", help="list or replay dead letters (inbound messages and undelivered replies)")
    replay.add_argument("--id", type=int, action="append", default=[], help="requeue this inbound message id")
    replay.add_argument("--all", action="store_true", help="requeue every dead letter and dead outbox row")
    forget = sub.add_parser("forget", help="erase one person everywhere this service stores them")
    forget.add_argument("who", help="an email address or a Slack user id (U…)")
    job = sub.add_parser("job", help="run a scheduled job now, by name")
    job.add_argument("name", help=f"one of: {', '.join(JOB_NAMES)}")
    return parser


async def _serve(_args: argparse.Namespace, settings: Settings) -> int:
    from app.serve import serve  # lazy: loaded by the command that needs it

    await serve(settings)
    return 0


async def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    paths = [Path(p).expanduser().resolve() for p in args.paths]  # noqa: ASYNC240  (a one-shot command, no loop to block)
    missing = [p for p in paths if not p.exists()]
    running = await _call_running_service(settings, "/api/admin/ingest", {"paths": [str(p) for p in paths]})
    if running is None and len(missing) == len(paths) and not _has_index(settings):
        # nothing to add and no index to remove it from: say so before anything is created under DATA_DIR
        raise UsageError(f"no such file or folder: {', '.join(str(p) for p in missing)}")
    if running is not None:
        print(f"ingested by the running service at {running['service']}:", file=sys.stderr)
        summary, deleted = str(running["summary"]), int(running["docs_deleted"])
    else:
        # The summary printed below lists every skipped path with its reason; the same as log lines would only
        # bury the one line that says what went wrong.
        logging.getLogger("knowledge.ingest").setLevel(logging.ERROR)
        from app.build import build_for_command  # lazy: not needed when the running service does the work

        async with build_for_command(settings) as ctx:  # the ingestion state lives in the database
            report = await ctx.knowledge().ingest(paths, progress=sys.stderr.isatty())
        summary, deleted = report.summary(), report.docs_deleted
    print(summary)
    if missing and not deleted:
        raise UsageError(f"no such file or folder: {', '.join(str(p) for p in missing)}")
    return 0


def _has_index(settings: Settings) -> bool:
    """An index may hold something: a Qdrant server, or the embedded index folder under DATA_DIR."""
    return bool(settings.qdrant_url) or (settings.data_dir / "qdrant").is_dir()


def _no_index(settings: Settings) -> UsageError:
    return UsageError(
        f"no knowledge base under DATA_DIR={settings.data_dir.resolve()}: run `supportbot ingest PATH` first, "
        "or set DATA_DIR to the folder `supportbot serve` uses"
    )


async def _ask(args: argparse.Namespace, settings: Settings) -> int:
    running = await _ask_running_service(settings, args.question)
    if running is not None:
        return _print_replies([reply_from_json(running)], args.json)
    if not _has_index(settings):
        raise _no_index(settings)  # before anything is created there: a wrong directory stays untouched
    from app.build import build_for_command  # lazy: not needed when the running service answers

    async with build_for_command(settings) as ctx:
        services = await ctx.wiring()
        msg = InboundMessage(
            channel=Channel.CLI,
            conversation_key=f"cli:{uuid.uuid4().hex}",
            message_id=f"cli:{uuid.uuid4().hex}",
            sender="cli",
            text=args.question,
            received_at=services.clock.now(),
        )
        if not await services.knowledge.ready():
            raise _no_index(settings)
        replies = await services.pipeline.ask(msg)
        await services.dispatcher.flush_once()
    return _print_replies(replies, args.json)


def _print_replies(replies: list[Reply], as_json: bool) -> int:
    if as_json:
        print(json.dumps([reply_to_json(r) for r in replies], indent=2))
        return 0
    for reply in replies:
        print(reply.text)
        if reply.citations:
            print("\nSources:")
            for c in reply.citations:
                where = c.url or c.source
                section = f" › {c.section}" if c.section else ""
                print(f"[{c.index}] {c.title}{section} ({where})")
        if reply.confidence is not None:
            print(f"\nconfidence {reply.confidence:.2f}" + (" (low)" if reply.low_confidence else ""))
    return 0


async def _call_running_service(settings: Settings, path: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    """When `supportbot serve` runs on this DATA_DIR, POST `payload` to it with its local key (the embedded index
    belongs to that process). None when no service is running here."""
    key_file = local_key_path(settings.data_dir)
    if not key_file.exists():
        return None
    host = "127.0.0.1" if settings.http_host in ("0.0.0.0", "::", "") else settings.http_host  # noqa: S104
    base = f"http://{host}:{settings.http_port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as http:
            resp = await http.post(
                base + path, json=payload, headers={"Authorization": f"Bearer {key_file.read_text().strip()}"}
            )
            body = await resp.json()
    except aiohttp.ClientConnectionError:
        return None  # a stale key file from a service that is gone
    if resp.status != 200:
        raise SupportbotError(f"the running service answered HTTP {resp.status}: {body.get('error', '')}")
    return {**body, "service": base}


async def _ask_running_service(settings: Settings, question: str) -> dict[str, Any] | None:
    body = await _call_running_service(settings, "/api/ask", {"question": question})
    if body is None:
        return None
    return {
        "channel": "cli",
        "conversation_key": body["conversation_id"],
        "in_reply_to": "",
        "text": body["answer"],
        "outcome": body["outcome"],
        "idempotency_key": "",
        "citations": body["citations"],
        "confidence": body["confidence"],
        "low_confidence": body["low_confidence"],
        "reference_id": body["reference_id"],
    }


async def _eval(args: argparse.Namespace, settings: Settings) -> int:
    if args.eval_kind == "export-verdicts":
        from app.commands import export_verdicts_command  # lazy: loaded by the command that needs it

        return await export_verdicts_command(settings, args.out)
    for folder in getattr(args, "folders", None) or [args.folder]:
        if not (folder / "corpus.jsonl").is_file():
            raise UsageError(f"{folder} is not a BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv)")
    from app.build import knowledge_config  # lazy: loaded by the command that needs it
    from knowledge.eval import (  # lazy: loaded by the command that needs it (after the folder is checked)
        fit_fusion,
        format_answer_report,
        format_eval_table,
        format_fusion_fit,
        run_answers_eval,
        run_retrieval_eval,
    )

    offline_environment()
    config = knowledge_config(settings)
    if args.eval_kind == "fit-confidence":
        from knowledge.confidence_fit import fit_folders, format_confidence_fit  # lazy: loaded by this command

        confidence_fit = await asyncio.to_thread(fit_folders, args.folders, config)
        print(json.dumps(confidence_fit.as_dict()) if args.json else format_confidence_fit(confidence_fit))
        return 0
    if args.eval_kind == "answers":
        if not 0.0 <= args.holdout < 1.0:
            raise UsageError("--holdout takes a fraction from 0 to below 1, e.g. 0.3")
        report = await run_answers_eval(args.folder, config, holdout=args.holdout, noise=args.noise)
        print(json.dumps(report.as_dict(args.questions)) if args.json else format_answer_report(report))
        return 0
    if args.eval_kind == "fit":
        fitted = await asyncio.to_thread(fit_fusion, args.folder, config)
        print(json.dumps(fitted.as_dict()) if args.json else format_fusion_fit(fitted))
        return 0
    results = await asyncio.to_thread(run_retrieval_eval, args.folder, config)
    print(json.dumps(results) if args.json else format_eval_table(results))
    return 0


async def _doctor(_args: argparse.Namespace, settings: Settings) -> int:
    from app.doctor import run_doctor  # lazy: loaded by the command that needs it

    return await run_doctor(settings)


async def _db(_args: argparse.Namespace, settings: Settings) -> int:
    from app.build import build_for_command  # lazy: loaded by the command that needs it

    async with build_for_command(settings):
        pass  # entering migrates
    print(f"database at {safe_url(settings.resolved_database_url)} is up to date")
    return 0


async def _replay(args: argparse.Namespace, settings: Settings) -> int:
    from app.commands import replay_command  # lazy: loaded by the command that needs it

    return await replay_command(settings, ids=args.id, everything=args.all)


async def _report(args: argparse.Namespace, settings: Settings) -> int:
    from app.commands import report_command  # lazy: loaded by the command that needs it

    return await report_command(settings, week=args.week, dry_run=args.dry_run, out=args.out)


async def _gaps(_args: argparse.Namespace, settings: Settings) -> int:
    from app.commands import gaps_command  # lazy: loaded by the command that needs it

    return await gaps_command(settings)


async def _tickets(args: argparse.Namespace, settings: Settings) -> int:
    from app.commands import tickets_command  # lazy: loaded by the command that needs it

    return await tickets_command(settings, limit=args.limit)


async def _forget(args: argparse.Namespace, settings: Settings) -> int:
    from app.commands import forget_command  # lazy: loaded by the command that needs it

    return await forget_command(settings, args.who)


async def _job(args: argparse.Namespace, settings: Settings) -> int:
    from app.commands import job_command  # lazy: loaded by the command that needs it

    return await job_command(settings, args.name)


COMMANDS: dict[str, Command] = {
    "serve": _serve,
    "ingest": _ingest,
    "ask": _ask,
    "eval": _eval,
    "doctor": _doctor,
    "db": _db,
    "replay": _replay,
    "report": _report,
    "gaps": _gaps,
    "tickets": _tickets,
    "job": _job,
    "forget": _forget,
}


def _logging_for(command: str, settings: Settings) -> None:
    """Logs go to stderr (stdout is for results, e.g. `ask --json`); one-shot commands log warnings and worse."""
    if command != "serve" and settings.log_level in ("DEBUG", "INFO"):
        settings = settings.model_copy(update={"log_level": "WARNING"})
    setup_logging(settings)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.umask(0o077)  # everything we write under DATA_DIR (database, index, keys, reports) is ours alone
    try:
        settings = load_settings()
        _logging_for(args.command, settings)
        return asyncio.run(COMMANDS[args.command](args, settings))
    except (ConfigError, UsageError) as exc:
        print(f"supportbot: {exc}", file=sys.stderr)
        return 2
    except SupportbotError as exc:
        print(f"supportbot: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
