"""The WSGI and ASGI middleware in front of tiny apps, authorizing against a real Tally;
and the README's Flask example, run as written."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from client_support import API_CALLS, used
from tally_client import AsyncTally, Charge, Event, RequestInfo, Tally
from tally_client.middleware import ASGIMiddleware, WSGIMiddleware
from werkzeug.test import Client

from tests.support.localstripe import free_port

README = Path(__file__).resolve().parents[1] / "README.md"


def meter(request: RequestInfo) -> Charge | None:
    """The health check is free; a request may ask for several units (X-Units)."""
    if request.path == "/health":
        return None
    return Charge("api_call", int(request.headers.get("x-units", "1")))


def wsgi_app(environ, start_response):
    decision = environ.get("tally.decision")
    body = json.dumps({"remaining": decision.remaining if decision else None,
                       "decided_by": decision.decided_by if decision else None}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


@pytest.fixture
def gated() -> Iterator[Callable[..., Client]]:
    """A test client for `wsgi_app` behind the middleware, with a Tally client at `url`."""
    clients: list[Tally] = []

    def make(url: str, **options: Any) -> Client:
        clients.append(Tally(url, close_timeout=0.2))
        return Client(WSGIMiddleware(wsgi_app, clients[-1], meter=meter, **options))

    yield make
    for tally in clients:
        tally.close()


def test_wsgi_serves_allowed_requests_with_the_decision(live_server, customer, gated):
    client = gated(live_server.url)
    bearer = client.get("/", headers={"Authorization": f"Bearer {customer.api_key}"})
    assert bearer.status_code == 200 and bearer.json == {"remaining": API_CALLS - 1,
                                                         "decided_by": "tally"}
    two = client.get("/", headers={"X-Api-Key": customer.api_key, "X-Units": "2"})
    assert two.json["remaining"] == API_CALLS - 3
    assert client.get("/health").status_code == 200  # unmetered: no key needed, nothing counted
    assert used(live_server.url, customer.api_key) == 3


def test_wsgi_answers_refusals_with_tallys_bodies(live_server, customer, gated):
    client = gated(live_server.url)
    for headers in ({}, {"Authorization": f"Basic {customer.api_key}"}):
        missing = client.get("/", headers=headers)
        assert missing.status_code == 401 and missing.json["code"] == "missing_api_key"
        assert missing.json["message"] == ("Send your API key in Authorization: Bearer <key> "
                                           "or x-api-key.")
    unknown = client.get("/", headers={"X-Api-Key": "tly_" + "x" * 40})
    assert unknown.status_code == 401 and unknown.json["code"] == "invalid_api_key"
    key = {"X-Api-Key": customer.api_key}
    assert client.get("/", headers={**key, "X-Units": str(API_CALLS)}).status_code == 200
    over = client.get("/", headers=key)
    assert over.status_code == 402 and over.headers["Content-Type"] == "application/json"
    assert over.json == {"error": "Usage limit exceeded", "code": "usage_limit_exceeded",
                         "message": "API call limit reached for current period",
                         "usage": {"current": API_CALLS, "limit": API_CALLS},
                         "upgrade_url": over.json["upgrade_url"]}
    assert over.json["upgrade_url"].endswith("/plans")


def test_wsgi_passes_on_429_with_retry_after(app, live_server, customer, gated):
    app.extensions["tally_plans"]["free"].limits["requestsPerMinute"] = 1
    client = gated(live_server.url)
    key = {"X-Api-Key": customer.api_key}
    assert client.get("/", headers=key).status_code == 200
    limited = client.get("/", headers=key)
    assert limited.status_code == 429 and limited.json["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) > 0
    assert limited.headers["X-RateLimit-Limit"] == "1"


def test_wsgi_policy_when_tally_is_away(customer, gated):
    away = f"http://127.0.0.1:{free_port()}"
    key = {"X-Api-Key": customer.api_key}
    closed = gated(away, on_unreachable="closed").get("/", headers=key)
    assert closed.status_code == 503 and closed.json["code"] == "tally_unavailable"
    served = gated(away).get("/", headers=key)  # the client's default: open
    assert served.status_code == 200 and served.json["decided_by"] == "fail_open"


def test_wsgi_reads_the_key_from_the_headers_it_is_given(live_server, customer, gated):
    client = gated(live_server.url, key_headers=["X-Customer-Key"])
    assert client.get("/", headers={"X-Customer-Key": customer.api_key}).status_code == 200
    assert client.get("/", headers={"X-Api-Key": customer.api_key}).status_code == 401


# ASGI ---------------------------------------------------------------------------------


async def asgi_app(scope, receive, send):
    decision = scope.get("state", {}).get("tally_decision")
    body = json.dumps({"remaining": decision.remaining if decision else None}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


async def call_asgi(app, path: str = "/", headers: dict[str, str] | None = None
                    ) -> tuple[int, dict[str, str], dict]:
    """One HTTP request through an ASGI app, as a server would make it."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80)}
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start, body = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, json.loads(body)


def test_asgi_authorizes_every_request(app, live_server, customer):
    async def scenario() -> None:
        async with AsyncTally(live_server.url) as tally:
            gate = ASGIMiddleware(asgi_app, tally, meter=meter)
            key = {"Authorization": f"Bearer {customer.api_key}"}
            status, _, body = await call_asgi(gate, headers=key)
            assert (status, body) == (200, {"remaining": API_CALLS - 1})
            assert (await call_asgi(gate, "/health"))[0] == 200
            status, _, body = await call_asgi(gate)
            assert (status, body["code"]) == (401, "missing_api_key")
            status, _, body = await call_asgi(gate, headers={**key, "X-Units": str(API_CALLS)})
            assert (status, body["code"]) == (402, "usage_limit_exceeded")
            assert body["usage"] == {"current": 1, "limit": API_CALLS}
            # Events from async code: queued at once, sent by the background thread.
            tally.ingest([Event("llm_completion", {"tokens": 7})], api_key=customer.api_key)
            assert await tally.flush(timeout=30)
            app.extensions["tally_plans"]["free"].limits["requestsPerMinute"] = 1  # a new window
            assert (await call_asgi(gate, headers=key))[0] == 200
            status, headers, body = await call_asgi(gate, headers=key)
            assert (status, body["code"]) == (429, "rate_limited")
            assert int(headers["retry-after"]) > 0
            app.extensions["tally_plans"]["free"].limits["requestsPerMinute"] = 1000

    asyncio.run(scenario())
    assert used(live_server.url, customer.api_key) == 2
    assert used(live_server.url, customer.api_key, "llmTokens") == 7


def test_asgi_policy_when_tally_is_away(customer):
    async def scenario() -> None:
        away = f"http://127.0.0.1:{free_port()}"
        async with AsyncTally(away, on_unreachable="closed", close_timeout=0.2) as tally:
            key = {"X-Api-Key": customer.api_key}
            status, _, body = await call_asgi(ASGIMiddleware(asgi_app, tally), headers=key)
            assert (status, body["code"]) == (503, "tally_unavailable")
            status, _, _ = await call_asgi(ASGIMiddleware(asgi_app, tally, on_unreachable="open"),
                                           headers=key)
            assert status == 200

    asyncio.run(scenario())


def test_asgi_passes_other_traffic_through(customer):
    """Lifespan (and WebSocket) messages are not requests: the app gets them untouched."""
    seen: list[str] = []

    async def app(scope, receive, send):
        seen.append(scope["type"])

    async def scenario() -> None:
        async with AsyncTally(f"http://127.0.0.1:{free_port()}", on_unreachable="closed") as tally:
            await ASGIMiddleware(app, tally)({"type": "lifespan"}, None, None)

    asyncio.run(scenario())
    assert seen == ["lifespan"]


# The README's example ------------------------------------------------------------------


def readme_example() -> str:
    section = README.read_text().split("## Example: a Flask app", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "no Python block under the README's example heading"
    return match.group(1)


def test_the_readme_flask_example_runs(live_server, customer, monkeypatch):
    monkeypatch.setenv("TALLY_URL", live_server.url)
    namespace: dict[str, Any] = {"__name__": "example"}
    exec(compile(readme_example(), str(README), "exec"), namespace)
    client = namespace["app"].test_client()
    key = {"Authorization": f"Bearer {customer.api_key}"}
    answer = client.post("/v1/complete", json={"prompt": "three little words"}, headers=key)
    assert answer.status_code == 200
    assert answer.get_json() == {"text": "THREE LITTLE WORDS", "calls_left": API_CALLS - 1}
    assert client.get("/health").status_code == 200
    assert client.post("/v1/complete", json={"prompt": "x"}).status_code == 401
    namespace["tally"].close()
    assert used(live_server.url, customer.api_key) == 1
    assert used(live_server.url, customer.api_key, "llmTokens") == 3
