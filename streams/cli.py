"""The `leadpulse` console script: one group, one subcommand per operator task.

Every subcommand reads `Settings` (LEADPULSE_* environment variables); flags override
them. Commands import their machinery lazily so `leadpulse --help` stays instant.
"""

from __future__ import annotations

import sys
from datetime import date

import click

from exporters.server import exporter_command
from streams.ingest.api import api_command
from streams.demo.run import demo_command
from streams.demo.generate import generate_command
from streams.ingest.publish import publish_command
from streams.kafka.clients import KafkaAccessError, KafkaSettingsError
from streams.logs import configure_logging
from streams.settings import Settings
from streams.stack.cli import stack


class _Commands(click.Group):
    """Every command's Kafka settings and access errors end as one `Error:` line and exit 1."""

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
def report(as_json: bool, as_of: object) -> None:
    """Show the current aggregates: overall and per source, cohorts and windows."""
    from aggregates.report import print_report

    settings = Settings()
    day: date = as_of.date() if as_of is not None else settings.today()  # type: ignore[attr-defined]
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


main.add_command(stack)
main.add_command(publish_command)
main.add_command(api_command)
main.add_command(exporter_command)
main.add_command(generate_command)
main.add_command(demo_command)

if __name__ == "__main__":
    main()
