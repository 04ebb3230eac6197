"""Helpers shared by the extension's resources: Stripe-shaped errors, parameter parsing,
events, and the small HTML pages.

Parameters arrive as localstripe's request wrapper decodes them: JSON values, or strings
from form encoding (the ``stripe`` library sends ``unit_amount=4900``, ``enabled=true``,
``items[0][price]=price_...``), so every number and boolean is converted here.
"""

from __future__ import annotations

import copy
import html
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, NoReturn

from aiohttp import web
from localstripe import resources
from localstripe.errors import UserError
from localstripe.resources import Event, List, Product, StripeObject, store

_settings = {"public_url": "http://127.0.0.1:8420"}


def set_public_url(url: str) -> None:
    """The origin browsers reach this server at; hosted page URLs are built from it."""
    _settings["public_url"] = url.rstrip("/")


def public_url(path: str) -> str:
    return _settings["public_url"] + path


def now() -> int:
    return int(time.time())


# --- Stripe-shaped errors -----------------------------------------------------------------


def fail(message: str, param: str | None = None, code: str | None = None, status: int = 400) -> NoReturn:
    contents: dict[str, Any] = {}
    if param is not None:
        contents["param"] = param
    if code is not None:
        contents["code"] = code
    raise UserError(status, message, contents)


def unknown(extra: dict[str, Any], prefix: str = "") -> None:
    """Stripe answers 400 ``parameter_unknown`` for a parameter it does not know."""
    if extra:
        name = sorted(extra)[0]
        param = f"{prefix}[{name}]" if prefix else name
        fail(f"Received unknown parameter: {param}", param, "parameter_unknown")


def missing(param: str) -> NoReturn:
    fail(f"Missing required param: {param}.", param, "parameter_missing")


def no_such(kind: str, id: object, param: str = "id") -> NoReturn:
    fail(f"No such {kind}: '{id}'", param, "resource_missing", status=404)


def unsupported(what: str, param: str | None = None) -> NoReturn:
    fail(f"localstripe-ext does not support {what}.", param)


def retrieve(cls: type[StripeObject], id: object, kind: str, param: str = "id") -> Any:
    obj = store.get(f"{cls.object}:{id}") if isinstance(id, str) else None
    if obj is None:
        no_such(kind, id, param)
    return obj


# --- Parameters ---------------------------------------------------------------------------


def as_int(value: object, param: str, minimum: int | None = None) -> int:
    if isinstance(value, bool):
        fail(f"Invalid integer: {value}", param, "parameter_invalid_integer")
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            fail(f"Invalid integer: {value}", param, "parameter_invalid_integer")
    if not isinstance(value, int):
        fail(f"Invalid integer: {value}", param, "parameter_invalid_integer")
    if minimum is not None and value < minimum:
        fail(f"Invalid {param}: must be at least {minimum}", param)
    return value


def as_bool(value: object, param: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    fail(f"Invalid boolean: {value}", param)


def opt_bool(value: object, param: str) -> bool | None:
    """A boolean, or None when absent."""
    return None if value is None else as_bool(value, param)


def as_str(value: object, param: str) -> str:
    if not isinstance(value, str):
        fail(f"Invalid string: {value!r}", param)
    return value


def opt_str(value: object, param: str) -> str | None:
    """A string, or None when absent or sent empty (Stripe's way to unset a field)."""
    if value is None or value == "":
        return None
    return as_str(value, param)


def as_dict(value: object, param: str) -> dict[str, Any]:
    if value == "":
        return {}
    if not isinstance(value, dict):
        fail(f"Invalid object: {param}", param)
    return value


def as_list(value: object, param: str) -> list[Any]:
    """Lists arrive as lists; ``''`` is Stripe's empty list."""
    if value == "":
        return []
    if isinstance(value, str):
        return [value]  # key[]=value with a single value
    if not isinstance(value, list):
        fail(f"Invalid array: {param}", param)
    return value


def enum(value: object, param: str, allowed: Iterable[str]) -> str:
    allowed = tuple(allowed)
    if value not in allowed:
        fail(f"Invalid {param}: must be one of {', '.join(allowed)}", param)
    return str(value)


def enum_list(value: object, param: str, allowed: Iterable[str]) -> list[str]:
    return [enum(v, f"{param}[{i}]", allowed) for i, v in enumerate(as_list(value, param))]


def metadata(value: object, param: str = "metadata") -> dict[str, str]:
    """New metadata: a flat string map (empty values dropped)."""
    return merge_metadata({}, value, param)


def merge_metadata(current: dict[str, str], update: object, param: str = "metadata") -> dict[str, str]:
    """Stripe's update rule: keys are set one by one, ``''`` unsets a key or, as the whole
    value, every key."""
    if update is None:
        return dict(current)
    if update == "":
        return {}
    result = dict(current)
    for key, value in as_dict(update, param).items():
        if value == "" or value is None:
            result.pop(key, None)
        elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
            result[str(key)] = str(value)
        else:
            fail(f"Invalid metadata value for {key!r}", f"{param}[{key}]")
    return result


# --- Objects and events -------------------------------------------------------------------


class DeepExport:
    """Mixin for the extension's resources: ``_export`` returns a deep copy, so an event's
    snapshot never changes when the object is updated later (localstripe copies dicts only
    one level deep). List it before ``StripeObject``: localstripe resolves ids to classes
    (for ``expand``) among StripeObject's *direct* subclasses only."""

    def _export(self, expand: list[str] | None = None) -> dict[str, Any]:
        return copy.deepcopy(super()._export(expand=expand))  # type: ignore[misc]


def changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Stripe's ``previous_attributes``: the old value of every top-level field that changed."""
    return {key: before.get(key) for key, value in after.items() if before.get(key) != value}


def emit(type: str, obj: Any, previous: dict[str, Any] | None = None) -> Event:
    """Record an event and deliver it to the webhooks, as localstripe does for its own."""
    event = Event(type, obj)
    if previous is not None:
        event.data["previous_attributes"] = previous
    resources.schedule_webhook(event)  # Looked up now: the patched version (invoice.paid).
    return event


def emit_updated(type: str, obj: Any, before: dict[str, Any]) -> None:
    """``<object>.updated`` with ``previous_attributes``, if anything changed."""
    previous = changes(before, obj._export())
    previous.pop("updated", None)
    if previous:
        emit(type, obj, previous)


def newest_first(cls: type[StripeObject]) -> list[Any]:
    """Every stored object of a class, newest first as Stripe lists them."""
    prefix = cls.object + ":"
    return [obj for key, obj in reversed(store.items()) if key.startswith(prefix)]


def where(objects: list[Any], field: str, value: object) -> list[Any]:
    """The objects whose ``field`` equals ``value``: a list filter; None filters nothing."""
    if value is None:
        return objects
    return [obj for obj in objects if getattr(obj, field) == value]


def page_of(url: str, objects: list[Any], limit: Any, starting_after: Any) -> List:
    """A Stripe list of ``objects``; localstripe's ``List`` checks and applies
    ``limit`` and ``starting_after``."""
    result = List(url, limit=limit, starting_after=starting_after)
    result._list = objects
    return result


# --- Hosted pages ------------------------------------------------------------------------

esc = html.escape

_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "cad": "CA$", "aud": "A$"}
_ZERO_DECIMAL = {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx",
                 "vnd", "vuv", "xaf", "xof", "xpf"}


def money(amount: int, currency: str) -> str:
    currency = currency.lower()
    value = f"{amount:,}" if currency in _ZERO_DECIMAL else f"{amount / 100:,.2f}"
    symbol = _SYMBOLS.get(currency)
    return f"{symbol}{value}" if symbol else f"{value} {currency.upper()}"


def interval_text(interval: str, count: int) -> str:
    return f"/ {interval}" if count == 1 else f"every {count} {interval}s"


def price_text(amount: int, currency: str, recurring: dict[str, Any] | None) -> str:
    """``$49.00 / month``, or ``$5.00`` for a one-time price; ``recurring`` is a Price's."""
    if recurring is None:
        return money(amount, currency)
    return f"{money(amount, currency)} {interval_text(recurring['interval'], recurring['interval_count'])}"


def product_name(product: str) -> str:
    return Product._api_retrieve(product).name


def day(timestamp: int | None) -> str:
    if not timestamp:
        return ""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%B %-d, %Y")


_STYLE = """
body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f6f8fa;color:#1a1f36}
main{max-width:34rem;margin:2rem auto;background:#fff;padding:1.5rem 2rem;border-radius:8px;
box-shadow:0 1px 3px rgba(0,0,0,.15)}
h1{font-size:1.3rem;margin:.2rem 0 1rem}h2{font-size:1.05rem;margin:1.5rem 0 .5rem}
.test{display:inline-block;background:#ffde92;color:#7a4b00;font-size:.75rem;padding:0 .4rem;
border-radius:4px;font-weight:600}
label{display:block;margin:.7rem 0 .2rem;font-weight:600;font-size:.9rem}
input{width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem;border:1px solid #c6ccd6;
border-radius:4px}.row{display:flex;gap:1rem}.row>div{flex:1}
button{margin-top:1.2rem;width:100%;padding:.7rem;font-size:1rem;border:0;border-radius:4px;
background:#635bff;color:#fff;cursor:pointer}button.secondary{background:#fff;color:#c0123c;
border:1px solid #c0123c}
.error{background:#fde8ec;color:#a0102e;padding:.6rem .8rem;border-radius:4px;margin:1rem 0}
.muted{color:#6a7383;font-size:.9rem}table{width:100%;border-collapse:collapse}
td,th{text-align:left;padding:.3rem 0;border-bottom:1px solid #e3e8ee;font-size:.9rem}
.card{border:1px solid #e3e8ee;border-radius:6px;padding:.8rem 1rem;margin:.6rem 0}
a{color:#635bff}
"""


def page(title: str, body: str, status: int = 200) -> web.Response:
    """A self-contained HTML page: inline style, no scripts, no external resources."""
    text = (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main><span class=\"test\">TEST MODE</span>{body}</main></body></html>\n"
    )
    return web.Response(
        text=text,
        status=status,
        content_type="text/html",
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


def message_page(title: str, text: str, status: int = 200, heading: str | None = None,
                 testid: str | None = None) -> web.Response:
    """A page that only says something: a heading (the title unless given) and one line."""
    attribute = f' data-testid="{esc(testid)}"' if testid else ""
    return page(title, f"<h1>{esc(heading or title)}</h1><p{attribute}>{esc(text)}</p>", status)


def error_box(message: str | None) -> str:
    if not message:
        return ""
    return f'<div class="error" role="alert" data-testid="error">{esc(message)}</div>'


def user_error_message(error: UserError) -> str:
    return str(error.body.get("error", {}).get("message") or "Something went wrong.")
