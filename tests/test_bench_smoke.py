"""The benchmark still runs: a few hundred mails, every figure reported. No timing asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PROJECT

pytestmark = pytest.mark.slow  # each runs the benchmark: tens of seconds on 2 cores


def run_bench(tmp_path: Path, *options: str) -> tuple[dict[str, Any], bytes]:
    """`python -m bench` with these options; its saved report and what it printed."""
    results = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench", *options, "--json", str(results)], cwd=PROJECT, capture_output=True, timeout=300
    )
    assert run.returncode == 0, run.stderr.decode()[-2000:]
    return json.loads(results.read_text()), run.stdout


def test_bench_completes_and_reports_every_figure(tmp_path: Path) -> None:
    report, printed = run_bench(tmp_path, "--mails", "100", "--sessions", "10")
    assert [rate["name"] for rate in report["rates"]] == [
        "accepted mail/s, 1 per session", "accepted mail/s, 20 per session",
        "processed mail/s, 1 per session", "processed mail/s, 20 per session",
    ]  # fmt: skip
    assert all(rate["bare"] > 0 and rate["gateway"] > 0 and rate["ratio"] > 0 for rate in report["rates"])
    figures = report["figures"]
    assert len(figures) == 8 and all(value == value and value > 0 for value in figures.values())  # no NaN
    assert report["refused"] == 0
    assert b"ratio" in printed and b"daemon peak RSS MB" in printed
    cpu = report["cpu_ms_per_mail"]  # each of the daemon's processes, and the bare server's yardstick
    assert {"bare aiosmtpd", "listener", "processor", "relay", "parser worker", "total"} <= set(cpu)
    assert all(cpu[role] > 0 for role in ("bare aiosmtpd", "processor", "parser worker", "total"))
    assert set(report["bare_figures"]) < set(figures) and all(report["bare_figures"].values())


def test_sustained_bench_retries_past_flow_control_and_drains(tmp_path: Path) -> None:
    report, printed = run_bench(tmp_path, "--sustained", "300", "--sessions", "10", "--max-backlog", "30")
    assert report["accepted"] == 300 and report["refused"] == 0
    assert report["figures"]["451 answers retried by the senders"] > 0  # the backlog limit was reached
    *_, (_, accepted, waiting) = report["samples"]
    assert (accepted, waiting) == (300, 0)  # all of it spooled, none left waiting
    assert all(rate["rate"] > 0 for rate in report["rates"][:3])
    assert b"ratio to bare" in printed and b"peak backlog" in printed


def test_drain_bench_reports_empty_and_prefilled_rates(tmp_path: Path) -> None:
    report, printed = run_bench(tmp_path, "--drain", "60", "--tickets", "2000")
    rates = report["rates"]
    assert list(rates) == ["empty database", "2,000 tickets"] and all(rate > 0 for rate in rates.values())
    assert b"ms a mail" in printed
    assert set(report["ratios"]) == set(rates) and report["bare_rate"] > 0
    assert all(cpu["processor"] > 0 and cpu["parser worker"] > 0 for cpu in report["cpu_ms_per_mail"].values())


def test_large_mail_bench_reports_the_peak_of_every_process(tmp_path: Path) -> None:
    report, printed = run_bench(tmp_path, "--large", "--large-mb", "2")  # over the size a worker spills to a file
    assert report["accepted"] == report["senders"] == 10
    by_process = report["peak_rss_mb_by_process"]
    assert {"listener", "processor", "parser worker"} <= set(by_process) and all(by_process.values())
    assert report["peak_rss_at_once_mb"] > 0 and report["peak_rss_mb"] == pytest.approx(sum(by_process.values()))
    assert b"highest total at one moment" in printed


def test_processor_bench_counts_the_statements_a_mail_runs() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.processor", "--mails", "20", "--statements"],
        cwd=PROJECT, capture_output=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr.decode()[-2000:]
    assert b"20 mails: processor CPU" in run.stdout and b"statements a mail in" in run.stdout
    assert b"BEGIN IMMEDIATE" in run.stdout and b"INSERT INTO tickets" in run.stdout


def test_text_bench_reports_both_mails(tmp_path: Path) -> None:
    results = tmp_path / "text.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.text", "--quoted-lines", "200", "--html-mb", "0.1", "--json", str(results)],
        cwd=PROJECT, capture_output=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr.decode()[-2000:]
    report = json.loads(results.read_text())
    assert [name[:3] for name in report] == ["(a)", "(b)"]
    assert all(set(figures) == {"bytes", "parse_s", "text_s", "in_transaction_s"} for figures in report.values())


def test_quotes_bench_prints_the_score_on_the_table() -> None:
    run = subprocess.run([sys.executable, "-m", "bench", "quotes"], cwd=PROJECT, capture_output=True, timeout=120)
    assert run.returncode == 0, run.stderr.decode()[-2000:]
    assert run.stdout.startswith(b"exact ") and b"empty new parts: 0" in run.stdout
