"""The IMAP intake's pure decisions, its settings and its token plumbing."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from gateway.inbound.imap import ImapError, access_token
from gateway.inbound.imap_decide import Plan, envelope_sender, literal_of, plan, uid_set, uids_of, uidvalidity_of
from gateway.settings import ConfigError, OAuth2Settings, load_settings
from tests.conftest import PROJECT, run_cli, write_config


@pytest.mark.parametrize(
    ("folder", "spooled", "expected"),
    [
        ([], [], Plan(fetch=[], finish=[])),
        ([3, 1, 2], [], Plan(fetch=[1, 2, 3], finish=[])),
        ([1, 2, 3], [2], Plan(fetch=[1, 3], finish=[2])),  # a crash came between spool and move of 2
        ([5], [1, 2, 5, 9], Plan(fetch=[], finish=[5])),  # moved ones no longer in the folder
    ],
)
def test_plan_fetches_the_unknown_and_only_finishes_the_spooled(
    folder: list[int], spooled: list[int], expected: Plan
) -> None:
    assert plan(folder, spooled) == expected


@pytest.mark.parametrize(
    ("uids", "expected"), [([1], "1"), ([1, 2, 3], "1:3"), ([7, 1, 2, 3, 9, 10], "1:3,7,9:10"), ([4, 4], "4")]
)
def test_uid_set_uses_ranges(uids: list[int], expected: str) -> None:
    assert uid_set(uids) == expected


def test_answers_are_read_as_dovecot_sends_them_through_aioimaplib() -> None:
    select = [b"2 EXISTS", b"OK [UIDVALIDITY 1796068259] UIDs valid", b"[READ-WRITE] Select completed."]
    assert uidvalidity_of(select) == 1796068259
    assert uidvalidity_of([b"Select completed."]) is None
    assert uids_of([b"1 2 17", b"Search completed (0.001 + 0.000 secs)."]) == [1, 2, 17]
    assert uids_of([b"Search completed (0.001 secs)."]) == []
    fetched = [b"1 FETCH (UID 5 BODY[] {9}", bytearray(b"Subject: x"), b")", b"Fetch completed."]
    assert literal_of(fetched) == b"Subject: x"
    assert literal_of([b"Fetch completed."]) is None


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"Return-Path: <ana@cliente.example>\r\nFrom: Otro <otro@x.example>\r\n", "ana@cliente.example"),
        (b"Return-Path: <>\r\nFrom: MAILER-DAEMON <mailer-daemon@x.example>\r\n", ""),  # a bounce stays one
        (b"From: Ana =?utf-8?q?P=C3=A9rez?= <ana@cliente.example>\r\n", "ana@cliente.example"),
        (b"Subject: sin remitente\r\n", ""),
        # A Return-Path in the body is not the header's.
        (b"From: ana@cliente.example\r\n\r\nReturn-Path: <evil@x.example>\r\n", "ana@cliente.example"),
    ],
)
def test_envelope_sender_is_the_return_path_else_the_from(head: bytes, expected: str) -> None:
    assert envelope_sender(head + b"\r\nbody\r\n") == expected


async def test_token_command_prints_the_token(tmp_path: Path) -> None:
    oauth = OAuth2Settings(token_command=(sys.executable, "-c", "print('ya29.token')"))
    assert await access_token(oauth, 30) == "ya29.token"
    failing = OAuth2Settings(token_command=(sys.executable, "-c", "import sys; sys.exit('expired grant')"))
    with pytest.raises(ImapError, match="token_command exited 1: expired grant"):
        await access_token(failing, 30)


@pytest.fixture
def token_endpoint() -> Iterator[tuple[str, list[dict[str, list[str]]]]]:
    """A real HTTP token endpoint on port 0 (RFC 6749 §6), recording each request's form."""
    forms: list[dict[str, list[str]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            forms.append(parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode()))
            body = json.dumps({"access_token": "fresh-token", "expires_in": 3599}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/token", forms
    server.shutdown()


async def test_refresh_token_is_exchanged_at_the_token_url(
    token_endpoint: tuple[str, list[dict[str, list[str]]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, forms = token_endpoint
    monkeypatch.setenv("TEST_REFRESH", "1//refresh")
    monkeypatch.setenv("TEST_SECRET", "client-secret")
    oauth = OAuth2Settings(
        token_url=url, client_id="id.apps", refresh_token_env="TEST_REFRESH", client_secret_env="TEST_SECRET"
    )
    assert await access_token(oauth, 30) == "fresh-token"
    assert forms == [
        {
            "grant_type": ["refresh_token"],
            "client_id": ["id.apps"],
            "refresh_token": ["1//refresh"],
            "client_secret": ["client-secret"],
        }
    ]
    monkeypatch.delenv("TEST_REFRESH")
    with pytest.raises(ImapError, match="environment variable TEST_REFRESH is not set"):
        await access_token(oauth, 30)


IMAP_TABLE = """
[mailboxes.imap]
host = "imap.gmail.com"
username = "soporte.latam@estela.example"
{credential}
"""


def with_imap(tmp_path: Path, credential: str) -> Path:
    path = write_config(tmp_path)
    table = IMAP_TABLE.format(credential=credential)
    path.write_text(path.read_text().replace('language = "es"\n', f'language = "es"\n{table}\n', 1))
    return path


def test_oauth2_settings_load_and_check_config_shows_no_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    credential = (
        '[mailboxes.imap.oauth2]\ntoken_url = "https://oauth2.googleapis.com/token"\n'
        'client_id = "id.apps"\nrefresh_token_env = "GMAIL_REFRESH"\nclient_secret_env = "GMAIL_SECRET"'
    )
    config = with_imap(tmp_path, credential)
    imap = load_settings(config).mailboxes[0].imap
    assert imap is not None and imap.oauth2 is not None and (imap.port, imap.security) == (993, "tls")
    monkeypatch.setenv("GMAIL_REFRESH", "1//very-secret-refresh")
    monkeypatch.setenv("GMAIL_SECRET", "very-secret-client")
    shown = run_cli(config, "check-config")
    assert shown.returncode == 0, shown.stderr
    assert b"GMAIL_REFRESH" in shown.stdout and b"very-secret" not in shown.stdout


@pytest.mark.parametrize(
    ("credential", "problem"),
    [
        ("", "give password_env or an [oauth2] table"),
        ('password_env = "P"\n[mailboxes.imap.oauth2]\ntoken_command = ["t"]', "give password_env or an [oauth2]"),
        ('[mailboxes.imap.oauth2]\ntoken_url = "https://x.example/token"', "go together"),
        ('[mailboxes.imap.oauth2]\ntoken_command = ["t"]\nclient_id = "c"', "not both"),
    ],
)
def test_imap_credentials_are_one_of_password_or_oauth2(tmp_path: Path, credential: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=r"mailboxes\.0\.imap") as raised:
        load_settings(with_imap(tmp_path, credential))
    assert problem in str(raised.value)


def test_the_example_imap_block_loads_once_uncommented_and_every_key_is_explained(tmp_path: Path) -> None:
    lines = (PROJECT / "config.example.toml").read_text().splitlines()
    start = lines.index("# [mailboxes.imap]")
    block = [line for line in lines[start:] if line.startswith("#")]
    block = block[: next(i for i, line in enumerate(block) if "refresh_token_env" in line) + 1]
    for index, line in enumerate(block):
        if "=" in line and not line.startswith("## "):
            assert block[index - 1].startswith("## ") or "=" in block[index - 1], f"unexplained: {line!r}"
    uncommented = [line[2:] for line in block if not line.startswith("## ")]
    text = "\n".join(line for line in uncommented if not line.startswith("token_command"))
    config = tmp_path / "config.toml"
    config.write_text(f'[[mailboxes]]\naddress = "soporte.latam@estela.example"\n{text}\n')
    imap = load_settings(config).mailboxes[0].imap
    assert imap is not None and imap.oauth2 is not None and imap.host == "imap.gmail.com"
    assert load_settings(PROJECT / "config.example.toml").mailboxes[0].imap is None  # `serve` connects nowhere
