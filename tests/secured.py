"""A secured local stack of its own, for the tests of TLS, SASL and ACLs.

Its own home and free ports, so the shared test stack stays PLAINTEXT and untouched;
started once per module (one broker JVM, about ten seconds) and stopped after it.
The passwords hold quotes, backslashes and `@` so every place that writes them down
(JAAS, redis.conf, URLs) must quote them right.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import SecretStr

from streams import stack
from streams.settings import Settings
from tests.pipeline import LEADPULSE
from tests.services import free_port

KAFKA_PASSWORD = 'kp-"S3cr\\et@1'
REDIS_PASSWORD = 'rp-S3cr@t"2'
USER = "leadpulse-app"


def secured_settings(home: Path, protocol: str, *, redis_tls: bool = True, **security: Any) -> Settings:
    """Settings of a secured stack in `home`: Kafka with `protocol`, Redis with an ACL user, password and TLS."""
    scheme = "rediss" if redis_tls else "redis"
    redis_url = f"{scheme}://{USER}:{quote(REDIS_PASSWORD, safe='')}@127.0.0.1:{free_port()}/0"
    if protocol.startswith("SASL"):
        security = {"kafka_sasl_username": USER, "kafka_sasl_password": SecretStr(KAFKA_PASSWORD), **security}
    return Settings(
        home=home,
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        kafka_controller_port=free_port(),
        redis_url=redis_url,
        prometheus_port=free_port(),
        alertmanager_port=free_port(),
        exporter_port=free_port(),
        api_port=free_port(),
        kafka_security_protocol=protocol,
        **security,
    )


@contextmanager
def secured_stack(settings: Settings) -> Iterator[Settings]:
    """Kafka and Redis of `settings` up until the block ends."""
    try:
        stack.up(settings, ["kafka", "redis"])
        yield settings
    finally:
        stack.down(settings)


def run_command(args: list[str], env: Mapping[str, str], timeout: float = 60, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """`leadpulse ARGS` with `env`, its output captured as text."""
    return subprocess.run(
        [LEADPULSE, *args], env={**os.environ, **env}, input=stdin.decode() if stdin else None,
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
