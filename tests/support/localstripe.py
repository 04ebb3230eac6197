"""Start the extended localstripe (``python -m devtools.localstripe_ext``) for a test.

    with running_localstripe() as base_url:      # e.g. "http://127.0.0.1:40123"
        client = stripe.StripeClient("sk_test_x", base_addresses={"api": base_url})
        ...

Each call starts its own server process with an empty store, so tests and a demo can
run side by side. The extended Stripe.js is at ``base_url + "/js.stripe.com/tally/v3.js"``.
``simulate_renewal`` ends a subscription's period now (test-only endpoint, not Stripe's).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
STRIPE_JS_PATH = "/js.stripe.com/tally/v3.js"
START_TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


@contextmanager
def running_localstripe(
    port: int | None = None,
    webhook_url: str | None = None,
    webhook_secret: str | None = None,
) -> Iterator[str]:
    """Run the extended localstripe on 127.0.0.1 (a free port unless given); yield its URL."""
    if bool(webhook_url) != bool(webhook_secret):
        raise ValueError("webhook_url and webhook_secret go together")
    port = port or free_port()
    base_url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "devtools.localstripe_ext", "--port", str(port)]
    if webhook_url and webhook_secret:
        command += ["--webhook-url", webhook_url, "--webhook-secret", webhook_secret]
    # Output goes to a file, not a pipe nobody reads (a full pipe would block the server).
    with tempfile.TemporaryFile(mode="w+") as output:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while not _answers(base_url + STRIPE_JS_PATH):
                if process.poll() is not None or time.monotonic() > deadline:
                    output.seek(0)
                    raise RuntimeError(
                        f"localstripe-ext did not start on {base_url} "
                        f"(exit code {process.poll()}):\n{output.read()}"
                    )
                time.sleep(0.05)
            yield base_url
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def register_webhook(base_url: str, url: str, secret: str, id: str = "tally") -> None:
    """Send every event of the localstripe at ``base_url`` to ``url``, signed with ``secret``."""
    request = urllib.request.Request(
        f"{base_url}/_config/webhooks/{id}",
        data=json.dumps({"url": url, "secret": secret}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5):
        pass


def simulate_renewal(
    base_url: str, subscription_id: str, outcome: str, secret_key: str = "sk_test_tally"
) -> dict:
    """``POST /_ext/subscriptions/{id}/renew``: the period ends now and the renewal invoice is
    ``paid`` or ``failed``; returns the invoice (or, for a subscription set to cancel at the
    period end, the canceled subscription). See devtools/localstripe_ext/billing.py."""
    request = urllib.request.Request(
        f"{base_url}/_ext/subscriptions/{subscription_id}/renew",
        data=json.dumps({"outcome": outcome}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {secret_key}"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.load(response))


def stripe_objects(base_url: str, secret_key: str = "sk_test_tally") -> dict[str, str]:
    """``GET /_ext/store``: every object at the simulator, as ``{"<kind>:<id>": digest}``;
    equal before and after a request when the request changed nothing at Stripe."""
    request = urllib.request.Request(f"{base_url}/_ext/store",
                                     headers={"Authorization": f"Bearer {secret_key}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.load(response)["objects"])
