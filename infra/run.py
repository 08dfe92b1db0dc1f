"""Run a deployment and follow it to its end, as `prefect deployment run NAME --watch` does, plus:
- Ctrl-C (or SIGTERM) cancels the flow run, which stops its shards (tasks/shards.py), in one line;
- a run that no worker picks up says so, and how to start one.

    python infra/run.py text2world/batch --param manifest=assets/embedded/text2world/batch_example.json \\
        --param output_root=output/t2w [--param options='{"shard_size": 2}']

Exit status: 0 Completed, 1 any other end, 130 interrupted (the run cancelled).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time

import tasks  # noqa: F401  (Prefect telemetry off, as in every project entry point)

# isort: split
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import WorkerFilter, WorkerFilterStatus
from prefect.deployments import run_deployment
from prefect.states import Cancelling

NO_WORKER_SECONDS = 20  # waiting this long with no online worker on the pool: say so


def parse_params(pairs: list[str]) -> dict:
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"run.py: --param {pair!r}: expected KEY=VALUE")
        try:
            params[key] = json.loads(value)  # numbers, objects (options='{"shard_size": 2}')
        except json.JSONDecodeError:
            params[key] = value  # a plain string (a path)
    return params


async def online_workers(client, pool: str) -> int:
    workers = await client.read_workers_for_work_pool(
        pool, worker_filter=WorkerFilter(status=WorkerFilterStatus(any_=["ONLINE"]))
    )
    return len(workers)


async def follow(name: str, params: dict) -> int:
    flow_run = await run_deployment(name, parameters=params, timeout=0)
    print(f"run.py: flow run {flow_run.name} ({flow_run.id}) of {name}; Ctrl-C cancels it", flush=True)
    interrupted = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupted.set)
    async with get_client() as client:
        deployment = await client.read_deployment(flow_run.deployment_id)
        started, last, warned = time.monotonic(), None, False
        while True:
            if interrupted.is_set():
                await client.set_flow_run_state(flow_run.id, Cancelling(), force=True)
                print(f"run.py: interrupted: cancelling flow run {flow_run.name} (its shards stop with it)")
                return 130
            run = await client.read_flow_run(flow_run.id)
            if run.state.name != last:
                last = run.state.name
                print(f"run.py: {flow_run.name}: {last}", flush=True)
            if run.state.is_final():
                if run.state.message:
                    print(f"run.py: {run.state.message}")
                return 0 if run.state.is_completed() else 1
            waiting = run.state.is_scheduled() or run.state.is_pending()
            pool = deployment.work_pool_name
            if waiting and not warned and time.monotonic() - started > NO_WORKER_SECONDS:
                if pool and await online_workers(client, pool) == 0:
                    print(
                        f"run.py: waiting for a worker: none is online on pool {pool!r}; start one with "
                        f"`bash infra/start-worker.sh {pool}`",
                        flush=True,
                    )
                    warned = True
            try:
                await asyncio.wait_for(interrupted.wait(), timeout=2)
            except TimeoutError:
                pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python infra/run.py", description=__doc__.split("\n")[0])
    parser.add_argument("deployment", help="FLOW/DEPLOYMENT, e.g. text2world/batch")
    parser.add_argument("--param", action="append", default=[], help="KEY=VALUE (JSON or text)")
    args = parser.parse_args(argv)
    return asyncio.run(follow(args.deployment, parse_params(args.param)))


if __name__ == "__main__":
    sys.exit(main())
