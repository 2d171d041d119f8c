"""`python -m bench NAME [--quick] [--json]`: run one benchmark module from this folder and print its figures."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import pkgutil
from pathlib import Path

from bench.harness import Report


def available() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Run a benchmark; prints figures and ratios.")
    parser.add_argument("name", nargs="?", help="benchmark name, e.g. knowledge (module bench/bench_knowledge.py)")
    parser.add_argument("--list", action="store_true", help="list benchmarks")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()
    if args.list or not args.name:
        print("\n".join(n.removeprefix("bench_") for n in available()))
        return
    module = importlib.import_module(f"bench.bench_{args.name.removeprefix('bench_')}")
    report = Report(title=args.name)
    asyncio.run(module.run(report, args.quick))
    print(report.as_json() if args.json else report.render())


if __name__ == "__main__":
    main()
