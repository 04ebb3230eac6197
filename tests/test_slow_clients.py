"""A dozen slow clients do not stall `make serve`'s workers.

Twelve connections send their headers a byte at a time and never finish; meanwhile other
requests must be answered, by the same 4 gunicorn workers `make serve` runs (settings from
gunicorn.conf.py). With sync workers the slow clients held every worker until gunicorn
killed it; with threaded workers they hold 12 threads and nothing else waits for them.
"""

from __future__ import annotations

import socket
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from tests.support.servers import base_env, gunicorn_server

SLOW_CLIENTS = 12
WORKERS = 4
# How long a normal request may take before the test gives up on it: far more than an
# answer needs, far less than gunicorn's 30-second timeout that ends a stuck sync worker.
PATIENCE = 15


@contextmanager
def slow_clients(port: int, count: int) -> Iterator[list[socket.socket]]:
    """`count` connections that start a request and then send one header byte every 0.2 s,
    never finishing it, until the block ends."""
    sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
    stop = threading.Event()

    def trickle() -> None:
        for sock in sockets:
            sock.sendall(b"GET /v1/billing/config HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        while not stop.wait(0.2):
            for sock in sockets:
                with suppress(OSError):  # dropped by the server: the test sees it below
                    sock.sendall(b"a")

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        yield sockets
    finally:
        stop.set()
        thread.join(timeout=5)
        for sock in sockets:
            sock.close()


def still_waiting(sock: socket.socket) -> bool:
    """Open, and no answer sent (a dropped connection reads as b"" or an error)."""
    sock.setblocking(False)
    try:
        return not sock.recv(1)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)


def test_twelve_slow_clients_do_not_stall_other_requests(tmp_path):
    env = base_env(f"sqlite:///{tmp_path / 'tally.db'}", tmp_path)
    with gunicorn_server(env, workers=WORKERS) as server, \
            slow_clients(server.port, SLOW_CLIENTS) as slow:
        for _ in range(2 * WORKERS * 2):
            with urllib.request.urlopen(server.url + "/v1/billing/config", timeout=PATIENCE) as answer:
                assert answer.status == 200
        # Answered while every slow client was still connected and still unanswered.
        assert [still_waiting(sock) for sock in slow] == [True] * SLOW_CLIENTS
