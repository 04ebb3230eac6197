"""What a member of a customer works on, and what their role lets them do there.

`customer_page(permission)` is the pages' half of the one role check
(services/identity/members.authorize; views/api/declare.py is the API's half): every
customer page declares the permission it needs.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Flask, abort, g, redirect, request, url_for
from flask_login import current_user, login_required

from models import Account
from models.audit import VIA_MEMBER
from services import uow
from services.errors import NotFound
from services.identity import accounts, members
from services.staff.audit import Actor
from views.session import actor, current_impersonation


def customer_page(permission: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Login required, the user must be a member of a customer with an account, and their
    role must hold `permission` (services/identity/members.py: the one table and the one
    check). Every customer page declares the permission it needs."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        @login_required
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if current_user.is_staff:
                if request.endpoint == "pages.dashboard":  # staff land on their console
                    return redirect(url_for("staff.index"))
                abort(404)
            enter_customer()
            members.authorize(g.member_role, permission,
                              email_verified=current_user.email_verified)
            return view(*args, **kwargs)

        wrapper.permission = permission  # type: ignore[attr-defined]
        return wrapper

    return decorate


def current_customer_id() -> str | None:
    """The customer the pages work on: the one a staff member views as, else the person's
    current customer (the header's switcher)."""
    running = current_impersonation()
    if running is not None:
        return running.customer_id
    return current_user.customer_id if current_user.is_authenticated else None


def enter_customer() -> None:
    """Set `g.account` and `g.member_role` for the current customer (404 when the person is
    a member of none)."""
    user = current_user._get_current_object()
    customer_id = current_customer_id()
    role = members.role_of(user, customer_id)
    if role is None and current_impersonation() is None:
        joined = members.customers_of(user)  # removed from the current one: the next one
        if joined:
            customer_id = members.switch_customer(user, joined[0][0].id).id
            role = joined[0][1]
            uow.commit()  # on its own: the page may call Stripe next (services/uow.py)
    if role is None or customer_id is None:
        raise NotFound("You are not a member of any account.", code="no_account")
    g.account = accounts.customer_account(customer_id)
    g.member_role = role


def current_account() -> Account:
    return g.account


def member_actor() -> Actor:
    """Who acts on a customer's page, for the audit log: the staff member while viewing as
    the customer; otherwise the member (the services name them in the row's `meta.by`)."""
    if current_impersonation() is not None:
        return actor()
    return Actor(staff=None, via=VIA_MEMBER, ip=request.remote_addr,
                 user_agent=request.user_agent.string or None)


def _member_context() -> dict[str, Any]:
    """For base.html: what the member's role allows (the nav shows only that), and the
    customers they may switch between."""
    user = current_user._get_current_object()
    if user is None or not user.is_authenticated or user.is_staff:
        return {"can": lambda permission: False, "switchable": []}
    role = g.get("member_role") or members.role_of(user, current_customer_id())
    switchable = members.customers_of(user) if current_impersonation() is None else []
    return {"can": lambda permission: members.allows(role, permission), "member_role": role,
            "switchable": switchable if len(switchable) > 1 else [],
            "current_customer_id": current_customer_id()}


def init_app(app: Flask) -> None:
    app.context_processor(_member_context)
