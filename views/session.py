"""What a logged-in page works on: the current user's account."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import abort, g
from flask_login import current_user, login_required

from models import Account
from services import accounts


def customer_page(view: Callable[..., Any]) -> Callable[..., Any]:
    """Login required, and the user must be a customer user with an account."""

    @wraps(view)
    @login_required
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_user.is_staff:
            abort(404)
        g.account = accounts.primary_account(current_user)
        return view(*args, **kwargs)

    return wrapper


def current_account() -> Account:
    return g.account
