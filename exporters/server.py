"""`leadpulse exporter`: serve /metrics from a registry holding only the leadpulse collector.

A thin wrapper: a threaded HTTP server (`exporters.wsgi`) renders the registry on each
request, so all the logic is in `exporters.collector` and `exporters.exposition`.
Heavy imports happen inside the command so `leadpulse --help` stays instant.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import click

from streams.settings import Settings

log = logging.getLogger(__name__)

#: A scrape must fail fast rather than hang when Redis stalls: Prometheus gives up on a
#: whole scrape after 10 s by default, and a wedged connection would hold a thread.
REDIS_TIMEOUT_S = 2.0


def serve(settings: Settings, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT, then close the Redis and Kafka clients."""
    from prometheus_client import CollectorRegistry, ProcessCollector

    from aggregates.connect import redis_client
    from exporters.collector import LeadpulseCollector
    from exporters.lag import EndOffsets
    from exporters.wsgi import start_server
    from streams.kafka.clients import client_options

    client = redis_client(settings, timeout_s=REDIS_TIMEOUT_S)
    end_offsets = EndOffsets(client_options(settings))
    registry = CollectorRegistry()
    registry.register(LeadpulseCollector(client, settings, end_offsets))
    ProcessCollector(registry=registry)  # the exporter's own CPU and memory
    server, thread = start_server(registry, host, port)
    log.info("serving /metrics on %s:%d (Redis %s, key prefix %r)", host, port, settings.redis_shown, settings.key_prefix)
    stop = threading.Event()

    def on_signal(signum: int, _: FrameType | None) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stop.wait()
    server.shutdown()
    thread.join()
    end_offsets.close()
    client.close()


@click.command("exporter")
@click.option("--host", default="0.0.0.0", show_default=True, help="address to listen on (0.0.0.0 suits containers)")
@click.option("--port", type=int, help="port to listen on [LEADPULSE_EXPORTER_PORT, default 9816]")
@click.option("--loglevel", default="info", show_default=True, help="log level")
def exporter_command(host: str, port: int | None, loglevel: str) -> None:
    """Serve /metrics: every series of docs/metrics.md, read from Redis at each scrape.

    Also publishes pipeline health (events, newest event time, Redis and Kafka
    reachability, consumer lag per partition, scrape duration). Settings come from
    LEADPULSE_* variables (Redis URL, key prefix, windows, as-of day, Kafka bootstrap).
    """
    from streams.logs import configure_logging

    configure_logging(loglevel)
    settings = Settings()
    serve(settings, host, port if port is not None else settings.exporter_port)
