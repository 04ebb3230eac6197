"""Usage-based pricing: price plans, rating usage as it arrives, and drawing it from
prepaid credit.

Rating is cumulative per billing period: what a batch costs is
`price(units after) - price(units before)`, so graduated and volume tiers are exact
at their edges however usage arrives. Charges accrue per meter per local day in
`usage_charges` (and in `accounts.pending_usage`, so available credit is
`balance - pending_usage` at once); each closed day is posted to the ledger as one
entry per meter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypedDict

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from extensions import db
from models import Account, Meter, PriceCharge, PricePlan, UsageCharge
from models.base import utcnow
from models.ledger import KIND_USAGE
from services import uow
from services.errors import InvalidInput, LimitExceeded, NotFound
from services.ledger import entries as ledger
from services.money import check_currency
from services.pagination import Page, paginate
from services.staff import audit
from services.usage import meters as meter_defs
from services.usage import periods

USAGE_SOURCE = "usage_charge"
MAX_AMOUNT = 10**12


# Pricing models -----------------------------------------------------------------


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def price(charge: PriceCharge, units: int) -> int:
    """What `units` cost in a period (cumulative), in minor units."""
    q = max(0, units - (charge.included_units or 0))
    if q == 0:
        return 0
    if charge.model == "per_unit":
        return q * (charge.unit_amount or 0)
    if charge.model == "package":
        return _ceil_div(q, charge.package_size or 1) * (charge.package_amount or 0)
    tiers = charge.tiers or []
    if charge.model == "volume":  # every unit at the price of the tier the total falls in
        for tier in tiers:
            if tier["up_to"] is None or q <= tier["up_to"]:
                return int(q * tier["unit_amount"] + tier.get("flat_amount", 0))
        return 0
    total, floor = 0, 0  # graduated: each tier prices the units that fall in it
    for tier in tiers:
        ceiling = tier["up_to"]
        in_tier = (q if ceiling is None else min(q, ceiling)) - floor
        if in_tier <= 0:
            break
        total += in_tier * tier["unit_amount"] + tier.get("flat_amount", 0)
        if ceiling is None:
            break
        floor = ceiling
    return total


# Price plans ----------------------------------------------------------------------


class Tier(TypedDict):
    up_to: int | None  # None: the last tier, no upper bound
    unit_amount: int
    flat_amount: int


@dataclass(frozen=True)
class ChargeSpec:
    """One meter's price in a new plan, its shape already checked (POST /v1/price-plans's
    declaration): the amounts its `model` needs, tiers in order with the last open-ended."""

    meter: str
    model: str  # one of PRICING_MODELS
    included_units: int = 0
    unit_amount: int | None = None  # per_unit
    tiers: list[Tier] | None = None  # graduated, volume
    package_size: int | None = None  # package
    package_amount: int | None = None  # package


def create_price_plan(actor: audit.Actor, *, name: str, currency: str,
                      charges: list[ChargeSpec]) -> PricePlan:
    """A price plan; each charge's meter must exist, be count or sum, and be priced once."""
    plan = PricePlan(name=name, currency=check_currency(currency))
    seen: set[str] = set()
    for i, spec in enumerate(charges):
        where = f"charges[{i}].meter"
        try:
            meter = meter_defs.get_meter(spec.meter)
        except NotFound:
            raise InvalidInput(f"No meter named {spec.meter!r}.", code="unknown_meter",
                               param=where) from None
        if meter.aggregation not in ("count", "sum"):
            raise InvalidInput("Only count and sum meters can be priced as they are used.", param=where)
        if meter.id in seen:
            raise InvalidInput(f"{meter.name} is priced twice.", param=where)
        seen.add(meter.id)
        charge = PriceCharge(meter_id=meter.id, model=spec.model, tiers=[],
                             included_units=spec.included_units)
        if spec.model == "per_unit":
            charge.unit_amount = spec.unit_amount
        elif spec.model == "package":
            charge.package_size, charge.package_amount = spec.package_size, spec.package_amount
        else:
            charge.tiers = [dict(tier) for tier in spec.tiers or []]
        plan.charges.append(charge)
    db.session.add(plan)
    db.session.flush()
    audit.record(actor, "price_plan.create", meta={"price_plan_id": plan.id, "name": plan.name,
                                                   "currency": plan.currency})
    return plan


def list_price_plans(*, limit: int, starting_after: str | None = None,
                     ending_before: str | None = None) -> Page[PricePlan]:
    """Every price plan, newest first, a page at a time."""
    return paginate(select(PricePlan), PricePlan, PricePlan.created_at, limit=limit,
                    starting_after=starting_after, ending_before=ending_before)


def all_price_plans() -> list[PricePlan]:
    """Every price plan, newest first."""
    return list(db.session.execute(select(PricePlan).order_by(PricePlan.created_at.desc(),
                                                              PricePlan.id.desc())).scalars())


def get_price_plan(price_plan_id: str) -> PricePlan:
    """The price plan with this id, or a 404."""
    plan = db.session.get(PricePlan, price_plan_id)
    if plan is None:
        raise NotFound(f"No such price plan: {price_plan_id}", param="price_plan_id")
    return plan


def assign(actor: audit.Actor, account: Account, price_plan_id: str | None,
           reason: str = "") -> Account:
    """Put the account on a price plan (None: no usage pricing); audited. Usage from now on
    is rated by it; what was already rated stays as it was."""
    if price_plan_id is not None:
        plan = get_price_plan(price_plan_id)
        if plan.currency != account.currency:
            raise InvalidInput(f"The price plan is in {plan.currency.upper()}; this account is "
                               f"billed in {account.currency.upper()}.", param="price_plan_id")
    before = account.price_plan_id
    account.price_plan_id = price_plan_id
    audit.record(actor, "price_plan.assign", customer_id=account.customer_id,
                 account_id=account.id, reason=reason, before={"price_plan_id": before},
                 after={"price_plan_id": price_plan_id})
    return account


def charges_for(account: Account) -> dict[str, PriceCharge]:
    """The charges of the account's price plan, by meter id (none without a plan)."""
    if not account.price_plan_id:
        return {}
    return {c.meter_id: c for c in db.session.execute(
        select(PriceCharge).where(PriceCharge.price_plan_id == account.price_plan_id)).scalars()}


# Accrual ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Increment:
    meter: Meter
    period: periods.Period
    before: int
    after: int


@dataclass
class _Costs:
    """What increments cost: per meter and local day (what is accrued), per billing period
    (what the spend cap counts), and the first priced increment (what messages name)."""

    per_day: dict[tuple[str, datetime], int] = field(default_factory=dict)
    per_period: dict[periods.Period, int] = field(default_factory=dict)
    first: Increment | None = None


def _costs(account: Account, increments: list[Increment], priced: dict[str, PriceCharge],
           now: datetime) -> _Costs:
    tz = periods.zone(account.time_zone)
    costs = _Costs()
    for inc in increments:
        charge = priced.get(inc.meter.id)
        cost = price(charge, inc.after) - price(charge, inc.before) if charge else 0
        if cost == 0:
            continue
        costs.first = costs.first or inc
        at = min(now, inc.period.end - timedelta(microseconds=1))
        key = (inc.meter.id, periods.day_bucket(at, tz))
        costs.per_day[key] = costs.per_day.get(key, 0) + cost
        costs.per_period[inc.period] = costs.per_period.get(inc.period, 0) + cost
    return costs


def accrue(account: Account, increments: list[Increment], *, enforce: bool,
           now: datetime | None = None, charges: dict[str, PriceCharge] | None = None) -> int:
    """Rate usage increments and accrue them in the operation; what they cost.

    With `enforce` (the gate), a positive charge the available credit or the spend cap
    cannot cover raises LimitExceeded (402), and the operation rolls back: nothing is recorded.
    """
    priced = charges_for(account) if charges is None else charges
    costs = _costs(account, increments, priced, now or utcnow()) if priced else _Costs()
    if costs.first is None:
        return 0
    total = sum(costs.per_day.values())
    label = meter_defs.label(costs.first.meter)
    cap = _draw(account, total, enforce=enforce, label=label, current=costs.first.before)
    if enforce and cap is not None:
        for period, cost in costs.per_period.items():
            if cost > 0 and period_spend(account, period) + cost > cap:
                raise LimitExceeded(f"Monthly spend cap reached for {label} usage; raise the cap "
                                    "to continue.", current=costs.first.before, limit=None)
    _record_charges(account, costs.per_day)
    return total


def _draw(account: Account, total: int, *, enforce: bool, label: str, current: int) -> int | None:
    """Add `total` to the account's pending usage; the account's monthly spend cap.

    Enforced, one conditional UPDATE: the row lock serialises concurrent callers, so the
    available credit can never be spent twice (a 402 when it cannot cover `total`)."""
    stmt = update(Account).where(Account.id == account.id)
    if enforce and total > 0:
        stmt = stmt.where(Account.available_balance >= total)
    taken = db.session.execute(stmt.values(pending_usage=Account.pending_usage + total)
                               .returning(Account.spend_cap)).first()
    if taken is None:
        raise LimitExceeded(f"Not enough prepaid credit for {label} usage; top up to continue.",
                            current=current, limit=None)
    cap: int | None = taken[0]
    ledger.balance_moved(account.id, -total)
    return cap


def _record_charges(account: Account, per_day: dict[tuple[str, datetime], int]) -> None:
    dialect = db.session.get_bind().dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(UsageCharge)
    rows = [{"account_id": account.id, "meter_id": m, "day": d, "amount": a, "posted": 0}
            for (m, d), a in sorted(per_day.items())]
    values = insert.values(rows)
    db.session.execute(values.on_conflict_do_update(
        index_elements=["account_id", "meter_id", "day"],
        set_={"amount": UsageCharge.__table__.c.amount + values.excluded.amount}))


def period_spend(account: Account, period: periods.Period) -> int:
    """What the account's usage cost in the period, posted or not."""
    return int(db.session.execute(select(func.coalesce(func.sum(UsageCharge.amount), 0)).where(
        UsageCharge.account_id == account.id, UsageCharge.day >= period.start,
        UsageCharge.day < period.end)).scalar_one())


@dataclass(frozen=True)
class Spend:
    """Rated usage in a billing period against the account's monthly spend cap."""

    amount: int
    cap: int | None
    currency: str
    priced: bool  # whether the account is on a price plan at all

    @property
    def percent(self) -> float | None:
        if self.cap is None:
            return None
        return 100.0 if self.cap == 0 else 100.0 * self.amount / self.cap


def spend(account: Account, period: periods.Period) -> Spend:
    """The account's spend in the period against its monthly spend cap."""
    return Spend(period_spend(account, period), account.spend_cap, account.currency,
                 account.price_plan_id is not None)


# Posting closed days --------------------------------------------------------------------


def _mark_posted(account: Account, meter_id: str, day: datetime, *, amount: int,
                 already: int) -> None:
    """The day's charge is on the ledger up to `amount`: no longer pending."""
    moved = uow.rows_changed(
        update(UsageCharge).where(UsageCharge.account_id == account.id,
                                  UsageCharge.meter_id == meter_id, UsageCharge.day == day,
                                  UsageCharge.posted == already)
        .values(posted=amount))
    if moved != 1:
        raise RuntimeError("usage charge changed while posting; retry")
    db.session.execute(update(Account).where(Account.id == account.id)
                       .values(pending_usage=Account.pending_usage - (amount - already)))


def post_closed_days(account: Account, now: datetime | None = None) -> int:
    """Post every closed day's unposted charges: one ledger entry per meter per day."""
    now = now or utcnow()
    today = periods.day_bucket(now, periods.zone(account.time_zone))
    rows = list(db.session.execute(select(UsageCharge).where(
        UsageCharge.account_id == account.id, UsageCharge.day < today,
        UsageCharge.amount != UsageCharge.posted)).scalars())
    meters = {m.id: m for m in meter_defs.all_meters()}
    posted = 0
    for row in rows:
        delta, already = row.amount - row.posted, row.posted
        meter, day = meters[row.meter_id], row.day
        local_day = day.astimezone(periods.zone(account.time_zone))
        result = ledger.post_entry(
            account.id, -delta, kind=KIND_USAGE, source=USAGE_SOURCE,
            source_id=f"{account.id}:{meter.id}:{day:%Y-%m-%dT%H:%M}:{already}",
            description=f"{meter.name} usage on {local_day:%b %-d}",
            meta={"meter": meter.name, "day": local_day.date().isoformat()})
        if result.posted:
            _mark_posted(account, row.meter_id, day, amount=row.amount, already=already)
        posted += int(result.posted)
    return posted
