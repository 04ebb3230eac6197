"""ChainSecured wallet auth: an EIP-712 `BillingAuth` signature in place of an API key.

A caller sends `X-Wallet-Auth: base64(JSON {"typed_data": ..., "signature": "0x..."})`.
It is accepted when the typed data's domain `name` is Tally's (`TALLY_WALLET_AUTH_DOMAIN`),
its `BillingAuth` message holds `wallet` (an address) and `issuedAt` (unix seconds) within
`WINDOW` of the server's clock, the address recovered from the signature (by eth-account, a
well-kept library: no hand-written crypto here) is `wallet`, and that wallet is linked to
an account. The caller then acts as an account key of that account.

A signed message authorizes at most one state-changing request: its EIP-712 digest is
recorded and committed before the request runs, and the primary key refuses a second use
on every worker. The digest, not the signature's bytes, is the key, so a re-encoded
signature of the same message (ECDSA's `s` and `n - s`) is the same message.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from eth_utils.crypto import keccak
from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite

from extensions import db
from models import Account, WalletLink
from models.base import utcnow
from models.wallets import UsedWalletSignature
from services.errors import Conflict, InvalidInput, NotFound, Unauthorized
from services.identity.eth import Account as EthAccount
from services.identity.eth import SignableMessage, encode_typed_data

HEADER = "X-Wallet-Auth"
PRIMARY_TYPE = "BillingAuth"
WINDOW = timedelta(minutes=5)  # issuedAt may be this far from the server's clock, either way
MAX_HEADER_LENGTH = 16_384
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_SIGNATURE = re.compile(r"^0x[0-9a-fA-F]{130}$")
_UINT = re.compile(r"^uint(8|16|32|64|128|256)?$")


class WalletProofError(Exception):
    """Why a signed `BillingAuth` is refused: `code` for the answer, `field` at fault."""

    def __init__(self, code: str, message: str, field: str = "typed_data") -> None:
        super().__init__(message)
        self.code, self.message, self.field = code, message, field


@dataclass(frozen=True)
class Proof:
    address: str  # lower case
    digest: str  # hex EIP-712 digest of the signed message


def _malformed(message: str, field: str = "typed_data") -> WalletProofError:
    return WalletProofError("wallet_auth_malformed", message, field)


def _object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _malformed(f"{what} must be an object.")
    return value


def _issued_at(message: dict[str, Any]) -> int:
    value = message.get("issuedAt")
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _malformed("typed_data.message.issuedAt must be unix seconds (a whole number).")
    return value


def _check_types(typed_data: dict[str, Any]) -> None:
    types = _object(typed_data.get("types"), "typed_data.types")
    fields = types.get(PRIMARY_TYPE)
    declared = {f.get("name"): f.get("type") for f in fields if isinstance(f, dict)} if isinstance(
        fields, list) else {}
    if declared.get("wallet") != "address" or not _UINT.match(str(declared.get("issuedAt"))):
        raise _malformed(f"typed_data.types.{PRIMARY_TYPE} must declare wallet (address) and "
                         "issuedAt (uint256).")


def _check_clock(issued_at: int, now: datetime) -> None:
    seconds, window = int(now.timestamp()), int(WINDOW.total_seconds())
    if issued_at < seconds - window:
        raise WalletProofError("wallet_signature_expired", "issuedAt is more than 5 minutes old: "
                               "sign a new BillingAuth message.")
    if issued_at > seconds + window:
        raise WalletProofError("wallet_signature_not_yet_valid", "issuedAt is more than 5 minutes "
                               "ahead of the server's clock: check your clock.")


def _signable(typed_data: dict[str, Any]) -> SignableMessage:
    try:
        return encode_typed_data(full_message=typed_data)
    except Exception as exc:  # eth-account's checks raise several kinds; all mean "not EIP-712"
        raise _malformed(f"typed_data is not valid EIP-712 typed data ({exc}).") from None


def verify(typed_data: object, signature: object, *, domain_name: str,
           now: datetime | None = None) -> Proof:
    """The wallet that signed this `BillingAuth` typed data, or WalletProofError."""
    data = _object(typed_data, "typed_data")
    if data.get("primaryType") != PRIMARY_TYPE:
        raise _malformed(f"typed_data.primaryType must be {PRIMARY_TYPE}.")
    domain = _object(data.get("domain"), "typed_data.domain")
    if domain.get("name") != domain_name:
        raise WalletProofError("wallet_domain_mismatch",
                               f"typed_data.domain.name must be {domain_name!r}.")
    message = _object(data.get("message"), "typed_data.message")
    wallet = message.get("wallet")
    if not isinstance(wallet, str) or not _ADDRESS.match(wallet):
        raise _malformed("typed_data.message.wallet must be an address (0x and 40 hex digits).")
    _check_types(data)
    _check_clock(_issued_at(message), now or utcnow())
    if not isinstance(signature, str) or not _SIGNATURE.match(signature):
        raise _malformed("signature must be 0x and 130 hex digits (r, s, v).", "signature")
    signable = _signable(data)
    try:
        recovered = EthAccount.recover_message(signable, signature=bytes.fromhex(signature[2:]))
    except Exception:  # an impossible (r, s, v) recovers nothing
        recovered = None
    if recovered is None or recovered.lower() != wallet.lower():
        raise WalletProofError("wallet_signature_invalid",
                               "The signature is not the wallet's signature of this typed data.",
                               "signature")
    digest = keccak(b"\x19" + signable.version + signable.header + signable.body).hex()
    return Proof(wallet.lower(), digest)


def decode_header(value: str) -> tuple[object, object]:
    """`typed_data` and `signature` from an X-Wallet-Auth value (base64 of their JSON)."""
    text = value.strip()
    if len(text) > MAX_HEADER_LENGTH:
        raise _malformed(f"{HEADER} is too long.", HEADER)
    try:
        raw = base64.b64decode(text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4),
                               validate=True)
        decoded = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):
        raise _malformed(f"{HEADER} must be base64 of a JSON object "
                         '{"typed_data": ..., "signature": "0x..."}.', HEADER) from None
    if not isinstance(decoded, dict):
        raise _malformed(f"{HEADER} must hold a JSON object.", HEADER)
    return decoded.get("typed_data"), decoded.get("signature")


def _use(proof: Proof) -> bool:
    """Record the message as used; False when it was used before (by any worker)."""
    now = utcnow()
    db.session.execute(delete(UsedWalletSignature).where(
        UsedWalletSignature.used_at < now - 2 * WINDOW))  # past the window, a replay is stale anyway
    dialect = db.session.get_bind().dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(UsedWalletSignature)
    inserted = db.session.execute(
        insert.values(digest=proof.digest, address=proof.address, used_at=now)
        .on_conflict_do_nothing().returning(UsedWalletSignature.digest)).scalar_one_or_none()
    return inserted is not None


def authenticate(header: str, *, domain_name: str, state_changing: bool) -> Account:
    """The account a valid X-Wallet-Auth acts for, or a 401 with the reason's own code. A
    state-changing request uses the signature up (written, not committed: the caller commits
    before the request's work)."""
    try:
        proof = verify(*decode_header(header), domain_name=domain_name)
    except WalletProofError as exc:
        raise Unauthorized(exc.message, code=exc.code) from None
    link = db.session.get(WalletLink, proof.address)
    account = db.session.get(Account, link.account_id) if link is not None else None
    if account is None:
        raise Unauthorized("This wallet is not linked to a Tally account: link it with POST "
                           "/v1/wallets (with an API key) or on the Account page.",
                           code="wallet_not_linked")
    if state_changing and not _use(proof):
        raise Unauthorized("This signature was used already: sign a new BillingAuth message for "
                           "each request that changes something.", code="wallet_signature_replayed")
    return account


def link(account: Account, typed_data: object, signature: object, *, domain_name: str) -> WalletLink:
    """Link the wallet that signed this BillingAuth to the account (400 for a bad proof, 409
    when it is another account's). Linking a wallet the account has already is no change."""
    try:
        proof = verify(typed_data, signature, domain_name=domain_name)
    except WalletProofError as exc:
        raise InvalidInput(exc.message, code=exc.code, param=exc.field) from None
    existing = db.session.get(WalletLink, proof.address)
    if existing is not None and existing.account_id != account.id:
        raise Conflict("This wallet is linked to another account; unlink it there first.",
                       code="wallet_linked_elsewhere", param="typed_data")
    if not _use(proof):
        raise InvalidInput("This signature was used already: sign a new BillingAuth message.",
                           code="wallet_signature_replayed", param="signature")
    if existing is not None:
        return existing
    row = WalletLink(address=proof.address, account_id=account.id, created_at=utcnow())
    db.session.add(row)
    db.session.flush()
    return row


def list_for(account_id: str) -> list[WalletLink]:
    """The account's wallets, oldest first."""
    return list(db.session.execute(select(WalletLink).where(WalletLink.account_id == account_id)
                                   .order_by(WalletLink.created_at, WalletLink.address)).scalars())


def unlink(account: Account, address: str) -> WalletLink:
    """Unlink one of the account's wallets (404 for any other address)."""
    row = db.session.get(WalletLink, address.lower()) if _ADDRESS.match(address) else None
    if row is None or row.account_id != account.id:
        raise NotFound(f"No such wallet on this account: {address}", code="resource_missing",
                       param="address")
    db.session.delete(row)
    db.session.flush()
    return row
