"""The Account page's wallets (ChainSecured wallet auth): link one with a signed BillingAuth
message, unlink one. The same service as /v1/wallets."""

from __future__ import annotations

import json

from eth_utils.address import to_checksum_address
from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from services import uow
from services.errors import InvalidInput, TallyError
from services.identity import accounts, wallets
from views.forms import PasswordChangeForm
from views.session import audit_as, current_account, customer_page

bp = Blueprint("wallets", __name__)


def account_wallets() -> list[str] | None:
    """The addresses the Account page lists (None for staff, who have no account)."""
    if current_user.is_staff:
        return None
    return [to_checksum_address(row.address)
            for row in wallets.list_for(accounts.primary_account(current_user).id)]


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
@customer_page
@audit_as("wallet.link")
def link():
    try:
        row = wallets.link(current_account(), *_proof(request.form.get("proof", "")),
                           domain_name=current_app.config["WALLET_AUTH_DOMAIN"])
    except TallyError as exc:
        uow.rollback()  # a refusal changes nothing
        return render_template("auth/account.html", form=PasswordChangeForm(),
                               wallets=account_wallets(), wallet_error=exc.message,
                               wallet_domain=current_app.config["WALLET_AUTH_DOMAIN"]), exc.status
    flash(f"Wallet {row.address} linked: its signatures now act as an account key.")
    return redirect(url_for("auth.account"), code=303)


@bp.post("/account/wallets/<address>/unlink")
@customer_page
@audit_as("wallet.unlink")
def unlink(address: str):
    row = wallets.unlink(current_account(), address)
    flash(f"Wallet {row.address} unlinked.")
    return redirect(url_for("auth.account"), code=303)
