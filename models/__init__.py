"""Typed SQLAlchemy models, one module per area. Importing this package registers them all."""

from models.accounts import Account, Customer, User
from models.audit import AuditEvent, Impersonation
from models.billing import Invoice, InvoiceLine, Subscription
from models.grants import CreditGrant
from models.idempotency import IdempotencyRecord
from models.keys import ApiKey
from models.ledger import LedgerEntry
from models.members import Invitation, Membership, UserSession
from models.outbox import OutboxMessage
from models.payments import TopUp
from models.pricing import PriceCharge, PricePlan, UsageCharge
from models.recharge import AutoRecharge, RechargeAttempt
from models.search import CustomerSearch
from models.usage import (
    Meter,
    UsageAlert,
    UsageCounter,
    UsageEvent,
    UsageEventId,
    UsageRollup,
    UsageUnique,
)
from models.wallets import UsedWalletSignature, WalletLink
from models.webhooks import WebhookEvent

__all__ = [
    "Account", "ApiKey", "AuditEvent", "AutoRecharge", "CreditGrant", "Customer", "CustomerSearch",
    "IdempotencyRecord",
    "Impersonation", "Invitation", "Invoice", "InvoiceLine", "LedgerEntry", "Membership", "Meter",
    "OutboxMessage", "PriceCharge", "PricePlan", "RechargeAttempt", "Subscription", "TopUp",
    "UsageAlert", "UsageCharge", "UsageCounter", "UsageEvent", "UsageEventId", "UsageRollup", "UsageUnique",
    "UsedWalletSignature", "User", "UserSession", "WalletLink", "WebhookEvent",
]
