"""Every knob of leadpulse, read from flags and ``LEADPULSE_*`` environment variables.

One object so that the worker, the exporter, the report and the stack agree on ports,
topics and key layout; two stacks with different homes and ports never meet.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, urlencode, urlparse

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from aggregates.business_hours import BusinessHours, FollowUpClock, business_zone, parse_duration_ms, parse_holidays

#: How each follow-up setting is checked (each parser's error names its variable).
_FOLLOW_UP_PARSERS: dict[str, Callable[[str], object]] = {
    "follow_up_sla": parse_duration_ms,
    "business_hours": BusinessHours.parse,
    "business_timezone": business_zone,
    "business_holidays": parse_holidays,
}

LEADS_TOPIC = "leadpulse.leads"
DEALS_TOPIC = "leadpulse.deals"
REJECTED_TOPIC = "leadpulse.rejected"
INPUT_TOPICS = (LEADS_TOPIC, DEALS_TOPIC)
#: Longest maturity age: the conversion lags Redis keeps (aggregates.keys.LAG_DAYS).
MAX_MATURITY_DAYS = 365


class Settings(BaseSettings):
    """Settings with the defaults of CONTRACT section 4; each field is ``LEADPULSE_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="LEADPULSE_", extra="ignore")

    home: Path = Field(Path(".leadpulse"), description="data, logs and pid files of `stack up`")
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap host:port")
    kafka_controller_port: int = Field(
        9095, description="KRaft controller listener of the local broker (the n-th broker's: this port + n - 1)"
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="how every Kafka client connects; `stack up` starts its broker's listener so"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN", description="SASL mechanism (SASL_PLAINTEXT, SASL_SSL)"
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user; the local stack's client certificate CN with SSL")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (a secret: never logged or printed)")
    kafka_ssl_cafile: Path | None = Field(
        None, description="PEM CA of the brokers' certificates (system CAs, plus the local stack's CA if present, when unset)"
    )
    kafka_ssl_certfile: Path | None = Field(None, description="PEM client certificate, for brokers that require one")
    kafka_ssl_keyfile: Path | None = Field(None, description="PEM key of the client certificate")
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis URL")
    redis_cluster: bool = Field(
        False, description="true: LEADPULSE_REDIS_URL names any node of a Redis Cluster, and every client speaks its protocol"
    )
    exporter_port: int = Field(9816, description="exporter /metrics port")
    api_port: int = Field(9817, description="ingest API port")
    prometheus_port: int = Field(9090, description="Prometheus port")
    alertmanager_port: int = Field(9093, description="Alertmanager port")
    alert_webhook_url: str = Field("http://127.0.0.1:9819/alerts", description="webhook the stack's Alertmanager sends alerts to")
    kafka_libs: Path = Field(
        default_factory=lambda: Path.home() / ".cache/leadpulse/kafka/libs",
        description="jars of the stack's Kafka broker (`make install` resolves deploy/kafka/pom.xml there)",
    )
    ingest_secret: SecretStr | None = Field(None, description="HMAC secret of the ingest API (CONTRACT section 5)")
    api_public_url: str | None = Field(
        None, description="the API's public base URL behind a proxy or TLS terminator (HubSpot v3 signs the URL)"
    )
    hubspot_client_secret: SecretStr | None = Field(None, description="HubSpot app's client secret: serves /v1/hooks/hubspot")
    segment_shared_secret: SecretStr | None = Field(
        None, description="shared secret of the Segment webhook destination: serves /v1/hooks/segment"
    )
    segment_events: dict[str, str] = Field(
        default_factory=dict,
        description="JSON: Segment track event name -> meaning (lead.created, lead.qualified:mql, ..., deal.won); "
        "empty: the defaults of docs/api.md",
    )
    segment_identify_as_lead: bool = Field(True, description="a Segment identify call creates its user's lead")
    segment_properties: dict[str, str] = Field(
        default_factory=dict, description="JSON: contract field -> Segment property/trait name, where not the field's own"
    )
    salesforce_outbound_token: SecretStr | None = Field(
        None, description="secret token ending the Outbound Message endpoint URL: serves /v1/hooks/salesforce/outbound/<token>"
    )
    salesforce_org_id: str | None = Field(
        None, description="the Salesforce org (15- or 18-character id) whose Outbound Messages that hook takes"
    )
    form_secret: SecretStr | None = Field(None, description="secret of the form-tool webhook: serves /v1/hooks/form")
    form_fields: dict[str, str] = Field(
        default_factory=dict, description="JSON: contract field -> form submission field, where not the default"
    )
    hubspot_mql_stages: str = Field(
        "marketingqualifiedlead", description="comma-separated HubSpot lifecycle stages (internal names or labels) that mean mql"
    )
    hubspot_sql_stages: str = Field("salesqualifiedlead", description="comma-separated HubSpot lifecycle stages that mean sql")
    hubspot_customer_stages: str = Field(
        "customer", description="comma-separated HubSpot lifecycle stages that mean a customer (contacts without deals)"
    )
    hubspot_disqualified_stages: str = Field("", description="comma-separated HubSpot lifecycle stages that mean disqualified")
    hubspot_disqualified_statuses: str = Field(
        "UNQUALIFIED", description="comma-separated HubSpot Lead Status values that mean disqualified"
    )
    hubspot_won_deal_stages: str = Field("closedwon", description="comma-separated HubSpot deal stages that mean won")
    hubspot_lost_deal_stages: str = Field("closedlost", description="comma-separated HubSpot deal stages that mean lost")
    salesforce_mql_statuses: str = Field("MQL,Marketing Qualified", description="comma-separated Salesforce Lead Status values that mean mql")
    salesforce_sql_statuses: str = Field(
        "Qualified,SQL,Sales Qualified", description="comma-separated Salesforce Lead Status values that mean sql"
    )
    salesforce_disqualified_statuses: str = Field(
        "Unqualified,Closed - Not Converted", description="comma-separated Salesforce Lead Status values that mean disqualified"
    )
    salesforce_contacted_statuses: str = Field(
        "Working - Contacted",
        description="comma-separated Salesforce Lead Status values whose first entry, in a LeadHistory extract, is the first touch",
    )
    salesforce_won_stages: str = Field("Closed Won", description="comma-separated Salesforce Opportunity StageName values that mean won")
    salesforce_lost_stages: str = Field("Closed Lost", description="comma-separated Salesforce Opportunity StageName values that mean lost")
    salesforce_lead_field: str = Field(
        "Lead_Id__c", description="Opportunity field that holds its lead's Id (Salesforce has none of its own)"
    )
    as_of: date | None = Field(None, description="pins day T for windows and cohorts (UTC today if unset)")
    topic_partitions: int = Field(6, description="partitions of the topics `stack up` creates")
    topic_retention_ms: int = Field(-1, description="retention of the input topics (-1 keeps all, so rebuild works)")
    consumer_group: str = Field("leadpulse", description="Kafka consumer group of the workers")
    key_prefix: str = Field("lp", description="prefix of every Redis key this pipeline writes")
    shards: int = Field(
        0, description="counter shards (Redis hash tags) leads are spread over; 0: 1 on one Redis, 16 on a Redis Cluster"
    )
    lead_retention_days: int = Field(400, description="how long per-lead state is kept after its last change")
    max_segments: int = Field(200, description="distinct segments per dimension; the rest fold into `other`")
    attribute_dimensions: str = Field("", description="comma-separated attribute keys that become dimensions")
    windows: str = Field("7,30,90", description="rolling window lengths in days, comma-separated")
    maturity_ages: str = Field(
        "7,30,90", description="ages N in days of the matured series (converted within N days), comma-separated, 1..365"
    )
    session_timeout_s: float = Field(
        10.0, description="how long a silent worker keeps its partitions before others take them over"
    )
    batch_size: int = Field(
        10000, description="most events per worker batch (one Redis round trip each); a caught-up worker's are smaller"
    )
    batch_wait_ms: int = Field(50, description="longest a worker waits to fill a batch")
    follow_up_sla: str = Field(
        "1d", description="time a lead may wait for its first touch: 30m, 1h, 4h, 1d (business time when hours are set)"
    )
    business_hours: str | None = Field(
        None, description="when the SLA clock runs, e.g. `Mon-Fri 09:00-17:30`; unset: around the clock (24 x 7)"
    )
    business_timezone: str = Field("UTC", description="IANA time zone of LEADPULSE_BUSINESS_HOURS and the holidays")
    business_holidays: str = Field(
        "", description="comma-separated ISO dates (local) on which the SLA clock stops, e.g. 2026-12-25,2026-12-26"
    )
    follow_up_horizon_days: int = Field(30, ge=1, description="leads created in the last N days can be awaiting touch")
    stall_days_mql: int = Field(14, ge=1, description="an MQL without SQL for more than N days is stalled at mql")
    stall_days_sql: int = Field(30, ge=1, description="an SQL without any deal for more than N days is stalled at sql")

    @field_validator("follow_up_sla", "business_hours", "business_timezone", "business_holidays")
    @classmethod
    def _follow_up_settings_parse(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Refused at start-up, naming the variable, rather than when the first lead arrives."""
        if value is not None and value.strip():
            _FOLLOW_UP_PARSERS[info.field_name or ""](value)
        elif info.field_name == "follow_up_sla":
            parse_duration_ms(value or "")
        return value

    @property
    def follow_up_clock(self) -> FollowUpClock:
        """Each lead's touch deadline, from the SLA and the business hours (24 x 7 when unset)."""
        hours = self.business_hours
        calendar = (
            BusinessHours.parse(hours, self.business_timezone, self.business_holidays) if hours and hours.strip() else None
        )
        return FollowUpClock(parse_duration_ms(self.follow_up_sla), calendar)

    @field_validator("maturity_ages")
    @classmethod
    def _ages_are_days_of_a_year(cls, value: str) -> str:
        """The lag counters hold conversions up to 365 days (aggregates.keys.LAG_DAYS)."""
        try:
            ages = [int(a) for a in value.split(",") if a.strip()]
        except ValueError:
            raise ValueError(f"LEADPULSE_MATURITY_AGES must be whole days separated by commas, got {value!r}") from None
        if not ages or not all(1 <= a <= MAX_MATURITY_DAYS for a in ages):
            raise ValueError(f"LEADPULSE_MATURITY_AGES must list days from 1 to {MAX_MATURITY_DAYS}, got {value!r}")
        return value

    @property
    def maturity_days(self) -> tuple[int, ...]:
        return tuple(sorted({int(a) for a in self.maturity_ages.split(",") if a.strip()}))

    @property
    def attribute_keys(self) -> tuple[str, ...]:
        return tuple(k.strip() for k in self.attribute_dimensions.split(",") if k.strip())

    @property
    def window_days(self) -> tuple[int, ...]:
        return tuple(sorted({int(w) for w in self.windows.split(",") if w.strip()}))

    @property
    def kafka_host_port(self) -> tuple[str, int]:
        return self.kafka_brokers[0]

    @property
    def kafka_brokers(self) -> list[tuple[str, int]]:
        """The bootstrap addresses: `stack up` runs one broker on each."""
        brokers = []
        for address in self.kafka_bootstrap.split(","):
            host, _, port = address.strip().rpartition(":")
            brokers.append((host or "127.0.0.1", int(port)))
        return brokers

    @property
    def kafka_tls_dir(self) -> Path:
        """Where `stack up` keeps its CA, certificates and admin secret; clients look for its CA here."""
        return self.home.expanduser().resolve() / "kafka" / "tls"

    @property
    def redis_host_port(self) -> tuple[str, int]:
        url = urlparse(self.redis_url)
        return url.hostname or "127.0.0.1", url.port or 6379

    @property
    def redis_shown(self) -> str:
        """The Redis URL for logs and messages: any password replaced by `***`."""
        url = urlparse(self.redis_url)
        if url.password is None:
            return self.redis_url
        user = f"{url.username}:" if url.username else ":"
        return url._replace(netloc=f"{user}***@{url.hostname}{f':{url.port}' if url.port else ''}").geturl()

    @property
    def redis_connect_url(self) -> str:
        """The URL every Redis client connects with: `redis_url`, trusting the local stack's CA.

        A `rediss://` URL without `ssl_ca_certs` also trusts the CA `stack up` made, when
        there is one (redis-py adds it to the system CAs), as the Kafka clients do.
        """
        url = urlparse(self.redis_url)
        local_ca = self.kafka_tls_dir / "ca.pem"
        if url.scheme != "rediss" or "ssl_ca_certs" in parse_qs(url.query) or not local_ca.is_file():
            return self.redis_url
        query = "&".join(part for part in (url.query, urlencode({"ssl_ca_certs": str(local_ca)})) if part)
        return url._replace(query=query).geturl()

    def today(self) -> date:
        """Day T of the contract: pinned by ``as_of`` or today in UTC."""
        return self.as_of or datetime.now(timezone.utc).date()
