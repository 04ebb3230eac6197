"""The staff blueprint and the one check every staff page makes."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import (
    Blueprint,
    abort,
)
from flask_login import login_required

from views.session import (
    true_user,
)

bp = Blueprint("staff", __name__, url_prefix="/staff")

REASON_HINT = "Why? It goes into the audit log."


def staff_page(view: Callable[..., Any]) -> Callable[..., Any]:
    """Staff role required (the true user, so it works while viewing as a customer); 404 otherwise."""

    @wraps(view)
    @login_required
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        user = true_user()
        if user is None or not user.is_staff:
            abort(404)
        return view(*args, **kwargs)

    return wrapper
