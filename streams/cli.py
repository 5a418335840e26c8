"""The `leadpulse` console script: one group, one subcommand per operator task.

Every subcommand reads `Settings` (LEADPULSE_* environment variables); flags override
them. Commands import their machinery lazily so `leadpulse --help` stays instant.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Final

import click

from streams.kafka.clients import KafkaAccessError, KafkaSettingsError
from streams.logs import configure_logging
from streams.settings import Settings

#: The commands defined in modules of their own, imported only when one runs (or help
#: lists them): `leadpulse publish` need not load the API's aiohttp or the demo's machinery,
#: which took most of a second before its first record.
_ELSEWHERE: Final = {
    "api": "streams.ingest.api:api_command",
    "demo": "streams.demo.run:demo_command",
    "exporter": "exporters.server:exporter_command",
    "generate": "streams.demo.generate:generate_command",
    "import": "streams.imports.command:import_command",
    "publish": "streams.ingest.publish:publish_command",
    "stack": "streams.stack.cli:stack",
}


class _Commands(click.Group):
    """Every command's Kafka settings and access errors end as one `Error:` line and exit 1.

    Commands of other modules load lazily, as click's documentation shows for large groups.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *_ELSEWHERE])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _ELSEWHERE:
            return super().get_command(ctx, cmd_name)
        module, name = _ELSEWHERE[cmd_name].split(":")
        command: click.Command = getattr(importlib.import_module(module), name)
        return command

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (KafkaSettingsError, KafkaAccessError) as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """leadpulse: live lead-to-customer conversion analytics.

    Lead and deal events flow through Kafka; workers keep exact per-cohort and
    per-source counts in Redis; the exporter publishes conversion gauges to Prometheus.
    Settings come from LEADPULSE_* environment variables (see README) and flags.
    """


@main.command()
@click.option("--loglevel", default="info", show_default=True, help="worker log level")
def worker(loglevel: str) -> None:
    """Run a stream-processing worker (start any number; they share the partitions).

    Consumes leadpulse.leads and leadpulse.deals in batches, sends invalid records to
    leadpulse.rejected and applies the rest to Redis exactly once in effect.
    """
    from streams.worker.run import run_worker

    run_worker(Settings(), loglevel)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="every business series of /metrics as a JSON array")
@click.option("--as-of", "as_of", type=click.DateTime(["%Y-%m-%d"]), help="pin day T (default: LEADPULSE_AS_OF or today, UTC)")
@click.option("--html", "html_path", type=click.Path(path_type=Path),
              help="write the review of the latest complete --period as one self-contained HTML file")
@click.option("--period", type=click.Choice(["month", "quarter"]), default="month", show_default=True,
              help="the review period of --html: the latest calendar month or quarter ended by day T")
@click.option("--prometheus", "prometheus_url", metavar="URL",
              help="Prometheus whose ALERTS --html lists (default: the local stack's, LEADPULSE_PROMETHEUS_PORT)")
def report(as_json: bool, as_of: object, html_path: Path | None, period: str, prometheus_url: str | None) -> None:
    """Show the current aggregates: overall and per source, cohorts and windows.

    With --html, write the monthly or quarterly review instead (docs/review.md): the
    headline against the previous period and a year before, why the rate moved (mix
    and rate effects), the cohort heatmap, every source and campaign, and the alerts
    that fired in the period when Prometheus answers.
    """
    settings = Settings()
    if as_of is not None:  # pinned: what depends on the clock is read at the end of that day
        settings = settings.model_copy(update={"as_of": as_of.date()})  # type: ignore[attr-defined]
    day = settings.today()
    if html_path is not None:
        if as_json:
            raise click.UsageError("--json and --html are two different reports: choose one")
        from aggregates.review.command import default_prometheus_url, write_review

        url = prometheus_url or default_prometheus_url(settings)
        sys.exit(write_review(settings, "quarter" if period == "quarter" else "month", day, html_path, url))
    from aggregates.report import print_report

    sys.exit(print_report(settings, day, as_json))


@main.command()
@click.option("--yes", is_flag=True, help="do not ask before clearing the aggregates")
def rebuild(yes: bool) -> None:
    """Clear this pipeline's aggregates (key prefix only) and recompute them from Kafka.

    Refuses while workers of the consumer group are running: stop them first, then
    start them again afterwards; they continue from the offsets the rebuild reached.
    """
    from streams.worker.rebuild import rebuild as run_rebuild

    configure_logging("info")
    settings = Settings()
    if not yes:
        click.confirm(f"Clear every Redis key with prefix {settings.key_prefix!r} and recompute?", abort=True)
    sys.exit(run_rebuild(settings))


@main.command()
@click.option("--sample", type=click.IntRange(min=1), metavar="N",
              help="check about N random leads (their state, hence their contributions) instead of everything")
@click.option("--every", metavar="DURATION", help="run again this long after each run ends (24h, 30m...), until stopped")
def verify(sample: int | None, every: str | None) -> None:
    """Recount the aggregates from the Kafka topics and compare them with the live ones.

    Runs while the workers keep running: each Redis shard is read atomically with the
    offsets it has applied, and the recount (into a scratch key prefix, deleted
    afterwards) stops at exactly those offsets. Prints every differing series (name,
    labels, live, recounted) and lead, then a summary line. Exit 0 when everything
    matches, 1 when something differs, 2 when no verdict was possible (the topics no
    longer hold what the aggregates were built from, Redis or Kafka unreachable). Each
    run's result is published by the exporter as leadpulse_verify_*.
    """
    from streams.demo.simulation import parse_duration
    from streams.worker.verify import exit_on_signals, run_every, run_verify

    settings = Settings()
    try:
        every_s = None if every is None else parse_duration(every)
        if every_s is not None and every_s <= 0:
            raise ValueError(f"{every!r} is no time to wait between runs: give e.g. 24h")
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--every") from exc
    exit_on_signals()
    if every_s is None:
        sys.exit(run_verify(settings, sample))
    run_every(settings, every_s, sample)


if __name__ == "__main__":
    main()
