"""Auto-recharge: GET and POST /v1/billing/auto-recharge (services/ledger/recharge.py)."""

from __future__ import annotations

from models import Account
from models.recharge import DISABLED, FIXED
from services.identity import members
from services.ledger import recharge
from views.api import ACCOUNT_KEY, account, bp
from views.api.declare import operation
from views.api.schemas.recharge import AutoRecharge, AutoRechargeRequest, LastAttempt


def answer(acct: Account) -> AutoRecharge:
    """The account's settings and state, as the API (and the page) shows them."""
    row = recharge.settings_of(acct.id)
    last = recharge.last_attempt(acct.id)
    last_attempt = LastAttempt(at=last.created_at, amount=last.amount, outcome=last.outcome) \
        if last is not None else None
    if row is None:
        return AutoRecharge(enabled=False, threshold=0, method=FIXED, amount=None, target=None,
                            payment_method_id=None, monthly_limit=None, status=DISABLED,
                            consecutive_failures=0, last_attempt=last_attempt)
    return AutoRecharge(enabled=row.enabled, threshold=row.threshold, method=row.method,
                        amount=row.amount, target=row.target,
                        payment_method_id=row.payment_method_id, monthly_limit=row.monthly_limit,
                        status=row.status, consecutive_failures=row.consecutive_failures,
                        last_attempt=last_attempt)


@bp.get("/billing/auto-recharge")
@operation(ACCOUNT_KEY, "Auto-recharge", "Auto-recharge settings and state", AutoRecharge,
           permission=members.READ)
def get_auto_recharge() -> AutoRecharge:
    return answer(account())


@bp.post("/billing/auto-recharge")
@operation(ACCOUNT_KEY, "Auto-recharge", "Set auto-recharge", AutoRecharge,
           body=AutoRechargeRequest, stripe=True, description=(
               "Whenever available credit falls below `threshold`, Tally charges the card off "
               "session (at most one recharge in flight per account) and credits it exactly "
               "once. Enabling it without a usable card (the one named, or the default) is a "
               "400 naming payment_method_id. A recharge that would pass monthly_limit is not "
               "made. After 3 failures in a row it turns itself off."),
           permission=members.PAY)
def set_auto_recharge(body: AutoRechargeRequest) -> AutoRecharge:
    acct = account()
    recharge.configure(acct, recharge.Settings(
        enabled=body.enabled, threshold=body.threshold, method=body.method, amount=body.amount,
        target=body.target, payment_method_id=body.payment_method_id,
        monthly_limit=body.monthly_limit))
    return answer(acct)
