"""A real Postfix in front of the gateway, configured as docs/postfix.md says.

Each configuration (LMTP to `serve`, pipe to `ingest`) is one private Postfix instance (its
own config, queue and data directories, `postfix -c DIR start`, smtpd on a loopback port)
shared by the tests of that configuration. The gateway-facing lines are read from the
marked blocks of docs/postfix.md, so the documentation is what runs. Mail leaves Postfix
for nowhere else (`default_transport = retry:`): a bounce Postfix makes stays in its queue,
where the tests look for it.

Needs root (Postfix's master runs as root) and Postfix (.ci/run installs it); else skipped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import (
    MAILBOX,
    PROJECT,
    SECOND_MAILBOX,
    crlf,
    free_port,
    make_mail,
    run_cli,
    spool_rows,
    write_config,
)
from tests.support.daemon import Daemon, start_daemon, wait_for_log

POSTFIX_DOC = PROJECT / "docs" / "postfix.md"
GATEWAY_MAX_SIZE = 1_000_000
CUSTOMER = "cliente@empresa.example"
SECONDS = 60  # bound on any one wait for Postfix or the gateway
STALE_MAILBOX = "retirado@estela.example"  # in Postfix's table, no longer in the gateway's config

needs_postfix = pytest.mark.skipif(
    shutil.which("postfix", path=os.environ.get("PATH", "") + ":/usr/sbin") is None or os.geteuid() != 0,
    reason="needs Postfix (.ci/run installs it) and root to start a private instance",
)

# What makes the instance private and closed, around the documented lines.
PRIVATE_MAIN_CF = """\
compatibility_level = 3.6
config_directory = {base}/conf
queue_directory = {base}/queue
data_directory = {base}/data
maillog_file = {base}/maillog
maillog_file_prefixes = {base}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.test.example
mydestination =
# The test's client (127.0.0.1) is an outside sender, not a trusted network.
mynetworks = 127.0.0.2/32
default_transport = retry:no mail leaves this test
alias_maps =
alias_database =
# Deferred mail waits for the test's flush, not a timer.
queue_run_delay = 3600s
minimal_backoff_time = 3600s
maximal_backoff_time = 3600s
"""

PRIVATE_MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
lmtp unix - - n - - lmtp
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""


def documented(kind: str, file: str) -> str:
    """The block of docs/postfix.md marked `<!-- postfix-test: KIND FILE -->`."""
    text = POSTFIX_DOC.read_text()
    found = re.search(rf"<!-- postfix-test: {kind} {re.escape(file)} -->\n```\n(.*?)```", text, re.DOTALL)
    assert found, f"docs/postfix.md has no block marked {kind} {file}"
    return found[1]


def substitute(text: str, replacements: dict[str, str]) -> str:
    for documented_value, ours in replacements.items():
        assert documented_value in text, f"docs/postfix.md no longer shows {documented_value!r}"
        text = text.replace(documented_value, ours)
    return text


def wait_until(condition: Callable[[], object], what: str) -> None:
    """Poll another process's state (Postfix's log or queue) until `condition()` holds."""
    deadline = time.monotonic() + SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {SECONDS} s: {what}")
        time.sleep(0.05)


@dataclass
class Postfix:
    base: Path
    port: int
    config: Path  # the gateway's
    user: str = "root"  # who runs ticket-gateway commands (the pipe's user)
    launcher: list[str] = field(default_factory=lambda: [sys.executable, "-m", "gateway"])
    daemon: Daemon | None = None

    def postfix(self, *args: str) -> subprocess.CompletedProcess[str]:
        command, *rest = args
        return subprocess.run(
            [command, "-c", str(self.base / "conf"), *rest], capture_output=True, text=True, timeout=SECONDS
        )

    def log(self) -> str:
        path = self.base / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_for_log(self, pattern: str) -> re.Match[str]:
        wait_until(lambda: re.search(pattern, self.log()), pattern)
        found = re.search(pattern, self.log())
        assert found
        return found

    def queue(self) -> list[dict[str, object]]:
        listing = self.postfix("postqueue", "-j").stdout
        return [json.loads(line) for line in listing.splitlines() if line.strip()]

    def bounces(self) -> list[dict[str, object]]:
        """Mail Postfix wrote itself (null sender): bounces and delay notices."""
        return [entry for entry in self.queue() if entry["sender"] in ("", "MAILER-DAEMON")]

    def flush(self) -> None:
        assert self.postfix("postqueue", "-f").returncode == 0

    def submit(self, raw: bytes, recipients: list[str], sender: str = CUSTOMER) -> str:
        """One SMTP transaction to Postfix; its queue id."""
        with smtplib.SMTP("127.0.0.1", self.port, timeout=SECONDS) as client:
            client.ehlo("client.example")
            assert client.mail(sender)[0] == 250
            for address in recipients:
                code, reply = client.rcpt(address)
                assert code == 250, (address, code, reply)
            code, reply = client.data(raw)
        assert code == 250, reply
        return reply.decode().rsplit(" ", 1)[1]

    def delivered(self, queue_id: str) -> re.Match[str]:
        return self.wait_for_log(rf"{queue_id}: to=<[^>]*>, relay=\S+,.* status=sent")

    def gateway(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        """A ticket-gateway command, as the gateway's user (a root-owned -shm would lock the pipe out)."""
        return subprocess.run(
            [*self.launcher, "--config", str(self.config), *args],
            capture_output=True,
            timeout=SECONDS,
            user=self.user,
            cwd=self.base,
        )

    def tickets(self) -> list[dict[str, object]]:
        result = self.gateway("tickets", "list", "--json")
        assert result.returncode == 0, result.stderr
        tickets: list[dict[str, object]] = json.loads(result.stdout)
        return tickets


def private_directory() -> Path:
    """Not under tmp_path: pytest's base folder is private to root, and Postfix's own
    daemons (user postfix) and the pipe's user must reach the queue and the database."""
    base = Path(tempfile.mkdtemp(prefix="gateway-postfix-"))
    base.chmod(0o755)
    return base


def start_postfix(site: Postfix, main_cf: str, master_cf: str) -> None:
    conf, data = site.base / "conf", site.base / "data"
    for folder in (conf, data, site.base / "queue"):
        folder.mkdir()
    shutil.chown(data, "postfix")
    (conf / "main.cf").write_text(PRIVATE_MAIN_CF.format(base=site.base) + main_cf)
    (conf / "master.cf").write_text(PRIVATE_MASTER_CF.format(port=site.port) + master_cf)
    started = site.postfix("postfix", "start")
    assert started.returncode == 0, started.stderr + site.log()


def write_recipient_table(site: Postfix, path: Path, extra: str = "") -> None:
    """As docs/postfix.md says: `ticket-gateway postfix-maps > FILE`, then `postmap FILE`."""
    printed = site.gateway("postfix-maps")
    assert printed.returncode == 0, printed.stderr
    path.write_bytes(printed.stdout + extra.encode())
    subprocess.run(["postmap", str(path)], check=True, timeout=SECONDS)


def pipe_python() -> str:
    """An interpreter the pipe's user may run: the venv's may sit under /root."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (sys.executable, f"/usr/bin/python{version}"):
        try:
            if subprocess.run([candidate, "-c", "pass"], user="nobody", capture_output=True).returncode == 0:
                return candidate
        except PermissionError:  # not even executable for that user
            continue
    pytest.skip(f"no python{version} the user nobody may run")


def stop(site: Postfix) -> None:
    if site.daemon is not None and site.daemon.process.poll() is None:
        site.daemon.process.send_signal(signal.SIGTERM)
        site.daemon.process.wait(timeout=SECONDS)
    site.postfix("postfix", "stop")
    shutil.rmtree(site.base, ignore_errors=True)


@pytest.fixture(scope="module")
def lmtp() -> Iterator[Postfix]:
    base = private_directory()
    site = Postfix(base, free_port(), write_config(base, protocol="lmtp", max_size=GATEWAY_MAX_SIZE))
    gateway_port = free_port()
    try:
        write_recipient_table(site, base / "recipients")
        main_cf = substitute(
            documented("both", "main.cf") + documented("lmtp", "main.cf"),
            {
                "/etc/postfix/ticket-gateway-recipients": str(base / "recipients"),
                "26214400": str(GATEWAY_MAX_SIZE),
                "127.0.0.1:2525": f"127.0.0.1:{gateway_port}",
            },
        )
        start_postfix(site, main_cf, "")
        site.daemon = start_gateway(site, gateway_port)
        yield site
    finally:
        stop(site)


def start_gateway(site: Postfix, port: int, protocol: str = "lmtp") -> Daemon:
    environment = {"GATEWAY_SMTP__PORT": str(port), "GATEWAY_SMTP__PROTOCOL": protocol}
    return start_daemon(site.config, environment)


@pytest.fixture(scope="module")
def pipe() -> Iterator[Postfix]:
    base = private_directory()
    shutil.chown(base, "nobody", "nogroup")
    config = write_config(base, max_size=GATEWAY_MAX_SIZE)
    site_packages = next(p for p in sys.path if p.endswith("site-packages"))
    launcher = base / "ticket-gateway"
    launcher.write_text(f'#!/bin/sh\nPYTHONPATH={PROJECT}:{site_packages} exec {pipe_python()} -m gateway "$@"\n')
    launcher.chmod(0o755)
    site = Postfix(base, free_port(), config, user="nobody", launcher=[str(launcher)])
    try:
        write_recipient_table(site, base / "recipients", extra=f"{STALE_MAILBOX} OK\n")
        main_cf = substitute(
            documented("both", "main.cf") + documented("pipe", "main.cf"),
            {"/etc/postfix/ticket-gateway-recipients": str(base / "recipients"), "26214400": str(GATEWAY_MAX_SIZE)},
        )
        master_cf = substitute(
            documented("pipe", "master.cf"),
            {
                "/opt/ticket-gateway/bin/ticket-gateway": str(launcher),
                "/etc/ticket-gateway/config.toml": str(config),
                "user=ticket-gateway": "user=nobody",
            },
        )
        start_postfix(site, main_cf, master_cf)
        yield site
    finally:
        stop(site)


def processed(site: Postfix, message_id: str) -> bytes:
    """The daemon's log line for the mail with this Message-ID, once it is processed."""
    assert site.daemon is not None
    return wait_for_log(site.daemon, rb"inbound \d+ " + re.escape(message_id).encode(), SECONDS)


def mail(subject: str, **headers: str) -> tuple[bytes, str]:
    message_id = f"<postfix-test.{time.monotonic_ns()}@empresa.example>"
    return make_mail(subject, message_id=message_id, extra_headers=headers or None), message_id


# LMTP to `serve`


@needs_postfix
def test_lmtp_mail_from_outside_becomes_a_ticket(lmtp: Postfix) -> None:
    raw, message_id = mail("Factura duplicada")
    queue_id = lmtp.submit(raw, [MAILBOX])
    assert "relay=127.0.0.1" in lmtp.delivered(queue_id)[0]
    processed(lmtp, message_id)
    assert "Factura duplicada" in [ticket["subject"] for ticket in lmtp.tickets()]
    assert lmtp.bounces() == []


@needs_postfix
def test_unknown_recipient_is_refused_at_postfix_rcpt_and_nothing_bounces(lmtp: Postfix) -> None:
    with smtplib.SMTP("127.0.0.1", lmtp.port, timeout=SECONDS) as client:
        client.ehlo("client.example")
        client.mail(CUSTOMER)
        code, reply = client.rcpt("nadie@estela.example")
        # A plus form of a mailbox (a signed reply address) is that mailbox to Postfix.
        plus_code, _ = client.rcpt("soporte.latam+TK-000123.0123456789abcdef@estela.example")
        client.rset()
    assert (code, plus_code) == (550, 250), reply
    assert b"5.1.1" in reply
    assert "nadie@estela.example" not in json.dumps(lmtp.queue())
    assert lmtp.bounces() == []


@needs_postfix
def test_stopped_gateway_makes_postfix_defer_and_a_flush_delivers(lmtp: Postfix) -> None:
    assert lmtp.daemon is not None
    port = lmtp.daemon.port
    lmtp.daemon.process.send_signal(signal.SIGTERM)
    assert lmtp.daemon.process.wait(timeout=SECONDS) == 0
    raw, message_id = mail("Sin servicio")
    queue_id = lmtp.submit(raw, [MAILBOX])
    lmtp.wait_for_log(rf"{queue_id}: to=<{re.escape(MAILBOX)}>.* status=deferred \(connect to .*refused")
    [waiting] = [entry for entry in lmtp.queue() if entry["queue_id"] == queue_id]
    assert waiting["queue_name"] == "deferred"

    lmtp.daemon = start_gateway(lmtp, port)
    lmtp.flush()
    lmtp.delivered(queue_id)
    processed(lmtp, message_id)
    assert "Sin servicio" in [ticket["subject"] for ticket in lmtp.tickets()]
    assert lmtp.queue() == []  # nothing bounced, nothing left


@needs_postfix
def test_gateway_left_in_smtp_mode_answers_lhlo_421_and_postfix_defers(lmtp: Postfix) -> None:
    assert lmtp.daemon is not None
    port = lmtp.daemon.port
    lmtp.daemon.process.send_signal(signal.SIGTERM)
    assert lmtp.daemon.process.wait(timeout=SECONDS) == 0
    lmtp.daemon = start_gateway(lmtp, port, protocol="smtp")  # protocol = "smtp", the example's default
    raw, message_id = mail("Protocolo equivocado")
    queue_id = lmtp.submit(raw, [MAILBOX])
    deferred = lmtp.wait_for_log(rf"{queue_id}: to=<{re.escape(MAILBOX)}>.* status=(deferred|bounced) .*")
    assert "status=deferred" in deferred[0] and 'protocol = "lmtp"' in deferred[0]

    lmtp.daemon.process.send_signal(signal.SIGTERM)
    assert lmtp.daemon.process.wait(timeout=SECONDS) == 0
    lmtp.daemon = start_gateway(lmtp, port)  # the admin fixes the setting
    lmtp.flush()
    lmtp.delivered(queue_id)
    processed(lmtp, message_id)
    assert lmtp.bounces() == []


@needs_postfix
def test_mail_over_the_size_limit_is_refused_by_postfix_not_bounced(lmtp: Postfix) -> None:
    raw, _ = mail("Adjunto grande")
    big = raw + crlf(b"x" * 76 + b"\n") * (GATEWAY_MAX_SIZE // 78 + 100)
    client = smtplib.SMTP("127.0.0.1", lmtp.port, timeout=SECONDS)
    with client, pytest.raises(smtplib.SMTPSenderRefused) as refused:  # SIZE= at MAIL FROM (RFC 1870)
        client.sendmail(CUSTOMER, [MAILBOX], big)
    assert refused.value.smtp_code == 552  # the sender's server keeps the mail and tells its user
    lmtp.wait_for_log(r"NOQUEUE: reject: MAIL from \S+: 552 5\.3\.4 Message size exceeds fixed limit")


@needs_postfix
def test_check_config_warns_when_postfix_takes_larger_mail(lmtp: Postfix, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAIL_CONFIG", str(lmtp.base / "conf"))  # postconf reads this instance
    assert b"message_size_limit" not in run_cli(lmtp.config, "check-config").stderr
    roomy = lmtp.base / "roomy"
    roomy.mkdir()
    (roomy / "main.cf").write_text("message_size_limit = 10240000\n")  # Postfix's default
    monkeypatch.setenv("MAIL_CONFIG", str(roomy))
    checked = run_cli(lmtp.config, "check-config")
    assert checked.returncode == 0
    assert b"warning: Postfix's message_size_limit lets in mail up to 10240000 bytes" in checked.stderr


# Pipe to `ingest`


@needs_postfix
def test_pipe_mail_becomes_a_ticket_and_two_mailboxes_make_one(pipe: Postfix) -> None:
    raw, _ = mail("Consulta por pipe")
    queue_id = pipe.submit(raw, [MAILBOX, SECOND_MAILBOX])
    for address in (MAILBOX, SECOND_MAILBOX):
        pipe.wait_for_log(rf"{queue_id}: to=<{re.escape(address)}>, relay=ticketgateway,.* status=sent")
    assert [ticket["subject"] for ticket in pipe.tickets()].count("Consulta por pipe") == 1
    assert pipe.bounces() == []


@needs_postfix
def test_pipe_read_receipt_from_the_null_sender_opens_no_ticket(pipe: Postfix) -> None:
    raw, _ = mail("Leído: Consulta", **{"Content-Type": "text/plain"})
    queue_id = pipe.submit(raw, [MAILBOX], sender="")
    pipe.wait_for_log(rf"{queue_id}: to=<{re.escape(MAILBOX)}>, relay=ticketgateway,.* status=sent")
    assert "Leído: Consulta" not in [ticket["subject"] for ticket in pipe.tickets()]


@needs_postfix
def test_pipe_exit_67_for_a_mailbox_gone_from_the_config_bounces(pipe: Postfix) -> None:
    raw, _ = mail("Buzón retirado")
    queue_id = pipe.submit(raw, [STALE_MAILBOX])
    bounced = pipe.wait_for_log(rf"{queue_id}: to=<{re.escape(STALE_MAILBOX)}>.* status=(bounced|deferred|sent) .*")
    assert "status=bounced" in bounced[0] and "unknown recipient" in bounced[0]
    assert "Traceback" not in bounced[0]
    pipe.wait_for_log(rf"{queue_id}: sender non-delivery notification")
    assert any(CUSTOMER in json.dumps(entry) for entry in pipe.bounces())
    for entry in pipe.bounces():  # the test's own bounce: out of the way of the next tests
        pipe.postfix("postsuper", "-d", str(entry["queue_id"]))


@needs_postfix
def test_pipe_lock_file_owned_by_root_defers_with_one_line_then_delivers(pipe: Postfix) -> None:
    pipe.tickets()  # the database and its lock file exist, owned by the pipe's user
    lock = pipe.base / "gateway.db.lock"
    shutil.chown(lock, "root", "root")  # an admin ran a command as root
    lock.chmod(0o600)
    raw, _ = mail("Bloqueo ajeno")
    queue_id = pipe.submit(raw, [MAILBOX])
    try:
        deferred = pipe.wait_for_log(rf"{queue_id}: to=<{re.escape(MAILBOX)}>.* status=(deferred|bounced|sent) .*")
    finally:
        shutil.chown(lock, "nobody", "nogroup")  # docs/postfix.md: chown, then postqueue -f
    assert "status=deferred" in deferred[0] and "PermissionError" in deferred[0]
    assert "Traceback" not in deferred[0]
    pipe.flush()
    pipe.wait_for_log(rf"{queue_id}: to=<{re.escape(MAILBOX)}>.* status=sent")
    assert "Bloqueo ajeno" in [ticket["subject"] for ticket in pipe.tickets()]
    assert pipe.queue() == []


@needs_postfix
def test_pipe_unreadable_config_defers(pipe: Postfix) -> None:
    shutil.chown(pipe.config, "root", "root")
    pipe.config.chmod(0o600)
    raw, _ = mail("Configuración ilegible")
    queue_id = pipe.submit(raw, [MAILBOX])
    try:
        deferred = pipe.wait_for_log(rf"{queue_id}: to=<{re.escape(MAILBOX)}>.* status=(deferred|bounced|sent) .*")
    finally:
        shutil.chown(pipe.config, "nobody", "nogroup")
    assert "status=deferred" in deferred[0] and "cannot read configuration file" in deferred[0]
    pipe.flush()
    pipe.wait_for_log(rf"{queue_id}: to=<{re.escape(MAILBOX)}>.* status=sent")
    assert pipe.queue() == []


# `ingest` as the pipe runs it, without Postfix


def test_ingest_takes_several_recipients_after_one_flag_as_one_mail(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = run_cli(
        config, "ingest", "--sender", CUSTOMER, "--recipient", MAILBOX, SECOND_MAILBOX, stdin=make_mail("Dos buzones")
    )
    assert result.returncode == 0, result.stderr
    [row] = spool_rows(tmp_path / "gateway.db")  # one mail, not one per mailbox
    assert row["status"] == "done"


def test_ingest_takes_mailer_daemon_as_the_null_sender(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    receipt = make_mail("Leído: Consulta")
    result = run_cli(config, "ingest", "--sender", "MAILER-DAEMON", "--recipient", MAILBOX, stdin=receipt)
    assert result.returncode == 0, result.stderr
    assert json.loads(run_cli(config, "tickets", "list", "--json").stdout) == []


def test_ingest_malformed_command_line_exits_75_in_one_line(tmp_path: Path) -> None:
    result = run_cli(write_config(tmp_path), "ingest", "--sender", CUSTOMER, "--recipient", stdin=make_mail("x"))
    assert result.returncode == 75
    assert len(result.stderr.decode().strip().splitlines()) == 1
