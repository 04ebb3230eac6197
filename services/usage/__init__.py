"""Usage, metering and rating: events in, limits and prices checked, usage read back.

What the rest of Tally calls:
- `ingest` (POST /v1/events) and `authorize` (the gate, POST /v1/authorize);
- `summary`, `series`, `lifetime_total` and `current_alerts` to show usage;
- `rebuild_period` after an account's time zone changes.
Meters (meters.py), price plans and rating (rating.py), periods (periods.py), closing a
period (period_close.py) and the account's usage settings (settings.py) are modules of
their own; the table of aggregations is aggregation.py.
"""

from services.usage.alerts import ShownAlert, current_alerts, upgradable
from services.usage.events import EventIn
from services.usage.gate import Decision, authorize
from services.usage.reads import MeterUsage, UsageSummary, lifetime_total, series, summary
from services.usage.recording import IngestResult, ingest, ingest_for_accounts, rebuild_period

__all__ = [
    "Decision", "EventIn", "IngestResult", "MeterUsage", "ShownAlert", "UsageSummary", "authorize",
    "current_alerts", "ingest", "ingest_for_accounts", "lifetime_total", "rebuild_period", "series",
    "summary",
    "upgradable",
]
