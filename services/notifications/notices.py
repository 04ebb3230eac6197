"""What Tally tells a customer by email, and which kinds they want.

Each notice is queued with its cause, in the same transaction (`emails.queue_email`, the
outbox), and delivered after the commit with retries: a mail server that is down loses no
message and delays no payment. Each goes to the customer's primary email (the owner), with
a plain-text and an HTML part and a link back to the page it is about. A customer turns
kinds off on the Account page (`notification_prefs`); security notices always go.
"""

from __future__ import annotations

from html import escape

from flask import current_app, has_request_context, request
from sqlalchemy import select, update

from extensions import db
from models import Account, Customer
from services import uow
from services.errors import InvalidInput
from services.ledger import entries as ledger
from services.money import format_money
from services.notifications.emails import queue_email

LOW_BALANCE = "low_balance"
USAGE = "usage_alerts"
RECHARGE = "auto_recharge"
RECEIPTS = "receipts"
PLAN = "plan_changes"
SECURITY = "security"
KINDS = {
    LOW_BALANCE: "Low balance",
    USAGE: "Usage at 80% and 100% of a plan limit",
    RECHARGE: "Auto-recharge: succeeded, failed, needs authentication, turned off",
    RECEIPTS: "Payment receipts (top-ups and subscription invoices, PDF attached)",
    PLAN: "Plan changed or cancelled",
    SECURITY: "Security notices (API keys created or rotated): always sent",
}
ALWAYS = frozenset({SECURITY})


def wants(account: Account, kind: str) -> bool:
    """Whether the account's owner gets notices of `kind`."""
    return kind in ALWAYS or (account.notification_prefs or {}).get(kind, True) is not False


def link(path: str) -> str:
    """An absolute link to `path` (TALLY_PUBLIC_URL, else the request's own address)."""
    base = current_app.config.get("PUBLIC_URL") or (
        request.url_root.rstrip("/") if has_request_context() else "http://127.0.0.1:5000")
    return f"{base}{path}"


def notify(account: Account, kind: str, subject: str, paragraphs: list[str], *, path: str,
           action: str, dedupe_key: str | None = None, invoice_pdf: str | None = None) -> bool:
    """Queue one notice of `kind` to the account's owner (if they want that kind); False
    when nothing was queued (turned off, or no email delivery set up)."""
    if kind not in KINDS:
        raise ValueError(f"unknown notice kind {kind!r}")
    if not wants(account, kind):
        return False
    url = link(path)
    text = "\n\n".join([*paragraphs, f"{action}: {url}",
                        f"Change which emails you get: {link('/account')}"]) + "\n"
    html = ("<!doctype html><html><body style=\"font-family:sans-serif;line-height:1.5\">"
            + "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
            + f'<p><a href="{escape(url)}">{escape(action)}</a></p>'
            + f'<p style="color:#666;font-size:small"><a href="{escape(link("/account"))}">'
            "Change which emails you get</a></p></body></html>")
    # The customer by id, not `account.customer`: the gate's account comes from the API key
    # cache (services/identity/key_cache.py), detached from the session.
    customer = db.session.get(Customer, account.customer_id)
    assert customer is not None
    return queue_email(customer.primary_email, subject, text, html=html,
                       customer_id=account.customer_id, dedupe_key=dedupe_key,
                       invoice_pdf=invoice_pdf)


def set_preferences(account: Account, prefs: dict[str, bool],
                    low_balance_threshold: int | None) -> None:
    """Save which kinds the owner gets, and the low-balance threshold (None: no notice)."""
    unknown = sorted(set(prefs) - set(KINDS))
    if unknown:
        raise InvalidInput(f"Unknown notification kind: {unknown[0]}.", param="notifications")
    if low_balance_threshold is not None and low_balance_threshold < 0:
        raise InvalidInput("The low-balance threshold must be zero or more.",
                           param="low_balance_threshold")
    account.notification_prefs = {k: bool(v) for k, v in prefs.items() if k not in ALWAYS}
    if account.low_balance_threshold != low_balance_threshold:
        account.low_balance_threshold = low_balance_threshold
        account.low_balance_notified = False
    db.session.flush()
    _on_balance(account.id, -1)


# Low balance: once per crossing -----------------------------------------------------------


def _on_balance(account_id: str, change: int) -> None:
    """In the transaction that moved credit: below the threshold, notify once; back at or
    above it, arm the notice for the next crossing."""
    row = db.session.execute(select(Account.low_balance_threshold, Account.low_balance_notified,
                                    Account.available_balance)
                             .where(Account.id == account_id)).first()
    if row is None or row.low_balance_threshold is None:
        return
    below = row.available_balance < row.low_balance_threshold
    if below == bool(row.low_balance_notified):
        return
    changed = uow.rows_changed(update(Account).where(
        Account.id == account_id, Account.low_balance_notified.is_(not below))
        .values(low_balance_notified=below))
    if not (changed and below):
        return
    account = db.session.get(Account, account_id)
    assert account is not None
    notify(account, LOW_BALANCE, "Your Tally credit is running low", [
        f"Your available credit is {format_money(row.available_balance, account.currency)}, "
        f"below the {format_money(row.low_balance_threshold, account.currency)} you asked to "
        "hear about.",
        "When it runs out, calls that need credit are refused (402). Top up, or turn on "
        "auto-recharge, to keep your service running."], path="/topup", action="Top up now")


# Auto-recharge ---------------------------------------------------------------------------

_RECHARGE_SUBJECTS = {
    "succeeded": "Auto-recharge added {amount} to your Tally credit",
    "declined": "Auto-recharge failed: your card was declined",
    "requires_action": "Auto-recharge needs you: your bank asks to confirm the payment",
    "monthly_limit": "Auto-recharge paused: this month's limit is reached",
    "no_card": "Auto-recharge failed: there is no card to charge",
}


def recharge_outcome(account: Account, outcome: str, amount: int, seq: int, *, turned_off: bool,
                     error: str | None = None) -> None:
    """Tell the owner how an auto-recharge attempt ended (and if it turned itself off)."""
    template = _RECHARGE_SUBJECTS.get(outcome)
    if template is None:
        return
    money = format_money(amount, account.currency)
    paragraphs = {
        "succeeded": [f"Your credit fell below your threshold, so Tally charged your saved card "
                      f"{money}. It is on your balance now."],
        "declined": [f"Tally tried to charge your saved card {money}; it was declined"
                     f"{': ' + error if error else ''}. Your balance is as it was."],
        "requires_action": [f"Tally tried to charge your saved card {money}; your bank asks "
                            "you to confirm it (3-D Secure). Nothing was charged yet.",
                            "Open the top-up page and press “Complete payment”."],
        "monthly_limit": [f"A recharge of {money} would pass the monthly limit you set, so "
                          "Tally did not make it. It starts again next month, or raise the "
                          "limit."],
        "no_card": ["Your saved card is gone, so auto-recharge could not charge it. Save a "
                    "card and make it the default."],
    }[outcome]
    if turned_off:
        paragraphs.append("This was the third failure in a row, so auto-recharge is now off. "
                          "Turn it on again on the top-up page once your card works.")
    subject = "Auto-recharge turned off after 3 failed attempts" if turned_off \
        else template.format(amount=money)
    notify(account, RECHARGE, subject, paragraphs, path="/topup",
           action="Complete payment" if outcome == "requires_action" else "Open the top-up page",
           dedupe_key=f"recharge:{account.id}:{seq}:{outcome}")


ledger.watch_balance(_on_balance)


# Receipts, plans, keys, usage ------------------------------------------------------------


def receipt(account: Account, invoice_id: str, number: str, total: int, kind_label: str) -> None:
    """A paid invoice (a top-up's receipt, a subscription's invoice), its PDF attached."""
    notify(account, RECEIPTS, f"Your Tally receipt {number}", [
        f"Thank you: {format_money(total, account.currency)} paid ({kind_label.lower()}).",
        "The invoice is attached as a PDF."], path=f"/billing/invoices/{invoice_id}",
        action="View the invoice", dedupe_key=f"receipt:{invoice_id}", invoice_pdf=invoice_id)


def plan_changed(account: Account, before: str, after: str) -> None:
    """The account moved from plan `before` to `after` (a subscription, its end, staff)."""
    notify(account, PLAN, f"Your Tally plan is now {after.capitalize()}", [
        f"Your plan changed from {before.capitalize()} to {after.capitalize()}; its limits "
        "apply now."], path="/plans", action="See your plan")


def plan_cancelled(account: Account, plan: str, ends: str | None, cancelled: bool) -> None:
    """The subscription was cancelled at the end of its period (or resumed)."""
    if cancelled:
        subject, text = (f"Your Tally {plan.capitalize()} plan is cancelled",
                         f"You keep {plan.capitalize()} until {ends or 'the end of the period'}, "
                         "then move to Free.")
    else:
        subject, text = (f"Your Tally {plan.capitalize()} plan continues",
                         f"You resumed {plan.capitalize()}; it renews as usual.")
    notify(account, PLAN, subject, [text], path="/plans", action="See your plan")


def key_notice(account: Account, name: str, prefix: str, action: str) -> None:
    """A security notice: an API key was created or rotated (the key itself is never sent)."""
    notify(account, SECURITY, f"An API key was {action} on your Tally account", [
        f"The key “{name}” ({prefix}…) was {action}. The key itself is shown only once, on "
        "the page or in the answer that made it.",
        "If this was not you, revoke the key and change your password now."],
        path="/keys", action="Review your keys")


def usage_alert(account: Account, meter: str, threshold: int, value: int, limit: int,
                period: str) -> None:
    """A plan limit's threshold crossed this period (sent once per crossing)."""
    reached = "reached" if threshold >= 100 else f"is at {threshold}% of"
    notify(account, USAGE, f"Your {meter} usage {reached} your plan's limit", [
        f"This month you have used {value:,} of {limit:,} {meter} ({threshold}%).",
        "Calls over the limit are refused (402). Upgrade for a higher limit."],
        path="/usage", action="See your usage",
        dedupe_key=f"usage:{account.id}:{meter}:{threshold}:{period}")
