"""The API keys page: list (prefix, created, last used) and rotate (new key shown once)."""

from __future__ import annotations

from flask import Blueprint

from services import keys
from views.htmx import render_page
from views.session import current_account, customer_page

bp = Blueprint("keys", __name__)


@bp.get("/keys")
@customer_page
def index():
    account = current_account()
    return render_page("keys.html", blocks=("keys_panel",), account=account,
                       keys=keys.list_keys(account.id), new_key=None)


@bp.post("/keys/<key_id>/rotate")
@customer_page
def rotate(key_id: str):
    account = current_account()
    issued = keys.rotate(keys.get_account_key(account.id, key_id))
    return render_page("keys.html", blocks=("keys_panel",), account=account,
                       keys=keys.list_keys(account.id), new_key=issued)
