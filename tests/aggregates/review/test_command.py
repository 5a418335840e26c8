"""`report --html` to a path it cannot write: one clear line, exit 1, nothing half-written."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from aggregates.review.command import write_atomically
from streams.settings import Settings
from tests.aggregates.review.conftest import LEADPULSE
from tests.services import free_port


def run_html(settings: Settings, path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LEADPULSE_REDIS_URL": settings.redis_url, "LEADPULSE_KEY_PREFIX": settings.key_prefix}
    return subprocess.run([str(LEADPULSE), "report", "--html", str(path), "--as-of", "2026-12-01",
                           "--prometheus", f"http://127.0.0.1:{free_port()}"],
                          env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("where", ["missing directory", "under a file", "a directory"])
def test_an_unwritable_path_is_one_line_of_error_and_exit_1(
    empty: Settings, tmp_path: Path, where: str
) -> None:
    if where == "missing directory":
        path = tmp_path / "nowhere" / "review.html"
    elif where == "under a file":
        (tmp_path / "notes.txt").write_text("")
        path = tmp_path / "notes.txt" / "review.html"
    else:
        path = tmp_path
    run = run_html(empty, path)
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot write the report to {path}")
    assert "--html" in lines[0]
    assert [p.name for p in tmp_path.rglob("*.html")] == [] and not list(tmp_path.rglob("*.tmp"))


def test_a_failed_write_leaves_neither_a_file_nor_a_temporary(tmp_path: Path) -> None:
    target = tmp_path / "review.html"
    target.write_text("the previous report")
    with pytest.raises(UnicodeEncodeError):
        write_atomically(target, "half \udcff a report")  # cannot be encoded: fails mid-write
    assert target.read_text() == "the previous report"
    assert [p.name for p in tmp_path.iterdir()] == ["review.html"]


def test_a_written_report_replaces_the_old_one_whole(empty: Settings, tmp_path: Path) -> None:
    target = tmp_path / "review.html"
    target.write_text("the previous report")
    run = run_html(empty, target)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"wrote the November 2026 review to {target}"
    assert target.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["review.html"]
