"""Run Tally as real gunicorn processes for multi-worker tests."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.localstripe import REPO_ROOT, free_port


def flask_cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "app", *args], cwd=REPO_ROOT,
                            env=env, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"flask {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


@contextmanager
def gunicorn(env: dict[str, str], workers: int = 1) -> Iterator[str]:
    """Serve `app:create_app()` with gunicorn on a free loopback port; yield its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile(mode="w+") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}",
             "app:create_app()"], cwd=REPO_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(url + "/v1/billing/config", timeout=1).close()
                    break
                except (OSError, urllib.error.URLError):
                    if process.poll() is not None or time.monotonic() > deadline:
                        output.seek(0)
                        raise RuntimeError(f"gunicorn did not start:\n{output.read()}") from None
                    time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def base_env(database_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "TALLY_"))}
    env.update({"DATABASE_URL": database_url, "SECRET_KEY": "multi-worker-test",
                "PYTHONPATH": str(REPO_ROOT)}, **extra)
    return env
