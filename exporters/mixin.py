"""One configuration for the alert rules and the dashboard, in the manner of the monitoring mixins."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode


@dataclass(frozen=True)
class MixinConfig:
    job: str = "leadpulse"  # every rule expression and panel query selects job="<job>"
    datasource_uid: str = "prometheus"  # default of the dashboard's `datasource` variable
    dashboard_uid: str = "leadpulse-conversion"
    dashboard_title: str = "leadpulse: lead-to-customer conversion"
    tags: tuple[str, ...] = ("leadpulse",)
    refresh: str = "1m"
    grafana_url: str = "http://localhost:3000"  # base of the alerts' dashboard_url
    docs_url: str = "https://github.com/leadpulse/leadpulse/blob/main/docs"  # base of runbook_url
    # LeadFollowUpSlow compares the within-SLA share of the shortest window with the rest of
    # the longest (days 8-90 by default): both must be among the exporter's LEADPULSE_WINDOWS.
    follow_up_recent_window: str = "7d"
    follow_up_usual_window: str = "90d"
    owner_dimension: str = "owner"  # the attribute key of the sales owner, for the dashboard's owners table

    @property
    def selector(self) -> str:
        return f'job="{self.job}"'

    def runbook_url(self, anchor: str) -> str:
        """docs/alerts.md at the alert's section, e.g. runbook_url("leadconversiondrop")."""
        return f"{self.docs_url}/alerts.md#{anchor}"

    def dashboard_url(self, **variables: str) -> str:
        """The dashboard opened with template variables set, e.g. dimension="{{ $labels.dimension }}"."""
        query = urlencode({f"var-{name}": value for name, value in variables.items()}, safe="{}$. ")
        return f"{self.grafana_url}/d/{self.dashboard_uid}?{query}"


CONFIG: Final = MixinConfig()
