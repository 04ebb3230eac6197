"""`make serve` keeps connections alive for the servers that call the gate, without letting
idle connections hold its workers (settings from gunicorn.conf.py).

A server calling `POST /v1/authorize` on every request it serves keeps a pool of
connections to Tally. Between its calls a connection may sit idle for seconds; Tally keeps
it open (a new connection per call costs a TCP handshake and a worker's accept), and an
idle kept-alive connection waits in the worker's poller, not in one of its threads.
"""

from __future__ import annotations

import http.client
import time
import urllib.request

from tests.support.servers import base_env, gunicorn_server

WORKERS = 2
THREADS = 16
IDLE = 5  # seconds between two calls on one connection (gunicorn's default keeps 2)


def test_an_idle_connection_stays_open_and_idle_ones_hold_no_thread(tmp_path):
    env = base_env(f"sqlite:///{tmp_path / 'tally.db'}", tmp_path)
    with gunicorn_server(env, workers=WORKERS) as server:
        # More idle kept-alive connections than the workers have threads.
        pool = [http.client.HTTPConnection("127.0.0.1", server.port, timeout=15)
                for _ in range(2 * WORKERS * THREADS)]
        for conn in pool:
            conn.request("GET", "/v1/billing/config")
            assert conn.getresponse().read() and conn.sock is not None
        with urllib.request.urlopen(server.url + "/v1/billing/config", timeout=15) as answer:
            assert answer.status == 200  # the idle connections hold no thread
        time.sleep(IDLE)
        sockets = []
        for conn in pool:
            sockets.append(conn.sock)
            conn.request("GET", "/v1/billing/config")
            assert conn.getresponse().status == 200
        # Each second call went over the connection of the first: none was reopened.
        assert all(conn.sock is sock for conn, sock in zip(pool, sockets, strict=True))
        for conn in pool:
            conn.close()
