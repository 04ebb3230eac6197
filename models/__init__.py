"""Typed SQLAlchemy models, one module per area. Importing this package registers them all."""

from models.accounts import Account, Customer, User
from models.keys import ApiKey
from models.ledger import LedgerEntry
from models.payments import TopUp
from models.usage import Meter, UsageAlert, UsageCounter, UsageEvent, UsageRollup, UsageUnique
from models.webhooks import WebhookEvent

__all__ = [
    "Account", "ApiKey", "Customer", "LedgerEntry", "Meter", "TopUp", "UsageAlert", "UsageCounter",
    "UsageEvent", "UsageRollup", "UsageUnique", "User", "WebhookEvent",
]
