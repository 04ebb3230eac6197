"""Reconciliation: find top-ups that succeeded at Stripe but were never credited (a lost
webhook and a customer who closed the page before the confirm call), and credit them.

Tally records every PaymentIntent it creates (`top_ups`) before the customer can pay it,
so the uncredited rows of that table, asked of Stripe one by one, are exactly the
succeeded PaymentIntents that may be missing. Crediting goes through
`topups.credit_payment_intent`, so running this any number of times, or beside the
webhook, credits each PaymentIntent once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from extensions import db
from models import Account, LedgerEntry, TopUp
from models.ledger import KIND_TOPUP
from services.billing.gateway import gateway
from services.errors import NotFound
from services.ledger import topups
from services.staff import audit
from services.staff.audit import Actor


@dataclass(frozen=True)
class Finding:
    payment_intent_id: str
    account_id: str
    amount: int
    currency: str
    created_at: datetime
    credited: bool | None = None  # with --apply: True if this run credited it

    def as_dict(self) -> dict[str, Any]:
        body = {"payment_intent_id": self.payment_intent_id, "account_id": self.account_id,
                "amount": self.amount, "currency": self.currency,
                "created_at": self.created_at.isoformat()}
        if self.credited is not None:
            body["credited"] = self.credited
        return body


@dataclass
class Report:
    checked: int = 0
    applied: bool = False
    found: list[Finding] = field(default_factory=list)
    missing_at_stripe: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"checked": self.checked, "applied": self.applied,
                "uncredited": [f.as_dict() for f in self.found],
                "credited": sum(1 for f in self.found if f.credited),
                "missing_at_stripe": self.missing_at_stripe}


def candidates(since: datetime | None = None) -> list[str]:
    """The PaymentIntents of top-ups not yet marked credited, oldest first (a read)."""
    query = select(TopUp.payment_intent_id).where(TopUp.credited_at.is_(None)) \
        .order_by(TopUp.created_at)
    if since is not None:
        query = query.where(TopUp.created_at >= since)
    return list(db.session.execute(query).scalars())


def check(report: Report, payment_intent_id: str, *, actor: Actor) -> None:
    """Ask Stripe about one top-up and add what is found to `report`; when the report is
    `applied`, credit it exactly once and audit it. One unit of work per top-up: the
    Stripe call comes first, before anything is written."""
    report.checked += 1
    if _on_ledger(payment_intent_id):
        return  # credited; only the bookkeeping column lagged
    top_up = db.session.get(TopUp, payment_intent_id)
    assert top_up is not None
    try:
        intent = gateway().retrieve_payment_intent(payment_intent_id)
    except NotFound:
        report.missing_at_stripe.append(payment_intent_id)
        return
    if intent.status != "succeeded":
        return
    credited = _credit(payment_intent_id, actor) if report.applied else None
    report.found.append(Finding(payment_intent_id, top_up.account_id, top_up.amount,
                                top_up.currency, top_up.created_at, credited=credited))


def _credit(payment_intent_id: str, actor: Actor) -> bool:
    credit = topups.credit_payment_intent(payment_intent_id)
    if credit.credited:
        account = db.session.get(Account, credit.account_id)
        audit.record(
            actor, "reconcile.credit", account_id=credit.account_id,
            customer_id=account.customer_id if account else None,
            reason="Succeeded at Stripe but never credited (reconcile --apply)",
            before={"balance": credit.balance - credit.amount},
            after={"balance": credit.balance},
            meta={"payment_intent": payment_intent_id, "amount": credit.amount,
                  "currency": credit.currency})
    return credit.credited


def _on_ledger(payment_intent_id: str) -> bool:
    return db.session.execute(select(LedgerEntry.id).where(
        LedgerEntry.kind == KIND_TOPUP, LedgerEntry.source == topups.SOURCE,
        LedgerEntry.source_id == payment_intent_id)).first() is not None
