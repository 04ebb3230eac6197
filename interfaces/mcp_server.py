"""Tally's operations as MCP tools for AI agents (the official `mcp` package).

`flask --app app mcp` serves them over stdio; `--transport streamable-http --port N` over
HTTP at `/mcp`. The server acts with one Tally API key (`TALLY_API_KEY`, or the file named
by `TALLY_API_KEY_FILE`), and every tool is one call of the JSON API made in-process
through Flask's test client: the same validation, key scopes, rate limit,
`Idempotency-Key` and error answers as over HTTP, and no second copy of any rule. The tools
are declared in interfaces/mcp_tools.py.

Annotations follow the MCP definitions, all four on every tool: `readOnlyHint` for a GET;
`destructiveHint` only where something existing stops working or is overwritten;
`idempotentHint` is true for every tool, because each mutating tool requires an
`idempotency_key` that is sent as the `Idempotency-Key` header, so calling it again with
the same arguments within 24 hours returns the first answer and changes nothing;
`openWorldHint` where the API route calls Stripe (its declaration says so).

The server's own key: rotating it with `rotate-api-key` switches the server to the new key
at once and, with `TALLY_API_KEY_FILE`, writes it to that file before answering, so the
next start uses it too. Without a file the answer says to put the new key in the MCP
client's configuration. When the key stops working (rotated or revoked elsewhere), the
server re-reads the file and retries once; otherwise each tool's error says what to do.
"""

from __future__ import annotations

import contextvars
import json
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flask import Flask
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools.base import Tool
from mcp.server.mcpserver.utilities.func_metadata import FuncMetadata, func_metadata
from mcp_types import ToolAnnotations

from interfaces.mcp_tools import TOOLS, ToolSpec
from services.identity import keys
from views.api.declare import Operation, declared_operation

STRANDED = ("The API key this MCP server runs with no longer works (rotated or revoked). Put a "
            "current key (the one rotation returned, or a new one from the API keys page) in "
            "TALLY_API_KEY_FILE, which the server re-reads, or in TALLY_API_KEY of the MCP client's "
            "configuration and restart the server.")
SAVE_NOTE = ("This server now acts with the new key. It is shown only here: put it in TALLY_API_KEY "
             "of your MCP client's configuration now, or the server cannot start with the old one "
             "(or set TALLY_API_KEY_FILE, and the server keeps it there itself).")


class TallyApi:
    """Calls the JSON API in-process with the server's key, as a client over HTTP would."""

    def __init__(self, app: Flask, api_key: str, key_file: str = "") -> None:
        self.app = app
        self.api_key = api_key
        self.key_file = Path(key_file) if key_file else None
        self._lock = threading.Lock()  # the key changes when the server rotates its own

    def call(self, method: str, path: str, *, body: dict[str, Any] | None = None,
             query: dict[str, Any] | None = None, idempotency_key: str | None = None) -> dict[str, Any]:
        status, data = self._send(method, path, body, query, idempotency_key)
        if status == 401 and self._reread_key_file():
            status, data = self._send(method, path, body, query, idempotency_key)
        if status >= 400:
            error = {"status": status, **(data or {})}
            if status == 401:
                error["hint"] = STRANDED
            raise ToolError(json.dumps(error))
        return data

    def _send(self, method: str, path: str, body: dict[str, Any] | None,
              query: dict[str, Any] | None, idempotency_key: str | None) -> tuple[int, Any]:
        with self._lock:
            headers = {"X-Api-Key": self.api_key}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        params = {k: v for k, v in (query or {}).items() if v is not None}
        # A fresh context: each call gets its own request and app context (and so its own
        # database session), whatever context the caller or its thread carries.
        response = contextvars.Context().run(
            self.app.test_client().open, path, method=method, json=body, query_string=params,
            headers=headers, environ_base={"REMOTE_ADDR": "127.0.0.1"})
        return response.status_code, response.get_json(silent=True)

    def use_key(self, api_key: str) -> str:
        """Act with `api_key` from now on; keep it in the key file when there is one. Returns
        what the user must know about it."""
        with self._lock:
            self.api_key = api_key
            if self.key_file is None:
                return SAVE_NOTE
            _write_secret(self.key_file, api_key)
        return f"This server now acts with the new key and saved it to {self.key_file}."

    def _reread_key_file(self) -> bool:
        """Take the key file's key if it changed (someone put a new key there)."""
        if self.key_file is None:
            return False
        fresh = read_key_file(self.key_file)
        with self._lock:
            if not fresh or fresh == self.api_key:
                return False
            self.api_key = fresh
        return True

    def key_kind(self) -> str | None:
        """The kind of the server's key (None: it does not work)."""
        with self._lock:
            api_key = self.api_key
        with self.app.app_context():
            return keys.kind_of(api_key)


def read_key_file(path: Path) -> str:
    return path.read_text().strip() if path.exists() else ""


def _write_secret(path: Path, secret: str) -> None:
    """Replace the file at once (never half-written), readable by its owner only."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(secret + "\n")
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# Tools from the table ------------------------------------------------------------------------


def _route(app: Flask, method: str, path: str) -> Operation:
    """The API's declaration of the route this path template reaches."""
    filled = path.replace("{", "x").replace("}", "")
    endpoint, _ = app.url_map.bind("localhost").match(filled, method=method)
    declared = declared_operation(app.view_functions[endpoint])
    if declared is None:
        raise LookupError(f"{method} {path} has no @operation declaration")
    return declared


def _routes(app: Flask, spec: ToolSpec) -> list[Operation]:
    paths = [spec.path] + ([spec.fallback_path] if spec.fallback_path else [])
    return [_route(app, spec.method, p) for p in paths]


def hints(app: Flask, spec: ToolSpec) -> ToolAnnotations:
    reads = spec.method == "GET"
    return ToolAnnotations(read_only_hint=reads, destructive_hint=spec.destructive and not reads,
                           idempotent_hint=True,
                           open_world_hint=any(r.stripe for r in _routes(app, spec)))


def may_call(app: Flask, spec: ToolSpec, kind: str | None) -> bool:
    """Whether a key of this kind may call the tool (unknown kind: list every tool, so each
    call can say the key no longer works)."""
    return kind is None or any(not r.keys or kind in r.keys for r in _routes(app, spec))


def request_of(spec: ToolSpec, arguments: dict[str, Any]) -> dict[str, Any]:
    """The API call a tool's arguments make: path, then query (GET) or body (POST)."""
    given = {k: v for k, v in arguments.items() if v is not None}
    idempotency_key = given.pop("idempotency_key", None)
    names = [part.split("}")[0] for part in spec.path.split("{")[1:]]
    if spec.fallback_path and not all(n in given for n in names):
        path = spec.fallback_path
    else:
        path = spec.path.format(**{n: quote(str(given.pop(n)), safe="") for n in names})
    where = "query" if spec.method == "GET" else "body"
    return {"path": path, where: given, "idempotency_key": idempotency_key}


def _runner(api: TallyApi, spec: ToolSpec) -> Callable[..., dict[str, Any]]:
    def run(**arguments: Any) -> dict[str, Any]:
        answer = api.call(spec.method, **request_of(spec, arguments))
        # Its own key rotated (a replay answers the key as null: nothing to switch to).
        if spec.switches_key and arguments.get("key_id") is None and answer.get("api_key"):
            answer = {**answer, "server_key": api.use_key(answer["api_key"])}
        return answer

    return run


def _output_shape() -> dict[str, Any]:
    return {}


_OUTPUT = func_metadata(_output_shape)


def tool_of(app: Flask, api: TallyApi, spec: ToolSpec) -> Tool:
    return Tool(fn=_runner(api, spec), name=spec.name, description=spec.description,
                parameters=spec.args.model_json_schema(by_alias=True),
                fn_metadata=FuncMetadata(arg_model=spec.args, output_model=_OUTPUT.output_model,
                                         wrap_output=_OUTPUT.wrap_output),
                is_async=False, annotations=hints(app, spec))


def build_server(api: TallyApi) -> MCPServer:
    kind = api.key_kind()
    tools = [tool_of(api.app, api, spec) for spec in TOOLS if may_call(api.app, spec, kind)]
    return MCPServer(
        "tally", tools=tools,
        instructions="Tally: prepaid credit, usage and invoices of one account (or, with a staff "
                     "key, customers, credits and Stripe's Customer Portal). Amounts are integers "
                     "in minor units (2500 = 25.00). Every mutating tool takes an idempotency_key: "
                     "reuse it when you retry.")


def run(app: Flask, api_key: str, *, key_file: str = "", transport: str = "stdio",
        host: str = "127.0.0.1", port: int = 8765) -> None:
    server = build_server(TallyApi(app, api_key, key_file))
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=host, port=port)
