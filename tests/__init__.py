"""leadpulse's tests: the tree mirrors the product's (tests/streams/ingest/ tests streams/ingest/)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
