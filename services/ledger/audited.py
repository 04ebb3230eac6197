"""Money staff move (grants, adjustments): the ledger entry and its audit row together."""

from __future__ import annotations

from typing import Any

from models import Account
from services.ledger.entries import Posting, lock_account, post_entry
from services.staff import audit
from services.staff.audit import Actor


def post_audited(actor: Actor, account: Account, amount: int, *, kind: str, source: str,
                 source_id: str, description: str, action: str, reason: str,
                 allow_negative: bool = True, meta: dict[str, Any] | None = None) -> Posting:
    """Post a ledger entry and its audit row, with the balance before and after, in the
    operation's transaction. The account stays locked from the read of the balance to the
    commit, so the before/after written to the audit log are exact."""
    before = lock_account(account.id).balance
    audit.record(actor, action, customer_id=account.customer_id, account_id=account.id,
                 reason=reason, before={"balance": before}, after={"balance": before + amount},
                 meta={"amount": amount, "currency": account.currency,
                       "ledger": {"kind": kind, "source": source, "source_id": source_id},
                       **(meta or {})})
    return post_entry(
        account.id, amount, kind=kind, source=source, source_id=source_id,
        description=description, currency=account.currency, allow_negative=allow_negative,
        meta={"staff": actor.staff.email if actor.staff else "cli", "reason": reason})
