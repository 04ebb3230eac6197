"""Browser fixtures for the end-to-end tests: Debian's Chromium, driven by Playwright,
against the app on a live HTTP server (``live_server``), paying through localstripe's
extended Stripe.js. Helpers the tests share are in ``tests/e2e/helpers.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.helpers import DESKTOP, TIMEOUT_MS, chromium


@pytest.fixture(scope="module")
def playwright_browser() -> Iterator[Any]:
    """One Chromium per test module; each test gets fresh contexts (cookies, storage).

    Not session-wide: Playwright's sync API cannot run twice at once in one thread, and
    tests/test_localstripe_ext.py starts its own (module-scoped) Playwright.
    """
    with chromium() as browser:
        from playwright.sync_api import expect

        expect.set_options(timeout=TIMEOUT_MS)
        yield browser


@pytest.fixture
def new_page(playwright_browser: Any, live_server: Any) -> Iterator[Callable[..., Any]]:
    """``new_page(viewport=...)``: a page in a fresh browser context based at the live server.

    Console errors and uncaught exceptions (a CSP violation is a console error) are
    collected, and the test fails at teardown if there were any.
    """
    opened: list[tuple[Any, list[str]]] = []

    def make(viewport: dict[str, int] | None = None) -> Any:
        context = playwright_browser.new_context(base_url=live_server.url,
                                                 viewport=viewport or DESKTOP)
        context.set_default_timeout(TIMEOUT_MS)
        problems: list[str] = []
        context.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}")
                   if _is_problem(msg) else None)
        context.on("weberror", lambda err: problems.append(f"uncaught: {err.error}"))
        opened.append((context, problems))
        return context.new_page()

    yield make
    all_problems = [p for _, problems in opened for p in problems]
    for context, _ in opened:
        context.close()
    assert all_problems == [], "the browser reported errors:\n" + "\n".join(all_problems)


def _is_problem(message: Any) -> bool:
    """A console error such as a CSP violation or a script error. Not Chromium's notes on
    HTTP error statuses ("Failed to load resource: ... 402"): a declined card or a refused
    amount answers 4xx by design, and the tests check what the page shows instead."""
    return message.type == "error" and not message.text.startswith("Failed to load resource")


@pytest.fixture
def page(new_page: Callable[..., Any]) -> Any:
    """A desktop-sized page (1280x800) at the live server, logged out."""
    return new_page()
