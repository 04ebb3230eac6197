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


def run(*, apply: bool, since: datetime | None = None, actor: Actor | None = None) -> Report:
    """Find top-ups that succeeded at Stripe but were never credited; with `apply`, credit them exactly
    once."""
    actor = actor or Actor.cli()
    report = Report(applied=apply)
    query = select(TopUp).where(TopUp.credited_at.is_(None)).order_by(TopUp.created_at)
    if since is not None:
        query = query.where(TopUp.created_at >= since)
    candidates = list(db.session.execute(query).scalars())
    db.session.rollback()  # hold nothing open while asking Stripe
    for top_up in candidates:
        report.checked += 1
        if _on_ledger(top_up.payment_intent_id):
            continue  # credited; only the bookkeeping column lagged
        try:
            intent = gateway().retrieve_payment_intent(top_up.payment_intent_id)
        except NotFound:
            report.missing_at_stripe.append(top_up.payment_intent_id)
            continue
        if intent.status != "succeeded":
            continue
        finding = Finding(top_up.payment_intent_id, top_up.account_id, top_up.amount,
                          top_up.currency, top_up.created_at)
        if apply:
            credit = topups.credit_payment_intent(top_up.payment_intent_id)
            if credit.credited:
                account = db.session.get(Account, credit.account_id)
                audit.record_now(
                    actor, "reconcile.credit", account_id=credit.account_id,
                    customer_id=account.customer_id if account else None,
                    reason="Succeeded at Stripe but never credited (reconcile --apply)",
                    before={"balance": credit.balance - credit.amount},
                    after={"balance": credit.balance},
                    meta={"payment_intent": top_up.payment_intent_id, "amount": credit.amount,
                          "currency": credit.currency})
            finding = Finding(finding.payment_intent_id, finding.account_id, finding.amount,
                              finding.currency, finding.created_at, credited=credit.credited)
        report.found.append(finding)
    return report


def _on_ledger(payment_intent_id: str) -> bool:
    return db.session.execute(select(LedgerEntry.id).where(
        LedgerEntry.kind == KIND_TOPUP, LedgerEntry.source == topups.SOURCE,
        LedgerEntry.source_id == payment_intent_id)).first() is not None
