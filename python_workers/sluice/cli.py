"""`sluice-worker`: imports task modules and serves their tasks to a broker until SIGTERM/SIGINT.

    sluice-worker [MODULE ...] [--broker ENDPOINT] [--concurrency N] [--processes P]
                  [--name NAME] [--grace-period SECONDS] [--log-level LEVEL]
                  [--metrics-port PORT] [--metrics-address ADDRESS]

MODULE defaults to sluice.tasks and sluice.ai_tasks (the built-in tasks). Environment fallbacks
(README.md): SLUICE_BROKER_WORKER_ENDPOINT for --broker, SLUICE_WORKER_CONCURRENCY for
--concurrency, SLUICE_WORKER_PROCESSES for --processes, SLUICE_WORKER_NAME for --name,
SLUICE_LOG_LEVEL for --log-level (debug, info, warn, error). SLUICE_MAX_INPUT_BYTES (default
512 KiB, as the broker's) bounds the JOB frames the worker accepts. CURVE keys (README.md,
Security) come only from files named in the environment: SLUICE_CURVE_SECRET_KEY_FILE (this
worker's secret key) and SLUICE_BROKER_PUBLIC_KEY_FILE (the broker's public key), both or
neither; neither is allowed only while the broker endpoint is local to this host.

One process runs up to N jobs at once on one asyncio loop (sync handlers in a thread pool).
With --processes P > 1 this process only supervises P worker processes (each its own worker,
named NAME-1 .. NAME-P, with N slots): the way to use several cores for CPU-bound tasks. SIGTERM
or SIGINT reaches every child, which stops gracefully; a child that dies is started again.
With --metrics-port (env SLUICE_WORKER_METRICS_PORT) the worker serves Prometheus metrics
(sluice/metrics.py) at http://ADDRESS:PORT/metrics, ADDRESS 127.0.0.1 unless --metrics-address
(env SLUICE_WORKER_METRICS_ADDRESS) says otherwise; worker process i of a --processes run serves
them on PORT + i - 1. With SLUICE_OTLP_ENDPOINT (a collector's base URL) it exports OpenTelemetry
spans of each job and model call over OTLP/HTTP (sluice/tracing.py).
Exit status: 0 after a graceful shutdown, 2 for bad arguments, a module that fails to import or
a metrics port that cannot be bound.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import subprocess
import sys
import time
import traceback

import zmq

from . import curve
from . import protocol as p
from . import tracing
from .registry import registry
from .worker import DEFAULT_BROKER, Worker, WorkerConfig, default_worker_name, endpoints_of


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be a port, 1..65535")
    return value


def _log_level(text: str) -> str:
    level = {"WARN": "WARNING"}.get(text.upper(), text.upper())
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise argparse.ArgumentTypeError(f"{text!r}: use debug, info, warn or error")
    return level


DEFAULT_MODULES = ["sluice.tasks", "sluice.ai_tasks"]
# A child that exits this soon after its start counts as crashing: wait before the next start,
# so a broken setup does not spin the CPU.
RESTART_BACKOFF_S = 1.0
MIN_CHILD_UPTIME_S = 5.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    env_concurrency = os.environ.get("SLUICE_WORKER_CONCURRENCY")
    env_processes = os.environ.get("SLUICE_WORKER_PROCESSES")
    env_max_input = os.environ.get("SLUICE_MAX_INPUT_BYTES")
    parser = argparse.ArgumentParser(
        prog="sluice-worker", description="Serve Sluice tasks to a broker.")
    parser.add_argument("modules", nargs="*", default=list(DEFAULT_MODULES),
                        help="modules whose @task functions to serve "
                             f"(default: {' '.join(DEFAULT_MODULES)})")
    parser.add_argument("--broker", default=os.environ.get("SLUICE_BROKER_WORKER_ENDPOINT",
                                                           DEFAULT_BROKER),
                        help="broker backend endpoint(s), comma-separated: the leader's and its standbys' "
                             "(env SLUICE_BROKER_WORKER_ENDPOINT, "
                             f"default {DEFAULT_BROKER})")
    parser.add_argument("--concurrency", type=_positive_int, default=None,
                        help="jobs run at once per process (env SLUICE_WORKER_CONCURRENCY, "
                             "default 4)")
    parser.add_argument("--processes", type=_positive_int, default=None,
                        help="worker processes to run, for CPU-bound tasks "
                             "(env SLUICE_WORKER_PROCESSES, default 1)")
    parser.add_argument("--name", default=os.environ.get("SLUICE_WORKER_NAME") or default_worker_name(),
                        help="worker name sent to the broker (env SLUICE_WORKER_NAME, "
                             "default hostname-pid)")
    parser.add_argument("--grace-period", type=float, default=10.0,
                        help="seconds running jobs get to finish on shutdown (default 10)")
    parser.add_argument("--log-level", default=os.environ.get("SLUICE_LOG_LEVEL", "info"),
                        type=_log_level, help="debug, info, warn or error "
                                              "(env SLUICE_LOG_LEVEL, default info)")
    parser.add_argument("--metrics-port", type=_port, default=None,
                        help="serve Prometheus metrics on this port "
                             "(env SLUICE_WORKER_METRICS_PORT; default: no metrics)")
    parser.add_argument("--metrics-address",
                        default=os.environ.get("SLUICE_WORKER_METRICS_ADDRESS", "127.0.0.1"),
                        help="address the metrics port listens on "
                             "(env SLUICE_WORKER_METRICS_ADDRESS, default 127.0.0.1)")
    args = parser.parse_args(argv)
    env_metrics_port = os.environ.get("SLUICE_WORKER_METRICS_PORT")
    if args.metrics_port is None and env_metrics_port:
        try:
            args.metrics_port = _port(env_metrics_port)
        except (ValueError, argparse.ArgumentTypeError):
            parser.error(f"SLUICE_WORKER_METRICS_PORT={env_metrics_port!r}: must be a port, 1..65535")
    if args.concurrency is None:
        try:
            args.concurrency = _positive_int(env_concurrency) if env_concurrency else 4
        except (ValueError, argparse.ArgumentTypeError):
            parser.error(f"SLUICE_WORKER_CONCURRENCY={env_concurrency!r}: must be an integer >= 1")
    if args.processes is None:
        try:
            args.processes = _positive_int(env_processes) if env_processes else 1
        except (ValueError, argparse.ArgumentTypeError):
            parser.error(f"SLUICE_WORKER_PROCESSES={env_processes!r}: must be an integer >= 1")
    if args.metrics_port is not None and args.metrics_port + args.processes - 1 > 65535:
        parser.error("--metrics-port: the last worker process's port would be past 65535")
    try:
        args.max_input_bytes = _positive_int(env_max_input) if env_max_input else p.DEFAULT_MAX_INPUT
    except (ValueError, argparse.ArgumentTypeError):
        parser.error(f"SLUICE_MAX_INPUT_BYTES={env_max_input!r}: must be an integer >= 1")
    args.curve = curve_from_env(parser, args.broker)
    return args


def curve_from_env(parser: argparse.ArgumentParser, broker: str) -> curve.ClientKeys | None:
    """The worker's CURVE keys from the environment, or None; a bad setting exits 2 naming the
    variable."""
    secret = os.environ.get("SLUICE_CURVE_SECRET_KEY_FILE") or None
    server = os.environ.get("SLUICE_BROKER_PUBLIC_KEY_FILE") or None
    if not endpoints_of(broker):
        parser.error(f"--broker lists no endpoint: {broker!r}")
    if secret is None and server is None:
        for endpoint in endpoints_of(broker):
            if not curve.local_endpoint(endpoint):
                parser.error(f"SLUICE_BROKER_PUBLIC_KEY_FILE must be set (with SLUICE_CURVE_SECRET_KEY_FILE): "
                             f"broker {endpoint} is not on this host, and without CURVE keys anyone on the way "
                             f"could pose as the broker (README.md, Security)")
        return None
    if secret is None:
        parser.error("SLUICE_CURVE_SECRET_KEY_FILE must be set with SLUICE_BROKER_PUBLIC_KEY_FILE")
    if server is None:
        parser.error("SLUICE_BROKER_PUBLIC_KEY_FILE must be set with SLUICE_CURVE_SECRET_KEY_FILE")
    keys = {}
    for name, path in (("SLUICE_CURVE_SECRET_KEY_FILE", secret), ("SLUICE_BROKER_PUBLIC_KEY_FILE", server)):
        try:
            keys[name] = curve.read_key(path)
        except curve.KeyFileError as exc:
            parser.error(f"{name} {exc}")
    secret_key = keys["SLUICE_CURVE_SECRET_KEY_FILE"]
    return curve.ClientKeys(zmq.curve_public(secret_key), secret_key, keys["SLUICE_BROKER_PUBLIC_KEY_FILE"])


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
    if args.processes > 1:
        return supervise(args)
    metrics = None
    if args.metrics_port is not None:
        from .metrics import serve_metrics  # prometheus_client only when asked for
        try:
            metrics = serve_metrics(args.metrics_port, args.metrics_address)
        except OSError as exc:
            print(f"sluice-worker: cannot serve metrics on {args.metrics_address}:{args.metrics_port}: "
                  f"{exc}", file=sys.stderr)
            return 2
        print(f"sluice-worker {args.name}: metrics at http://{args.metrics_address}:"
              f"{args.metrics_port}/metrics", file=sys.stderr, flush=True)
    try:
        if tracing.setup(args.name):
            print(f"sluice-worker {args.name}: spans to {os.environ[tracing.ENDPOINT_ENV]}",
                  file=sys.stderr, flush=True)
    except ValueError as exc:
        print(f"sluice-worker: {exc}", file=sys.stderr)
        return 2
    config = WorkerConfig(broker=args.broker, name=args.name, concurrency=args.concurrency,
                          grace_period=args.grace_period, max_input_bytes=args.max_input_bytes, curve=args.curve,
                          metrics=metrics)
    print(f"sluice-worker {config.name}: broker {config.broker} (CURVE "
          f"{'on' if config.curve else 'off'}), concurrency "
          f"{config.concurrency}, tasks {', '.join(registry.names())}", file=sys.stderr, flush=True)
    try:
        asyncio.run(serve(Worker(registry, config)))
    finally:
        tracing.shutdown()
    return 0


def child_argv(args: argparse.Namespace, index: int) -> list[str]:
    """Returns the command line of worker process `index` (1-based) of a --processes run."""
    return [sys.executable, "-m", "sluice", *args.modules, "--broker", args.broker,
            "--concurrency", str(args.concurrency), "--processes", "1",
            "--name", f"{args.name}-{index}", "--grace-period", str(args.grace_period),
            "--log-level", args.log_level,
            *(["--metrics-port", str(args.metrics_port + index - 1),
               "--metrics-address", args.metrics_address] if args.metrics_port is not None else [])]


def supervise(args: argparse.Namespace) -> int:
    """Runs args.processes worker processes until SIGTERM/SIGINT, then stops them gracefully.

    Each signal is passed on to every child (so a second one cuts their grace period short, as
    for a single worker). A child that exits while no stop was asked for is started again, after
    RESTART_BACKOFF_S when it lived less than MIN_CHILD_UPTIME_S. Returns 0.
    """
    log = logging.getLogger("sluice.cli")
    stopping = []
    children: dict[int, tuple[subprocess.Popen, float]] = {}

    def start(index: int) -> None:
        proc = subprocess.Popen(child_argv(args, index))
        children[index] = (proc, time.monotonic())
        if stopping:  # a signal came while it was starting: it must hear it too
            proc.send_signal(stopping[-1])

    def on_signal(signum, _frame) -> None:
        stopping.append(signum)
        for proc, _ in children.values():
            if proc.poll() is None:
                proc.send_signal(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"sluice-worker {args.name}: {args.processes} processes x concurrency "
          f"{args.concurrency}, broker {args.broker}, tasks {', '.join(registry.names())}",
          file=sys.stderr, flush=True)
    for index in range(1, args.processes + 1):
        start(index)
    restart_at: dict[int, float] = {}
    while True:
        if stopping:
            if all(proc.poll() is not None for proc, _ in children.values()):
                break
        else:
            now = time.monotonic()
            for index, (proc, started) in list(children.items()):
                if proc.poll() is not None and index not in restart_at:
                    quick = now - started < MIN_CHILD_UPTIME_S
                    log.warning("worker process %s-%d exited with %s; starting it again%s",
                                args.name, index, proc.returncode,
                                f" in {RESTART_BACKOFF_S:.0f} s" if quick else "")
                    restart_at[index] = now + (RESTART_BACKOFF_S if quick else 0.0)
            for index, when in list(restart_at.items()):
                if now >= when:
                    del restart_at[index]
                    start(index)
        time.sleep(0.1)
    log.info("all %d worker processes stopped", len(children))
    return 0


if __name__ == "__main__":
    sys.exit(main())
