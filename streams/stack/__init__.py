"""The local stack: Kafka (KRaft), Redis, Prometheus and Alertmanager as background processes.

`services` says what each one is, `config` renders its configuration from deploy/,
`probes` asks whether it answers, `processes` starts, recognises and stops it, and
`control` is `up`/`down`/`status` over all four; `cli` is `leadpulse stack`.
"""

from streams.stack.control import (
    START_TIMEOUT,
    STOP_TIMEOUT,
    ServiceStatus,
    create_topics,
    down,
    kill_service,
    start_service,
    status,
    up,
)
from streams.stack.errors import StackError
from streams.stack.services import OPTIONAL, SERVICES, TOPICS

__all__ = [
    "OPTIONAL",
    "SERVICES",
    "START_TIMEOUT",
    "STOP_TIMEOUT",
    "TOPICS",
    "ServiceStatus",
    "StackError",
    "create_topics",
    "down",
    "kill_service",
    "start_service",
    "status",
    "up",
]
