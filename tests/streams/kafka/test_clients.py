"""Every Kafka client of every command through one options builder, proven on a SASL_SSL broker.

The module's own stack runs Kafka with SASL_SSL, SCRAM-SHA-512, the StandardAuthorizer
and only leadpulse's ACLs, and Redis with an ACL user, a password and TLS. The contract
examples go in through `leadpulse publish` and the ingest API, two workers apply them,
and the exporter, `report` and `rebuild` must give exactly the expected series; then
each way of getting the credentials wrong must fail in one line, and no password may
appear in any log, output or `--help`.
"""

from __future__ import annotations

import signal
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from kafka import KafkaConsumer
from kafka.admin import ScramMechanism, UserScramCredentialUpsertion
from kafka.errors import KafkaError
from pydantic import SecretStr

from streams import stack
from streams.cli import main
from streams.ingest.api import create_app
from streams.kafka.clients import KafkaSettingsError, client_options
from streams.kafka.diagnose import diagnose_sync
from streams.events import Event, parse_record
from streams.settings import INPUT_TOPICS, LEADS_TOPIC, Settings
from streams.stack.acls import Grant, grant
from streams.stack.probes import kafka_admin
from tests import contract_examples
from tests.aggregates.reference import assert_same_series
from tests.contract_examples import AS_OF, EXAMPLES
from tests.exporters.test_collector import business, samples, scrape
from tests.monitoring import exporter
from tests.pipeline import Pipeline
from tests.secured import KAFKA_PASSWORD, REDIS_PASSWORD, USER, run_command, secured_settings, secured_stack
from tests.streams.ingest.test_api import NDJSON, SECRET, RunningApi

pytestmark = pytest.mark.integration

FEED = EXAMPLES / "contract-examples.jsonl"
SECRETS = (KAFKA_PASSWORD, REDIS_PASSWORD)


# --- the options themselves (no services) ---------------------------------------------


def test_sasl_without_credentials_is_refused_naming_both_settings() -> None:
    with pytest.raises(KafkaSettingsError, match="LEADPULSE_KAFKA_SASL_USERNAME and LEADPULSE_KAFKA_SASL_PASSWORD"):
        client_options(Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="u"))


def test_plaintext_options_carry_no_tls_and_no_sasl() -> None:
    assert client_options(Settings(kafka_bootstrap="h:1")).kwargs() == {"bootstrap_servers": "h:1", "security_protocol": "PLAINTEXT"}
    assert client_options(Settings()).faust_credentials() is None


def test_sasl_ssl_options_verify_hostnames_and_hand_the_password_only_to_the_client(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path, kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="u", kafka_sasl_password=SecretStr(KAFKA_PASSWORD),
    )  # fmt: skip
    options = client_options(settings)
    kwargs = options.kwargs()
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-256" and kwargs["sasl_plain_password"] == KAFKA_PASSWORD
    assert kwargs["ssl_context"].check_hostname and kwargs["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    credentials = options.faust_credentials()
    assert credentials is not None and credentials.protocol.value == "SASL_SSL"
    for shown in (repr(options), repr(credentials), str(settings), repr(settings)):
        assert KAFKA_PASSWORD not in shown


def test_librdkafka_gets_the_same_security_under_its_own_names(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path, kafka_bootstrap="h:1", kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="u", kafka_sasl_password=SecretStr(KAFKA_PASSWORD),
    )  # fmt: skip
    assert client_options(settings).librdkafka_config() == {
        "bootstrap.servers": "h:1",
        "security.protocol": "SASL_SSL",
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.ca.location": "probe",  # no CA file set and no local stack's: the system's CAs
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": "u",
        "sasl.password": KAFKA_PASSWORD,
    }


def test_an_unreadable_ca_file_names_its_setting(tmp_path: Path) -> None:
    settings = Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=tmp_path / "missing.pem")
    with pytest.raises(KafkaSettingsError, match="LEADPULSE_KAFKA_SSL_CAFILE"):
        client_options(settings)


# --- the secured stack -----------------------------------------------------------------


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    home = tmp_path_factory.mktemp("sasl-ssl-home")
    settings = secured_settings(home, "SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512", as_of=AS_OF)
    with secured_stack(settings) as running:
        yield running


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sasl-ssl-logs")


@pytest.fixture(scope="module")
def pipeline(secured: Settings, logs: Path) -> Iterator[Pipeline]:
    """The contract examples, half through `publish` and half through the API, applied by two workers."""
    pipe = Pipeline(secured, logs, own_group=False)  # the group its ACLs name
    lines = FEED.read_bytes().splitlines(keepends=True)
    half = len(lines) // 2
    published = run_command(["publish", "-"], pipe.env(), stdin=b"".join(lines[:half]))
    (logs / "publish.log").write_text(published.stdout + published.stderr)
    assert published.returncode == 0, published.stderr
    api = RunningApi(create_app(pipe.settings.model_copy(update={"ingest_secret": SecretStr(SECRET)})))
    try:
        answer = api.post("/v1/events", b"".join(lines[half:]), NDJSON)
    finally:
        api.close()
    assert answer.status == 202, answer.body
    pipe.start_worker()
    pipe.start_worker()
    pipe.wait_caught_up(timeout=120)
    pipe.stop_workers()
    yield pipe
    pipe.stop_workers(signal.SIGKILL)


def test_every_record_went_through_publish_and_the_api(pipeline: Pipeline, logs: Path) -> None:
    counted = contract_examples.expected()
    assert (logs / "publish.log").read_text().startswith("sent ")
    records = pipeline.records_up_to(pipeline.stored_offsets())
    assert len(records) == counted["records"] - counted["rejected"]  # the rejected one went to leadpulse.rejected


def test_two_workers_over_sasl_ssl_give_exactly_the_reference_series(pipeline: Pipeline) -> None:
    assert_same_series(pipeline.report(), pipeline.expected())


def test_verify_recounts_over_sasl_ssl_and_tls_redis_and_finds_everything_equal(pipeline: Pipeline) -> None:
    done = run_command(["verify"], pipeline.env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("verify: 0 of ") and " 0 of " in done.stdout
    assert KAFKA_PASSWORD not in done.stdout + done.stderr and REDIS_PASSWORD not in done.stdout + done.stderr


def test_report_carries_the_contract_examples_numbers(pipeline: Pipeline) -> None:
    got = {(s.name, tuple(sorted((k, str(v)) for k, v in s.labels.items()))): s.value for s in pipeline.report()}
    checked = 0
    for want in contract_examples.expected()["series"]:
        key = (want["name"], tuple(sorted((k, str(v)) for k, v in want["labels"].items())))
        if key in got or want["value"] != 0:
            assert got[key] == pytest.approx(want["value"], abs=1e-9), key
            checked += 1
    assert checked > 100


def test_exporter_reads_redis_over_tls_and_lag_over_sasl_ssl(pipeline: Pipeline, logs: Path) -> None:
    env = {**pipeline.env(), "LEADPULSE_AS_OF": AS_OF.isoformat()}
    with exporter(env, logs) as url:
        scraped = samples(scrape(url))
    report = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in pipeline.report()}
    assert business(scraped) == report
    assert scraped[("leadpulse_kafka_up", ())] == 1 and scraped[("leadpulse_redis_up", ())] == 1
    lag = [v for (name, _), v in scraped.items() if name == "leadpulse_consumer_lag_messages"]
    assert len(lag) == 12 and sum(lag) == 0  # every input partition read over SASL_SSL, nothing behind


def test_rebuild_over_sasl_ssl_recomputes_the_same_series(pipeline: Pipeline, logs: Path) -> None:
    before = pipeline.report()
    done = run_command(["rebuild", "--yes"], pipeline.env(), timeout=120)
    (logs / "rebuild.log").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, done.stderr
    assert_same_series(pipeline.report(), before)


# --- failures: one line, the setting to fix, within 30 s, non-zero ---------------------


def _wrong_password(pipeline: Pipeline) -> dict[str, str]:
    return {**pipeline.env(), "LEADPULSE_KAFKA_SASL_PASSWORD": "not-the-password"}


def test_publish_with_a_wrong_password_exits_1_in_one_line_having_sent_nothing(pipeline: Pipeline) -> None:
    started = time.monotonic()
    done = run_command(["publish", str(FEED)], _wrong_password(pipeline))
    assert time.monotonic() - started < 30
    assert done.returncode == 1
    assert done.stdout.strip() == "sent 0, rejected 0"
    error = done.stderr.strip()
    assert len(error.splitlines()) == 1
    assert f"refused the password of user {USER}" in error and "LEADPULSE_KAFKA_SASL_PASSWORD" in error
    assert "not-the-password" not in error


def test_worker_with_a_wrong_password_exits_non_zero_naming_the_setting(pipeline: Pipeline) -> None:
    started = time.monotonic()
    done = run_command(["worker"], _wrong_password(pipeline), timeout=30)
    assert time.monotonic() - started < 30 and done.returncode != 0
    assert "LEADPULSE_KAFKA_SASL_PASSWORD" in done.stderr.strip().splitlines()[-1]


def test_api_with_a_wrong_password_answers_503_and_accepts_nothing(pipeline: Pipeline) -> None:
    wrong = pipeline.settings.model_copy(
        update={"kafka_sasl_password": SecretStr("not-the-password"), "ingest_secret": SecretStr(SECRET)}
    )
    api = RunningApi(create_app(wrong))
    try:
        started = time.monotonic()
        answer = api.post("/v1/events", FEED.read_bytes(), NDJSON)
    finally:
        api.close()
    assert answer.status == 503 and time.monotonic() - started < 30
    assert "accepted" not in answer.json


def test_a_plaintext_client_is_refused_by_the_tls_port(pipeline: Pipeline) -> None:
    env = {**pipeline.env(), "LEADPULSE_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}
    done = run_command(["publish", str(FEED)], env)
    assert done.returncode == 1 and done.stdout.strip() == "sent 0, rejected 0"
    assert "expects TLS" in done.stderr and "LEADPULSE_KAFKA_SECURITY_PROTOCOL" in done.stderr
    plaintext = client_options(pipeline.settings.model_copy(update={"kafka_security_protocol": "PLAINTEXT"}))
    with pytest.raises(KafkaError):
        KafkaConsumer(**plaintext.kwargs(), bootstrap_timeout_ms=3000).topics()


def test_a_worker_outside_its_acls_consumer_group_exits_naming_the_group(pipeline: Pipeline) -> None:
    env = {**pipeline.env(), "LEADPULSE_CONSUMER_GROUP": "not-granted"}
    done = run_command(["worker"], env, timeout=30)
    assert done.returncode != 0
    assert "may not use consumer group 'not-granted'" in done.stderr and "LEADPULSE_CONSUMER_GROUP" in done.stderr


def test_an_authenticated_user_without_the_acls_cannot_read_the_topics(secured: Settings) -> None:
    admin = kafka_admin(secured, 10)
    try:
        upsert = UserScramCredentialUpsertion("outsider", ScramMechanism.SCRAM_SHA_512, "outsider-pw")
        assert admin.alter_user_scram_credentials([upsert]) == {"outsider": None}
    finally:
        admin.close()
    outsider = client_options(
        secured.model_copy(update={"kafka_sasl_username": "outsider", "kafka_sasl_password": SecretStr("outsider-pw")})
    )
    deadline = time.monotonic() + 20  # the new credential reaches the broker's metadata in a moment
    while (cause := diagnose_sync(outsider, INPUT_TOPICS)) is not None and "password" in cause and time.monotonic() < deadline:
        time.sleep(0.5)
    assert cause is not None and "user outsider may not use topic leadpulse.deals, leadpulse.leads" in cause
    consumer = KafkaConsumer(**outsider.kwargs(), group_id=None)
    try:
        assert consumer.topics() == set()  # authenticated, yet it sees none of leadpulse's topics
    finally:
        consumer.close()


def test_publish_refused_one_topic_mid_run_exits_1_saying_how_many_records_were_acknowledged(secured: Settings, tmp_path: Path) -> None:
    """A producer error after partial delivery: a user who may write leadpulse.leads but no other topic."""
    admin = kafka_admin(secured, 10)
    try:
        upsert = UserScramCredentialUpsertion("leads-only", ScramMechanism.SCRAM_SHA_512, "leads-only-pw")
        assert admin.alter_user_scram_credentials([upsert]) == {"leads-only": None}
        grant(admin, "leads-only", [Grant("TOPIC", LEADS_TOPIC, "WRITE")])
    finally:
        admin.close()
    user = {"kafka_sasl_username": "leads-only", "kafka_sasl_password": SecretStr("leads-only-pw")}
    leads_only = client_options(secured.model_copy(update=user))
    deadline = time.monotonic() + 20  # the new credential reaches the broker's metadata in a moment
    while (cause := diagnose_sync(leads_only, [LEADS_TOPIC])) is not None and "password" in cause and time.monotonic() < deadline:
        time.sleep(0.5)
    leads, deals, rejects = _feed_counts()
    refused = deals + rejects
    assert leads and refused  # the contract examples hold deals and rejects too
    env = {**Pipeline(secured, tmp_path).env(), "LEADPULSE_KAFKA_SASL_USERNAME": "leads-only", "LEADPULSE_KAFKA_SASL_PASSWORD": "leads-only-pw"}

    done = run_command(["publish", str(FEED)], env)

    assert done.returncode == 1
    assert done.stdout.strip() == f"sent {leads}, rejected 0, failed {refused}"
    error = done.stderr.strip()
    assert len(error.splitlines()) == 1
    assert f"did not acknowledge {refused} records (first: TOPIC_AUTHORIZATION_FAILED" in error and "may not write there" in error


def _feed_counts() -> tuple[int, int, int]:
    """FEED's leads events, deals events and rejected records."""
    results = [parse_record(raw, int(time.time() * 1000)) for raw in FEED.read_bytes().splitlines() if raw.strip()]
    events = [r for r in results if isinstance(r, Event)]
    leads = sum(e.topic == LEADS_TOPIC for e in events)
    return leads, len(events) - leads, len(results) - len(events)


@pytest.mark.parametrize(("protocol", "security"), [("SSL", {}), ("SASL_PLAINTEXT", {"kafka_sasl_mechanism": "PLAIN"})])
def test_publish_reaches_a_broker_by_client_certificate_and_by_sasl_plain(protocol: str, security: dict[str, str], tmp_path: Path) -> None:
    """librdkafka's options for the two other ways in: the stack's client certificate (SSL) and SASL PLAIN."""
    settings = secured_settings(tmp_path / "home", protocol, **security)
    try:
        stack.up(settings, ["kafka"])
        done = run_command(["publish", str(FEED)], Pipeline(settings, tmp_path).env())
    finally:
        stack.down(settings)
    leads, deals, rejects = _feed_counts()
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"sent {leads + deals}, rejected {rejects}"


# --- secrets ---------------------------------------------------------------------------


def test_no_password_appears_in_any_log_output_or_status(pipeline: Pipeline, secured: Settings, logs: Path) -> None:
    status = run_command(["stack", "status"], pipeline.env())
    assert status.returncode == 0 and "ca.pem" in status.stdout
    texts = {"stack status": status.stdout + status.stderr}
    for directory in (logs, secured.home):
        for path in directory.rglob("*"):
            if path.is_file() and (path.suffix in (".log", ".out") or path.name.endswith(".log")):
                texts[str(path)] = path.read_text(errors="replace")
    assert len(texts) >= 6  # worker, publish, rebuild, exporter logs; Kafka's and Redis's own
    for where, text in texts.items():
        for secret in SECRETS:
            assert secret not in text, f"a password appears in {where}"


def test_no_password_appears_in_any_help(pipeline: Pipeline) -> None:
    runner = CliRunner()
    commands = [[], *([name] for name in main.list_commands(click.Context(main))), ["stack", "up"], ["stack", "status"]]
    for args in commands:
        shown = runner.invoke(main, [*args, "--help"], env=pipeline.env()).output
        assert shown and not any(secret in shown for secret in SECRETS), args
