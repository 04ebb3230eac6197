"""Billing periods: calendar months in the account's time zone, and local-hour buckets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.errors import InvalidInput

# The period key of all-time counters (lifetime limits, `calls_total`).
LIFETIME = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Period:
    start: datetime  # UTC instant of local midnight on the 1st
    end: datetime  # exclusive
    label: str  # "2026-11"
    time_zone: str


def zone(name: str) -> ZoneInfo:
    """The IANA time zone of this name, or a 400 naming `time_zone`."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "Europe" is a folder, too long
        raise InvalidInput(f"Unknown time zone {name!r}; use an IANA name such as Europe/Paris.",
                           param="time_zone") from None


def month_of(at: datetime, time_zone: str) -> Period:
    """The billing period (the calendar month in `time_zone`) that `at` falls in."""
    tz = zone(time_zone)
    local = at.astimezone(tz)
    start_local = datetime(local.year, local.month, 1, tzinfo=tz)
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    end_local = datetime(year, month, 1, tzinfo=tz)
    return Period(start_local.astimezone(UTC), end_local.astimezone(UTC),
                  f"{local.year:04d}-{local.month:02d}", time_zone)


def hour_bucket(at: datetime, tz: ZoneInfo) -> datetime:
    """The UTC instant at which `at`'s local hour began."""
    local = at.astimezone(tz)
    return local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)


def day_bucket(at: datetime, tz: ZoneInfo) -> datetime:
    """The start of the local day `at` falls in, in UTC."""
    local = at.astimezone(tz)
    return datetime(local.year, local.month, local.day, tzinfo=tz).astimezone(UTC)


def local_days(start: datetime, end: datetime, tz: ZoneInfo) -> list[datetime]:
    """UTC instants of every local midnight in [start, end)."""
    days = []
    local = start.astimezone(tz)
    day = datetime(local.year, local.month, local.day, tzinfo=tz)
    while day.astimezone(UTC) < end:
        days.append(day.astimezone(UTC))
        nxt = day + timedelta(days=1)
        day = datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz)
    return days
