"""The words of the OpenAPI document: its description, and the tags that group operations."""

from __future__ import annotations

TAGS = [
    ("Account", "Who the key belongs to, the balance and the ledger."),
    ("Top-ups", "Prepaid credit by card: create a PaymentIntent, pay it with Stripe.js, confirm."),
    ("Payment methods", "Saved cards: a SetupIntent confirmed with Stripe.js, list, default, "
                        "remove."),
    ("Auto-recharge", "Top up by itself with the saved card when credit runs low."),
    ("Keys", "Account keys (all their creator's role allows) and usage keys (the gate, events, "
              "balance and usage)."),
    ("Wallets", "ChainSecured wallet auth: wallets whose EIP-712 signatures (X-Wallet-Auth) act "
                "as an account key."),
    ("Metering", "The request gate, usage events, meters and usage."),
    ("Plans and subscriptions", "Plans, the subscription, Stripe Checkout and the Customer Portal."),
    ("Invoices", "Receipts for top-ups and subscription invoices."),
    ("Members", "Who logs in to the key's customer, with which role (owner, admin, billing, "
                "developer, viewer), and invitations. An account key acts with the role of the "
                "member who created it."),
    ("Price plans", "Usage-based pricing: staff create and assign; accounts read theirs."),
    ("Staff", "Customers, accounts and credit grants, with a staff key. Every write is audited."),
    ("Customer Portal", "Stripe Customer Portal configurations (Stripe's object), with a staff key."),
    ("Webhooks", "Stripe calls this; signed with Stripe-Signature."),
    ("Meta", "This document."),
]

DESCRIPTION = """\
Tally's JSON API, for scripts and AI agents.

**Keys.** Send an API key as `X-Api-Key: tly_...` or `Authorization: Bearer tly_...`. An
*account* key can do everything for its account; a *usage* key only calls /v1/authorize,
/v1/events and reads balance and usage (for product servers); a *staff* key acts on
customers and accounts. Each operation lists the kinds it takes in `x-key-kinds`; another
kind gets 403 `key_scope`. Where an account key is taken, a linked wallet may sign instead
(`X-Wallet-Auth`, the WalletAuth scheme: an EIP-712 `BillingAuth` message, once per change).

**Roles.** A customer's members have roles: `owner` (everything), `admin` (all but
ownership), `billing` (payments, plans, invoices; no keys), `developer` (keys and usage;
no payments), `viewer` (read only). An account or usage key acts with the role of the
member who created it (keys from before members existed act as the owner). Each operation
names what it needs in `x-permission`; a role without it gets 403 `role_forbidden`.

**Money** is integer minor units with an ISO currency: 2500 with usd is $25.00. `balance`
is spendable credit in every answer (the posted ledger balance less rated usage not yet
posted); `posted_balance` is the ledger's own sum.

**Names** are snake_case, except those a published API spells otherwise and its clients
call (the generic billing API's `priceId`, `successUrl`, `returnUrl`, `paidAt`, ...;
Togai's `primaryEmail`); where one object has both kinds, it carries both spellings.

**Errors** all have one shape: `{"error", "code", "message", "param"?}` (`param` when one field
is at fault). Over a plan limit, 402 adds `usage` and `upgrade_url`. Over the plan's
requests per minute, 429 with `Retry-After`; every rate-limited answer carries
`X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`.

**Retries.** Every POST takes an optional `Idempotency-Key` header (up to 255 characters):
the first answer is stored for 24 hours and replayed to a retry with the same key.

**Lists** are `{"object": "list", "data": [...], "has_more"}`, newest first (meters and plans
keep their own order); page with `limit` (1-100, default 10), `starting_after` and
`ending_before` (item ids; names for meters and plans).
"""
