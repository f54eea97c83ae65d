"""`sluice-worker --processes P`: P independent worker processes under one supervisor, which
passes SIGTERM on (each child stops gracefully) and starts a child again if it dies."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import zmq.asyncio

from sluice import protocol as p
from test_worker import FakeBroker, pack, unpack


def children_of(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(c) for c in text.split()]


def test_processes_run_independent_workers_restart_the_dead_and_stop_together():
    async def scenario():
        ctx = zmq.asyncio.Context()
        broker = FakeBroker(ctx)
        env = dict(os.environ, SLUICE_BROKER_WORKER_ENDPOINT=broker.endpoint)
        proc = subprocess.Popen([sys.executable, "-m", "sluice", "sluice.tasks", "--processes", "2",
                                 "--concurrency", "3", "--name", "pw"],
                                env=env, stderr=subprocess.PIPE, text=True)
        try:
            ready = {}
            while len(ready) < 2:
                ident, msg = await broker.expect(p.Ready, timeout=10)
                ready[msg.worker_name] = (ident, msg)
            assert sorted(ready) == ["pw-1", "pw-2"]
            assert all(m.concurrency == 3 for _, m in ready.values())
            # Each child is a worker of its own: a job sent to either is answered by it.
            for name, (ident, _) in ready.items():
                broker.send(ident, p.Job(f"job-{name}", "echo", pack(name), 1, 30))
                _, result = await broker.expect(p.Result)
                assert result.job_id == f"job-{name}" and unpack(result.result) == name

            # A child that dies is started again, under the same name.
            victim = children_of(proc.pid)[0]
            os.kill(victim, signal.SIGKILL)
            _, again = await broker.expect(p.Ready, timeout=10)
            assert again.worker_name in ("pw-1", "pw-2")
            assert len(children_of(proc.pid)) == 2 and victim not in children_of(proc.pid)

            # SIGTERM to the supervisor: every child says DISCONNECT and exits; then it exits 0.
            proc.send_signal(signal.SIGTERM)
            await broker.expect(p.Disconnect)
            await broker.expect(p.Disconnect)
            code = await asyncio.get_running_loop().run_in_executor(None, proc.wait, 10)
            stderr = proc.stderr.read()
            assert code == 0, stderr
            assert "pw: 2 processes x concurrency 3" in stderr
            assert "starting it again" in stderr
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            ctx.destroy(linger=0)

    asyncio.run(asyncio.wait_for(scenario(), 30))
