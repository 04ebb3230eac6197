"""Plans and their limits, from the JSON file at TALLY_CONFIG_FILE (or the shipped default).

`null` or a missing limit means unlimited. A malformed file stops start-up with a
message naming the file and the fault.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from flask import Flask, current_app

DEFAULT_CONFIG_FILE = Path(__file__).resolve().parents[2] / "tally.config.json"
LIMIT_NAMES = ("apiCalls", "llmTokens", "storage", "requestsPerMinute", "lifetimeApiCalls")


class PlanConfigError(RuntimeError):
    pass


@dataclass(frozen=True)
class Price:
    """A recurring subscription price in minor units."""

    amount: int
    currency: str
    interval: str = "month"

    @property
    def lookup_key(self) -> str:
        """How Tally finds (or creates) the matching Stripe Price."""
        return f"tally_{self.currency}_{self.amount}_{self.interval}"


@dataclass(frozen=True)
class Plan:
    name: str
    limits: dict[str, int | None] = field(default_factory=dict)
    price: Price | None = None  # None: free, no subscription

    def limit(self, name: str) -> int | None:
        return self.limits.get(name)

    @property
    def display_name(self) -> str:
        return self.name.capitalize()


def load(path: Path) -> dict[str, Plan]:
    """The plans of a plans file, checked; PlanConfigError names the file and the fault."""
    try:
        raw = json.loads(path.read_text())
    except OSError as exc:
        raise PlanConfigError(f"{path}: cannot read plans file ({exc.strerror})") from exc
    except json.JSONDecodeError as exc:
        raise PlanConfigError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from exc
    plans_raw = raw.get("billing", {}).get("plans") if isinstance(raw, dict) else None
    if not isinstance(plans_raw, dict) or not plans_raw:
        raise PlanConfigError(f"{path}: expected an object at billing.plans")
    plans: dict[str, Plan] = {}
    for name, spec in plans_raw.items():
        if not isinstance(spec, dict):
            raise PlanConfigError(f"{path}: billing.plans.{name} must be an object")
        limits: dict[str, int | None] = {}
        for key, value in spec.items():
            if key not in LIMIT_NAMES:
                continue
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 0):
                raise PlanConfigError(
                    f"{path}: billing.plans.{name}.{key} must be a whole number >= 0 or null")
            limits[key] = value
        plans[name] = Plan(name, limits, _price(path, name, spec.get("price")))
    if "free" not in plans:
        raise PlanConfigError(f"{path}: billing.plans must define a 'free' plan")
    return plans


def _price(path: Path, name: str, spec: object) -> Price | None:
    if spec is None:
        return None
    where = f"{path}: billing.plans.{name}.price"
    if not isinstance(spec, dict):
        raise PlanConfigError(f"{where} must be an object like "
                              '{"amount": 4900, "currency": "usd", "interval": "month"}')
    amount, currency = spec.get("amount"), spec.get("currency", "usd")
    interval = spec.get("interval", "month")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise PlanConfigError(f"{where}.amount must be a whole number of minor units > 0")
    if not isinstance(currency, str) or len(currency) != 3:
        raise PlanConfigError(f"{where}.currency must be a 3-letter ISO code")
    if interval not in ("month", "year"):
        raise PlanConfigError(f"{where}.interval must be month or year")
    return Price(amount, currency.lower(), interval)


def init_app(app: Flask) -> None:
    """Load the plans (TALLY_CONFIG_FILE, or the shipped default) at start-up."""
    path = Path(app.config.get("TALLY_CONFIG_FILE") or DEFAULT_CONFIG_FILE)
    app.extensions["tally_plans"] = load(path)


def plan_for(tier: str) -> Plan:
    """The plan of an account's tier (Free for a tier no longer configured)."""
    plans: dict[str, Plan] = current_app.extensions["tally_plans"]
    return plans.get(tier) or plans["free"]


def get_plan(name: str) -> Plan | None:
    """The plan of this name, or None."""
    loaded: dict[str, Plan] = current_app.extensions["tally_plans"]
    return loaded.get(name)


def all_plans() -> list[Plan]:
    """Every plan, in the configuration's order."""
    return list(current_app.extensions["tally_plans"].values())
