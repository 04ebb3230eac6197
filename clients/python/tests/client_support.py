"""A TCP proxy in front of a real Tally that hurts the traffic the way networks do.

Nothing here answers for Tally: requests go to the real server, and the proxy only loses
answers (the request was served, the answer never arrives), holds them back past the
client's timeout, refuses connections, or answers 503 as a load balancer in front of a
busy Tally does. It counts connections, so keep-alive is visible.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import httpx2 as httpx

API_CALLS = 5  # the free plan's monthly apiCalls in these tests (conftest's plans file)


def used(base_url: str, api_key: str, meter: str = "apiCalls") -> int:
    """What Tally counted this month on a meter, read from the API as a customer would."""
    answer = httpx.get(base_url + "/v1/billing/usage", headers={"X-Api-Key": api_key})
    assert answer.status_code == 200, answer.text
    return int(answer.json()["usage"][meter])


def recording_client() -> tuple[httpx.Client, list[httpx.Request]]:
    """An httpx client for `Tally(http_client=...)` that keeps every request it sends."""
    sent: list[httpx.Request] = []
    return httpx.Client(event_hooks={"request": [sent.append]}), sent


def request_ids(sent: list[httpx.Request]) -> list[str]:
    """The `id` of each authorize request an event hook saw."""
    return [json.loads(request.content)["id"] for request in sent]


class FaultProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self.connections = 0  # accepted so far
        self.lose_answers = 0  # the next N answers from Tally never reach the client
        self.hold_answers = 0  # the next N answers are held until the client gives up
        self.refuse = False  # close every new connection at once, forwarding nothing
        self.canned: list[bytes] = []  # raw answers sent instead of forwarding, one per request
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            if self.refuse:
                return
            with self.lock:
                canned = self.canned.pop(0) if self.canned else None
            if canned is not None:
                _read_request(client)
                client.sendall(canned)
                return
            with socket.create_connection(("127.0.0.1", self.upstream_port)) as upstream:
                threading.Thread(target=_pipe, args=(client, upstream), daemon=True).start()
                self._answers(upstream, client)

    def _answers(self, upstream: socket.socket, client: socket.socket) -> None:
        while chunk := _recv(upstream):
            with self.lock:
                lose, self.lose_answers = self.lose_answers > 0, max(0, self.lose_answers - 1)
                hold = not lose and self.hold_answers > 0
                self.hold_answers -= hold
            if lose:  # the request was served; its answer is lost with the connection
                _hang_up(client)
                return
            if hold:
                while _recv(client):  # until the client, timed out, hangs up
                    pass
                return
            client.sendall(chunk)


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _hang_up(sock: socket.socket) -> None:
    """Close the connection now (close() alone waits for the other thread's recv)."""
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _pipe(source: socket.socket, target: socket.socket) -> None:
    while chunk := _recv(source):
        with suppress(OSError):
            target.sendall(chunk)
    with suppress(OSError):
        target.shutdown(socket.SHUT_WR)


def _read_request(sock: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data and (chunk := _recv(sock)):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length and (chunk := _recv(sock)):
        body += chunk


def unavailable(retry_after: int) -> bytes:
    """A load balancer's 503 with Retry-After."""
    body = b'{"error": "Service unavailable", "code": "overloaded", "message": "Try again later."}'
    return (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            b"Retry-After: %d\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (retry_after, len(body), body))


@contextmanager
def fault_proxy(upstream_port: int) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream_port)
    try:
        yield proxy
    finally:
        proxy.close()
