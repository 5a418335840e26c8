"""Whether a service answers as itself: a metadata request, a PING, a readiness page.

An open port is not enough: a Kafka still replaying its log or a Redis loading its AOF
accepts connections before it can serve, and something else may hold the port.
"""

from __future__ import annotations

import socket
from typing import Any

from streams.kafka.clients import client_options
from streams.logs import quiet
from streams.settings import Settings
from streams.stack.config import admin_settings
from streams.stack.services import Service


def kafka_admin(settings: Settings, timeout: float) -> Any:
    """An admin client of the stack's super user (on a secured stack) on the configured broker."""
    from kafka import KafkaAdminClient

    ms = int(timeout * 1000)
    options = client_options(admin_settings(settings)).kwargs()
    return KafkaAdminClient(**options, bootstrap_timeout_ms=ms, request_timeout_ms=max(ms, 1000))


def _kafka_answers(settings: Settings, timeout: float) -> bool:
    from kafka.errors import KafkaError

    with quiet("kafka"):
        try:
            # Bootstrapping is a metadata request: it succeeds once the broker serves clients.
            kafka_admin(settings, timeout).close()
        except (KafkaError, OSError):
            return False
    return True


def _redis_answers(settings: Settings, timeout: float) -> bool:
    import redis

    # The URL, not just host and port: a stack Redis with a password or TLS answers only so.
    client = redis.Redis.from_url(settings.redis_connect_url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return bool(client.ping())  # a Redis still loading its AOF answers LOADING: not ready yet
    except redis.RedisError:
        return False
    finally:
        client.close()


def _http_ready(svc: Service, timeout: float) -> bool:
    import http.client
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{svc.address}/-/ready", timeout=timeout) as response:
            return bool(response.status == 200)
    except (OSError, http.client.HTTPException):  # URLError and HTTPError (503 while starting) are OSErrors
        return False


def answers(settings: Settings, svc: Service, timeout: float) -> bool:
    """Whether ``svc`` serves: Kafka and Redis by their protocols, the others by /-/ready."""
    if svc.name.startswith("kafka"):  # each broker by its own address
        return _kafka_answers(settings.model_copy(update={"kafka_bootstrap": svc.address}), timeout)
    if svc.name == "redis":
        return _redis_answers(settings, timeout)
    return _http_ready(svc, timeout)


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
