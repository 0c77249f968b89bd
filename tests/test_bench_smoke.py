"""The benchmark still runs: a few hundred mails, every figure reported. No timing asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import PROJECT


def test_bench_completes_and_reports_every_figure(tmp_path: Path) -> None:
    results = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--mails", "100", "--sessions", "10", "--json", str(results)],
        cwd=PROJECT, capture_output=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr.decode()[-2000:]
    report = json.loads(results.read_text())
    assert [rate["name"] for rate in report["rates"]] == [
        "accepted mail/s, 1 per session", "accepted mail/s, 20 per session",
        "processed mail/s, 1 per session", "processed mail/s, 20 per session",
    ]  # fmt: skip
    assert all(rate["bare"] > 0 and rate["gateway"] > 0 and rate["ratio"] > 0 for rate in report["rates"])
    figures = report["figures"]
    assert len(figures) == 8 and all(value == value and value > 0 for value in figures.values())  # no NaN
    assert report["refused"] == 0
    assert b"ratio" in run.stdout and b"daemon peak RSS MB" in run.stdout
