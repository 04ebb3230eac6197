"""Run Tally as real gunicorn processes for multi-worker and chaos tests."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

from tests.support.localstripe import REPO_ROOT, free_port

START_TIMEOUT = 30.0


def flask_cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "app", *args], cwd=REPO_ROOT,
                            env=env, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"flask {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def child_pids(pid: int) -> list[int]:
    """The direct children of `pid` (gunicorn's workers of a master), from /proc."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                children.append(int(entry.name))
    return children


class Server:
    """A gunicorn master on a loopback port, with ways to hurt it."""

    def __init__(self, env: dict[str, str], workers: int, args: Sequence[str] = ()) -> None:
        self.env, self.workers = env, workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.output: IO[str] = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            # --preload: workers fork from a master that imported the app once, so a worker
            # started after a kill runs the same code (and boots faster).
            [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{self.port}",
             "--preload", *args, "app:create_app()"], cwd=REPO_ROOT, env=env, stdout=self.output,
            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                output = self.log()
                self.stop()
                raise RuntimeError(f"gunicorn did not start:\n{output}")
            time.sleep(0.1)

    def answers(self) -> bool:
        try:
            urllib.request.urlopen(self.url + "/v1/billing/config", timeout=1).close()
            return True
        except (OSError, urllib.error.URLError):
            return False

    def worker_pids(self) -> list[int]:
        return child_pids(self.process.pid)

    def kill_worker(self, rng: random.Random | None = None) -> int | None:
        """SIGKILL one worker, mid-request when the server is busy; the master starts
        another. Returns the pid killed (None if there was no worker to kill)."""
        workers = self.worker_pids()
        if not workers:
            return None
        pid = (rng or random).choice(workers)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return None
        return pid

    def crash(self) -> None:
        """SIGKILL the master and every worker at once: a machine losing power, as far as
        this server's processes can tell."""
        workers = self.worker_pids()
        for pid in [self.process.pid, *workers]:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait()

    def log(self) -> str:
        self.output.seek(0)
        return self.output.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.output.close()


@contextmanager
def gunicorn_server(env: dict[str, str], workers: int = 1, args: Sequence[str] = ()) -> Iterator[Server]:
    """Serve `app:create_app()` with gunicorn on a free loopback port; `args` are more of
    gunicorn's options (a worker class, say)."""
    server = Server(env, workers, args)
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def gunicorn(env: dict[str, str], workers: int = 1) -> Iterator[str]:
    """As `gunicorn_server`, yielding only its URL."""
    with gunicorn_server(env, workers) as server:
        yield server.url


def base_env(database_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "TALLY_"))}
    env.pop("REDIS_URL", None)
    env.update({"DATABASE_URL": database_url, "SECRET_KEY": "multi-worker-test",
                "PYTHONPATH": str(REPO_ROOT)}, **extra)
    return env
