"""An account's billing settings: time zone, monthly spend cap, usage alert thresholds."""

from __future__ import annotations

from typing import Any, TypedDict

from models import Account
from services.usage import periods, recording

MAX_THRESHOLDS = 10
THRESHOLD_MIN, THRESHOLD_MAX = 1, 1000  # percent of a limit (over 100: alert past the limit)
MAX_SPEND_CAP = 10**12  # minor units


def as_dict(account: Account) -> dict[str, Any]:
    """The account's usage settings, as pages and the API show them."""
    return {"time_zone": account.time_zone, "spend_cap": account.spend_cap,
            "currency": account.currency, "alert_thresholds": list(account.alert_thresholds or [])}


class Changes(TypedDict, total=False):
    """The settings to change (the others stay); their shapes are checked by the caller
    (POST /v1/billing/settings's declaration, the settings form)."""

    time_zone: str  # an IANA name; an unknown one is a 400 here
    spend_cap: int | None  # 0 to MAX_SPEND_CAP minor units; None: no cap
    alert_thresholds: list[int]  # up to MAX_THRESHOLDS percentages, THRESHOLD_MIN to THRESHOLD_MAX


def update(account: Account, changes: Changes) -> Account:
    """Change any of `time_zone`, `spend_cap`, `alert_thresholds`."""
    if "time_zone" in changes:
        tz = changes["time_zone"]
        periods.zone(tz)
        if tz != account.time_zone:
            account.time_zone = tz
            recording.rebuild_period(account)  # the month's usage carries over to the new zone
    if "spend_cap" in changes:
        account.spend_cap = changes["spend_cap"]
    if "alert_thresholds" in changes:
        account.alert_thresholds = sorted(set(changes["alert_thresholds"]))
    return account
