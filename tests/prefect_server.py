"""One real Prefect server per test session: `prefect server start` on 127.0.0.1, its own PREFECT_HOME.

Registered as a plugin by tests/conftest.py. Flows called in-process talk to it (temporary settings);
`server.env` is the environment for subprocesses (CLI, workers). Everything started is stopped.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PREFECT = str(Path(sys.executable).parent / "prefect")


PYTEST_CONFIG = None  # set by tests/conftest.py: what say() needs to get past pytest's output capture


def say(message: str) -> None:
    """A progress line from a long test, shown even while pytest captures output (-q): on a slow, shared
    machine a silent test that takes minutes looks like a hang."""
    capture = PYTEST_CONFIG.pluginmanager.getplugin("capturemanager") if PYTEST_CONFIG else None
    line = f"\n  [{time.strftime('%H:%M:%S')}] {message}"
    if capture is None:
        print(line, end="", file=sys.stderr, flush=True)
        return
    with capture.global_and_fixture_disabled():
        print(line, end="", file=sys.stderr, flush=True)


@dataclass
class PrefectServer:
    api_url: str
    home: Path
    env: dict[str, str]

    def cli(self, *args: str, timeout: float = 600, cwd: str | Path | None = None, extra_env=None) -> str:
        """Run a `prefect` command against this server; its output, or an assertion error with it."""
        env = {**self.env, **(extra_env or {})}
        done = subprocess.run(
            [PREFECT, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
        )
        assert done.returncode == 0, f"prefect {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout + done.stderr

    def deployment_run(self, name: str, extra_env=None, **params) -> str:
        """`prefect deployment run NAME --param key=value ...` (values not str as JSON); the run's id."""
        args = []
        for key, value in params.items():
            args += ["--param", f"{key}={value if isinstance(value, str) else json.dumps(value)}"]
        started = self.cli("deployment", "run", name, *args, extra_env=extra_env)
        return re.search(r"UUID:\s*([0-9a-f-]{36})", started).group(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    """SIGTERM the process group, then SIGKILL what is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=15)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory) -> Iterator[PrefectServer]:
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_CLI_PROMPT": "false",
        "PYTHONUNBUFFERED": "1",
    }
    log = open(home / "server.log", "w")
    process = subprocess.Popen(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"prefect server did not start:\n{(home / 'server.log').read_text()[-3000:]}"
                )
            time.sleep(0.3)
        with temporary_settings(updates={PREFECT_API_URL: api_url, PREFECT_HOME: str(home)}):
            yield PrefectServer(api_url, home, env)
    finally:
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=5)  # send the last logs while the server is still up
        stop(process)
        log.close()
