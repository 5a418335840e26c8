"""`leadpulse stack up|down|status`: the command line over `streams.stack.control`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from streams.logs import configure_logging
from streams.settings import Settings
from streams.kafka.clients import CA_FILE
from streams.stack.config import app_principal
from streams.stack.control import START_TIMEOUT, STOP_TIMEOUT, ServiceStatus, down, status, up
from streams.stack.errors import StackError
from streams.stack.services import SERVICES

_SETTINGS_OPTIONS = (
    click.option("--home", type=click.Path(file_okay=False, path_type=Path), help="data, logs and pid files [LEADPULSE_HOME]"),
    click.option("--kafka-bootstrap", help="broker host:port [LEADPULSE_KAFKA_BOOTSTRAP]"),
    click.option("--kafka-controller-port", type=int, help="KRaft controller port [LEADPULSE_KAFKA_CONTROLLER_PORT]"),
    click.option("--redis-url", help="redis://host:port/db [LEADPULSE_REDIS_URL]"),
    click.option("--prometheus-port", type=int, help="[LEADPULSE_PROMETHEUS_PORT]"),
    click.option("--alertmanager-port", type=int, help="[LEADPULSE_ALERTMANAGER_PORT]"),
    click.option("--exporter-port", type=int, help="port Prometheus scrapes [LEADPULSE_EXPORTER_PORT]"),
)


def _with_settings(command: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(_SETTINGS_OPTIONS):
        command = option(command)
    return command


def _settings(overrides: dict[str, Any]) -> Settings:
    configure_logging("info")
    return Settings(**{key: value for key, value in overrides.items() if value is not None})


def _print_security(settings: Settings) -> None:
    """How clients must connect to a secured stack, and the CA they trust by default; never a password."""
    kafka: str = settings.kafka_security_protocol
    ca = settings.kafka_tls_dir / CA_FILE
    if kafka == "PLAINTEXT" and not settings.redis_url.startswith("rediss:"):
        return
    if kafka.startswith("SASL"):
        kafka += f" ({settings.kafka_sasl_mechanism}, user {app_principal(settings)}, ACLs on)"
    elif kafka == "SSL":
        kafka += f" (client certificate CN={app_principal(settings)}, ACLs on)"
    click.echo(f"Kafka: {kafka}")
    click.echo(f"Redis: {settings.redis_shown}")
    click.echo(f"CA every leadpulse client trusts by default: {_short(ca)}{'' if ca.exists() else ' (made by `stack up`)'}")


def _print_table(statuses: Sequence[ServiceStatus]) -> None:
    from rich.console import Console
    from rich.table import Table

    colours = {"running/ours": "green", "running/external": "cyan", "stopped": "red"}
    table = Table("service", "address", "state", "pid")
    table.add_column("log", overflow="fold")
    for row in statuses:
        state = f"[{colours.get(row.state, 'yellow')}]{row.state}[/]"
        table.add_row(row.name, row.address, state, str(row.pid or ""), _short(row.log))
    Console().print(table)


def _short(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@click.group()
def stack() -> None:
    """Run the local stack: Kafka (KRaft), Redis, and Prometheus and Alertmanager where installed.

    Everything lives under LEADPULSE_HOME (default .leadpulse): rendered configs, data,
    logs and pid files. Settings come from LEADPULSE_* variables; the flags of each
    subcommand override them. Stacks with different homes and ports run side by side.
    """


@stack.command("up")
@_with_settings
@click.option("--service", "-s", "services", multiple=True, type=click.Choice(SERVICES), help="only these (repeatable)")
@click.option("--timeout", type=float, default=START_TIMEOUT, show_default=True, help="seconds to wait for all to answer")
def up_command(services: tuple[str, ...], timeout: float, **overrides: Any) -> None:
    """Start the stack (or what of it is not running) and create the topics.

    Waits until every service answers.

    A service already answering on its port is reused and left alone by `down`.
    Processes keep running after this command exits.
    """
    try:
        settings = _settings(overrides)
        _print_table(up(settings, services or None, timeout))
        _print_security(settings)
    except StackError as error:
        raise click.ClickException(str(error)) from error


@stack.command("down")
@_with_settings
@click.option("--timeout", type=float, default=STOP_TIMEOUT, show_default=True, help="seconds before SIGKILL")
def down_command(timeout: float, **overrides: Any) -> None:
    """Stop what this home started; reused services keep running.

    SIGTERM first, SIGKILL after --timeout seconds.
    """
    try:
        _print_table(down(_settings(overrides), timeout))
    except StackError as error:
        raise click.ClickException(str(error)) from error


@stack.command("status")
@_with_settings
def status_command(**overrides: Any) -> None:
    """Show what runs where, and whether this home started it.

    State is running/ours (started by this home), running/external (something else
    answers on the port), stopped, or not installed.
    """
    try:
        settings = _settings(overrides)
        _print_table(status(settings))
        _print_security(settings)
    except StackError as error:
        raise click.ClickException(str(error)) from error
