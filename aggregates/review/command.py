"""`leadpulse report --html FILE`: read the review, render it, write it atomically."""

from __future__ import annotations

import os
import sys
import tempfile
from datetime import date
from pathlib import Path

from aggregates.connect import redis_client
from aggregates.errors import REDIS_ERRORS
from aggregates.review.periods import PeriodKind
from streams.settings import Settings


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path`: a reader
    (or a crash) never sees half a report, and a failed write leaves no file behind."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def default_prometheus_url(settings: Settings) -> str:
    """The local stack's Prometheus (`LEADPULSE_PROMETHEUS_PORT`)."""
    return f"http://127.0.0.1:{settings.prometheus_port}"


def write_review(settings: Settings, kind: PeriodKind, as_of: date, path: Path, prometheus_url: str) -> int:
    """Exit status 0 with the file written; 1 with one line on stderr saying what to fix."""
    target = path.expanduser().absolute()
    if not target.parent.is_dir() or not os.access(target.parent, os.W_OK) or target.is_dir():
        print(f"error: cannot write the report to {path}: its directory does not exist or is not writable "
              "(choose another --html path)", file=sys.stderr)
        return 1
    # Imported only once the path is known good: matplotlib and Jinja2 take a second to load.
    from aggregates.review.build import read_review
    from aggregates.review.html import render

    try:
        client = redis_client(settings, timeout_s=30)
        review = read_review(client, settings, kind, as_of, prometheus_url)
    except REDIS_ERRORS as exc:
        print(f"error: cannot read the aggregates from Redis at {settings.redis_shown}: {exc} "
              "(check LEADPULSE_REDIS_URL)", file=sys.stderr)
        return 1
    try:
        write_atomically(target, render(review))
    except OSError as exc:
        print(f"error: cannot write the report to {path}: {exc.strerror or exc} (choose another --html path)",
              file=sys.stderr)
        return 1
    print(f"wrote the {review.current.period.label} review to {path}")
    return 0
