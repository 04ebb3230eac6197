"""The API keys page: list (prefix, created, last used) and rotate (new key shown once)."""

from __future__ import annotations

from flask import Blueprint, request
from flask_login import current_user

from models.keys import KIND_ACCOUNT, KIND_USAGE
from services.errors import InvalidInput
from services.identity import keys, members
from views.htmx import render_page
from views.membership import current_account, customer_page
from views.session import audit_as

bp = Blueprint("keys", __name__)


@bp.get("/keys")
@customer_page(members.READ)
def index():
    return _panel()


def _panel(new_key=None, status: int = 200, error: str | None = None):
    account = current_account()
    return render_page("keys.html", blocks=("keys_panel",), account=account,
                       keys=keys.list_keys(account.id), new_key=new_key, error=error,
                       status=status)


@bp.post("/keys")
@customer_page(members.KEYS)
@audit_as("key.create")
def create():
    """A new usage key (for product servers) or account key; shown once."""
    kind = request.form.get("kind", KIND_USAGE)
    try:
        if kind not in (KIND_ACCOUNT, KIND_USAGE):
            raise InvalidInput("Choose a usage key or an account key.", param="kind")
        issued = keys.issue_key(account=current_account(), kind=kind,
                                name=keys.clean_name(request.form.get("name"), kind),
                                created_by=current_user._get_current_object(), notify=True)
    except InvalidInput as exc:
        return _panel(status=400, error=exc.message)
    return _panel(new_key=issued)


@bp.post("/keys/<key_id>/revoke")
@customer_page(members.KEYS)
@audit_as("key.revoke")
def revoke(key_id: str):
    keys.revoke(keys.get_account_key(current_account().id, key_id))
    return _panel()


@bp.post("/keys/<key_id>/rotate")
@customer_page(members.KEYS)
@audit_as("key.rotate")
def rotate(key_id: str):
    issued = keys.rotate(keys.get_account_key(current_account().id, key_id))
    return _panel(new_key=issued)
