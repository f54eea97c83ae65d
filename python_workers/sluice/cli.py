"""`sluice-worker`: imports task modules and serves their tasks to a broker until SIGTERM/SIGINT.

    sluice-worker [MODULE ...] [--broker ENDPOINT] [--concurrency N] [--name NAME]
                  [--grace-period SECONDS] [--log-level LEVEL]

MODULE defaults to sluice.tasks (the built-in tasks). Environment fallbacks (README.md):
SLUICE_BROKER_WORKER_ENDPOINT for --broker, SLUICE_WORKER_CONCURRENCY for --concurrency,
SLUICE_WORKER_NAME for --name, SLUICE_LOG_LEVEL for --log-level (debug, info, warn, error).
Exit status: 0 after a graceful shutdown, 2 for bad arguments or a module that fails to import.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import sys
import traceback

from .registry import registry
from .worker import DEFAULT_BROKER, Worker, WorkerConfig, default_worker_name


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _log_level(text: str) -> str:
    level = {"WARN": "WARNING"}.get(text.upper(), text.upper())
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise argparse.ArgumentTypeError(f"{text!r}: use debug, info, warn or error")
    return level


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    env_concurrency = os.environ.get("SLUICE_WORKER_CONCURRENCY")
    parser = argparse.ArgumentParser(
        prog="sluice-worker", description="Serve Sluice tasks to a broker.")
    parser.add_argument("modules", nargs="*", default=["sluice.tasks"],
                        help="modules whose @task functions to serve (default: sluice.tasks)")
    parser.add_argument("--broker", default=os.environ.get("SLUICE_BROKER_WORKER_ENDPOINT",
                                                           DEFAULT_BROKER),
                        help="broker backend endpoint (env SLUICE_BROKER_WORKER_ENDPOINT, "
                             f"default {DEFAULT_BROKER})")
    parser.add_argument("--concurrency", type=_positive_int, default=None,
                        help="jobs run at once (env SLUICE_WORKER_CONCURRENCY, default 4)")
    parser.add_argument("--name", default=os.environ.get("SLUICE_WORKER_NAME") or default_worker_name(),
                        help="worker name sent to the broker (env SLUICE_WORKER_NAME, "
                             "default hostname-pid)")
    parser.add_argument("--grace-period", type=float, default=10.0,
                        help="seconds running jobs get to finish on shutdown (default 10)")
    parser.add_argument("--log-level", default=os.environ.get("SLUICE_LOG_LEVEL", "info"),
                        type=_log_level, help="debug, info, warn or error "
                                              "(env SLUICE_LOG_LEVEL, default info)")
    args = parser.parse_args(argv)
    if args.concurrency is None:
        try:
            args.concurrency = _positive_int(env_concurrency) if env_concurrency else 4
        except (ValueError, argparse.ArgumentTypeError):
            parser.error(f"SLUICE_WORKER_CONCURRENCY={env_concurrency!r}: must be an integer >= 1")
    return args


async def serve(worker: Worker) -> None:
    """Runs `worker` until SIGTERM or SIGINT (a second one cuts the grace period short)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    await worker.run()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for module in args.modules:
        try:
            importlib.import_module(module)
        except Exception:
            print(f"sluice-worker: cannot import {module}:\n{traceback.format_exc()}",
                  file=sys.stderr)
            return 2
    if len(registry) == 0:
        print(f"sluice-worker: no @task in {', '.join(args.modules)}", file=sys.stderr)
        return 2
    config = WorkerConfig(broker=args.broker, name=args.name, concurrency=args.concurrency,
                          grace_period=args.grace_period)
    print(f"sluice-worker {config.name}: broker {config.broker}, concurrency "
          f"{config.concurrency}, tasks {', '.join(registry.names())}", file=sys.stderr, flush=True)
    asyncio.run(serve(Worker(registry, config)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
