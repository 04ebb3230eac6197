"""The Account page's wallets (ChainSecured wallet auth): link one with a signed BillingAuth
message, unlink one. The same service as /v1/wallets."""

from __future__ import annotations

import json

from flask import Blueprint, current_app, flash, redirect, request, url_for

from services import uow
from services.errors import InvalidInput, TallyError
from services.identity import members, wallets
from views.account import render_account
from views.membership import current_account, customer_page
from views.session import audit_as

bp = Blueprint("wallets", __name__)


def _proof(text: str) -> tuple[object, object]:
    """`typed_data` and `signature` from what was pasted: their JSON, or an X-Wallet-Auth value."""
    text = text.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise InvalidInput('Paste the JSON {"typed_data": ..., "signature": "0x..."}.',
                               param="proof")
        return data.get("typed_data"), data.get("signature")
    try:
        return wallets.decode_header(text)
    except wallets.WalletProofError as exc:
        raise InvalidInput(exc.message, code=exc.code, param="proof") from None


@bp.post("/account/wallets")
@customer_page(members.OWNERSHIP)  # a linked wallet acts as the owner
@audit_as("wallet.link")
def link():
    try:
        row = wallets.link(current_account(), *_proof(request.form.get("proof", "")),
                           domain_name=current_app.config["WALLET_AUTH_DOMAIN"])
    except TallyError as exc:
        uow.rollback()  # a refusal changes nothing
        return render_account(exc.status, wallet_error=exc.message)
    flash(f"Wallet {row.address} linked: its signatures now act as an account key.")
    return redirect(url_for("auth.account"), code=303)


@bp.post("/account/wallets/<address>/unlink")
@customer_page(members.OWNERSHIP)
@audit_as("wallet.unlink")
def unlink(address: str):
    row = wallets.unlink(current_account(), address)
    flash(f"Wallet {row.address} unlinked.")
    return redirect(url_for("auth.account"), code=303)
