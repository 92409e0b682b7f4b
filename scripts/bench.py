"""bassi's benchmarks: every figure next to a baseline measured in the same run.

    uv run python scripts/bench.py [--quick] [--json] [--suite NAME ...]

Suites (docs/performance.md has the latest results and what each one measures):
- store:   the event core against raw sqlite3 (append, replay);
- peers:   the same persist/reload workload through OpenAI Agents SDK SQLiteSession, Google ADK
           DatabaseSessionService and the eventsourcing library (needs the `bench` group);
- e2e:     scripted model -> agent -> store -> WebSocket client at 1, 10, 100 sessions, against
           a bare WebSocket server streaming the same frames;
- restart: `bassi serve` start to ready with 1,000 sessions x 200 events, against an empty db;
- fanout:  one session, 49 healthy WebSocket clients with and without a 50th, stalled one.

`--json` prints one object keyed by suite. `--quick` shrinks every workload (about a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import bench_store  # noqa: E402

SUITES = ("store", "peers", "e2e", "restart", "fanout")


async def store_suite(quick: bool) -> dict[str, Any]:
    return await bench_store.run(quick)


async def peers_suite(quick: bool) -> dict[str, Any]:
    import bench_peers

    return await bench_peers.run(quick)


async def e2e_suite(quick: bool) -> dict[str, Any]:
    import bench_server

    return await bench_server.e2e(quick)


async def restart_suite(quick: bool) -> dict[str, Any]:
    import bench_server

    return await bench_server.restart(quick)


async def fanout_suite(quick: bool) -> dict[str, Any]:
    import bench_server

    return await bench_server.fanout(quick)


RUNNERS: dict[str, Callable[[bool], Awaitable[dict[str, Any]]]] = {
    "store": store_suite,
    "peers": peers_suite,
    "e2e": e2e_suite,
    "restart": restart_suite,
    "fanout": fanout_suite,
}


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }


def print_human(name: str, result: dict[str, Any]) -> None:
    print(f"\n== {name} ({result.get('seconds', '?')} s)")
    if "error" in result:
        print(f"  failed: {result['error']}")
        return
    if name == "store":
        print(f"  {'workload':34} {'raw sqlite3':>12} {'bassi':>12} {'ratio':>6}")
        for label, raw, bassi in (
            ("append (events/s)", "raw_append_eps", "bassi_append_eps"),
            ("replay 1 x 10k (events/s)", "raw_replay_one_eps", "bassi_replay_one_eps"),
            ("replay 1000 x 20 (events/s)", "raw_replay_many_eps", "bassi_replay_many_eps"),
        ):
            print(
                f"  {label:34} {result[raw]:>12,} {result[bassi]:>12,}"
                f" {result[bassi] / result[raw]:>6.2f}"
            )
        return
    if name == "peers":
        import bench_peers

        bench_peers.print_table(result)
        return
    import bench_server

    bench_server.print_table(name, result)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small workloads, about a minute")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--suite",
        action="append",
        choices=SUITES,
        help="run only this suite (repeatable; default: all)",
    )
    args = parser.parse_args()
    chosen = args.suite or list(SUITES)
    out: dict[str, Any] = {"machine": machine(), "quick": args.quick}
    failed = False
    for name in chosen:
        started = time.perf_counter()
        try:
            result = asyncio.run(RUNNERS[name](args.quick))
        except Exception as exc:  # one suite failing must not hide the others' figures
            failed = True
            result = {"error": f"{type(exc).__name__}: {exc}"}
        result["seconds"] = round(time.perf_counter() - started, 1)
        out[name] = result
        if not args.json:
            print_human(name, result)
    if args.json:
        print(json.dumps(out))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
