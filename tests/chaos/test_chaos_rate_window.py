"""Rate limits across 4 gunicorn workers sharing Redis: clients hammer /v1/authorize for
over a minute, and in no 60-second window does the server allow more calls than the
plan's requestsPerMinute.

The client cannot see when the server admitted a call, only that it was between sending
and the answer. So for every RPM + 1 allowed calls (taken in order of sending), the last
answer minus the first send must span at least 60 seconds; a limiter that let RPM + 1
through in any 60 seconds would fail that.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from extensions import db
from models import UsageEvent
from tests.chaos.conftest import deploy
from tests.support.chaos import send, write_figures
from tests.support.servers import gunicorn_server

pytestmark = pytest.mark.chaos

RPM = 20
RUN_SECONDS = 70  # more than one window, so the window slides at least once
CLIENTS = 6
WORKERS = 4


def test_no_sixty_second_window_allows_more_than_the_plan(app, backend, tmp_path, localstripe_url,
                                                         make_customer):
    deployment = deploy(app, tmp_path, localstripe_url, requestsPerMinute=RPM)
    customer = make_customer()
    calls: list[tuple[float, float, int]] = []  # (sent, answered, status), monotonic seconds
    lock = threading.Lock()
    with gunicorn_server(deployment.env, workers=WORKERS) as server:
        stop_at = time.monotonic() + RUN_SECONDS

        def hammer(_: int) -> None:
            while time.monotonic() < stop_at:
                sent = time.monotonic()
                status, _answer = send("POST", server.url + "/v1/authorize", b"", customer.headers)
                with lock:
                    calls.append((sent, time.monotonic(), status))
                time.sleep(0.05)

        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(hammer, range(CLIENTS)))

    assert {status for _, _, status in calls} <= {200, 429}
    allowed = sorted((sent, answered) for sent, answered, status in calls if status == 200)
    assert len(allowed) >= RPM
    tightest = min((max(answered for _, answered in allowed[i:i + RPM + 1]) - allowed[i][0]
                    for i in range(len(allowed) - RPM)), default=None)
    assert tightest is None or tightest >= 60, f"{RPM + 1} calls allowed within {tightest:.2f} s"
    with app.app_context():  # every allowed call was metered once; refused ones not at all
        assert db.session.scalar(select(func.count()).select_from(UsageEvent)) == len(allowed)
        db.session.remove()

    write_figures("rate_limit_window", {
        "requests_per_minute": RPM, "gunicorn_workers": WORKERS, "clients": CLIENTS,
        "seconds": RUN_SECONDS, "requests": len(calls), "allowed": len(allowed),
        "refused_429": len(calls) - len(allowed),
        "tightest_window_seconds": round(tightest, 2) if tightest is not None else None,
        "windows_over_the_limit": 0,
    })
