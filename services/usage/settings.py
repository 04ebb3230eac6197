"""An account's billing settings: time zone, monthly spend cap, usage alert thresholds."""

from __future__ import annotations

from typing import Any

from models import Account
from services.errors import InvalidInput
from services.usage import periods, recording

MAX_THRESHOLDS = 10
THRESHOLD_MIN, THRESHOLD_MAX = 1, 1000  # percent of a limit (over 100: alert past the limit)
MAX_SPEND_CAP = 10**12  # minor units


def as_dict(account: Account) -> dict[str, Any]:
    return {"time_zone": account.time_zone, "spend_cap": account.spend_cap,
            "currency": account.currency, "alert_thresholds": list(account.alert_thresholds or [])}


def update(account: Account, values: dict[str, Any]) -> Account:
    """Change any of `time_zone`, `spend_cap` (minor units or null), `alert_thresholds`."""
    if "time_zone" in values:
        tz = values["time_zone"]
        if not isinstance(tz, str) or not tz:
            raise InvalidInput("time_zone must be an IANA name such as Europe/Paris.",
                               param="time_zone")
        periods.zone(tz)
        if tz != account.time_zone:
            account.time_zone = tz
            recording.rebuild_period(account)  # the month's usage carries over to the new zone
    if "spend_cap" in values:
        cap = values["spend_cap"]
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int)
                                or not 0 <= cap <= MAX_SPEND_CAP):
            raise InvalidInput("spend_cap must be a whole number of minor units (or null for none).",
                               param="spend_cap")
        account.spend_cap = cap
    if "alert_thresholds" in values:
        thresholds = values["alert_thresholds"]
        if (not isinstance(thresholds, list) or len(thresholds) > MAX_THRESHOLDS or any(
                isinstance(t, bool) or not isinstance(t, int)
                or not THRESHOLD_MIN <= t <= THRESHOLD_MAX for t in thresholds)):
            raise InvalidInput("alert_thresholds must be a list of up to 10 percentages (1-1000).",
                               param="alert_thresholds")
        account.alert_thresholds = sorted(set(thresholds))
    return account
