"""The log a real `serve` writes: JSON objects a shipper can index, and text that names process and spool id."""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path

from gateway.runtime.logs import JsonFormatter, add_process_and_spool, mail_fields
from tests.conftest import MAILBOX, make_mail, send_blocking, write_config
from tests.support.daemon import start_daemon, wait_for_log


def test_json_lines_carry_process_spool_id_message_id_ticket_outcome_and_rule(tmp_path: Path) -> None:
    daemon = start_daemon(write_config(tmp_path), {"GATEWAY_LOGGING__FORMAT": "json"})
    try:
        send_blocking(daemon.port, make_mail("no imprime", message_id="<uno@empresa.example>"), [MAILBOX])
        first = json.loads(wait_for_log(daemon, rb'"spool_id": 1'))
        auto = make_mail("Fuera de la oficina", message_id="<dos@empresa.example>",
                         extra_headers={"Auto-Submitted": "auto-replied"})  # fmt: skip
        send_blocking(daemon.port, auto, [MAILBOX])
        second = json.loads(wait_for_log(daemon, rb'"spool_id": 2'))
    finally:
        daemon.process.send_signal(signal.SIGTERM)
        daemon.process.wait()
    assert first["level"] == "INFO" and first["process"] == "processor" and first["logger"] == "gateway.desk.pipeline"
    assert first["message_id"] == "uno@empresa.example" and first["ticket"] == "TK-000001"
    assert first["outcome"].startswith("new ticket TK-000001") and first["message"].startswith("inbound 1 <uno@")
    assert first["time"].endswith("+00:00") and "rule" not in first
    assert second["rule"] == "auto_submitted" and second["outcome"].startswith("ignored: auto_reply")


def test_text_lines_name_the_process_and_the_spool_id(tmp_path: Path) -> None:
    daemon = start_daemon(write_config(tmp_path))
    try:
        send_blocking(daemon.port, make_mail("no imprime"), [MAILBOX])
        line = wait_for_log(daemon, rb"inbound 1 ").decode()
        daemon.process.send_signal(signal.SIGTERM)
        last = wait_for_log(daemon, rb"stopped$").decode()
    finally:
        daemon.process.send_signal(signal.SIGTERM)
        daemon.process.wait()
    assert " INFO [processor spool=1] gateway.desk.pipeline: inbound 1 <" in line
    assert " INFO [main] gateway.daemon: stopped" in last


def test_a_header_cannot_forge_a_json_field() -> None:
    record = logging.LogRecord("gateway.desk.pipeline", logging.INFO, __file__, 1, "inbound %d %s", (7, "x"), None)
    for key, value in mail_fields(7, 'a"}\n{"level": "ERROR', "ignored: bulk (rule list_id: x)").items():
        setattr(record, key, value)
    add_process_and_spool(record)
    [line] = JsonFormatter().format(record).splitlines()
    parsed = json.loads(line)
    assert parsed["level"] == "INFO" and parsed["message_id"] == 'a"}\n{"level": "ERROR' and parsed["rule"] == "list_id"
