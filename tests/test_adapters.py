"""The dependencies' private parts our adapters borrow are still there, as we call them.

Each failure names the adapter to re-check: an upgrade of aiosmtpd, aiosqlite or aiosmtplib may rename
or reshape a private method without notice (aiosmtplib a method it never documented), and the
listener, the database or the relay would then fail only under traffic."""

from __future__ import annotations

import asyncio
import inspect
import re
import sqlite3
import threading
import tomllib
from importlib.metadata import version
from pathlib import Path

import aiosqlite
import pytest
from aiosmtpd.smtp import SMTP
from aiosmtplib.protocol import SMTPProtocol
from packaging.requirements import Requirement

from gateway.inbound import aiosmtpd_adapter
from gateway.inbound.aiosmtpd_adapter import AdaptedSMTP
from gateway.outbound import aiosmtplib_adapter
from gateway.storage import aiosqlite_adapter
from gateway.storage.aiosqlite_adapter import run_on_thread

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
RECHECK = "re-check {adapter} (and its upper pin in pyproject.toml) against {package} {installed}"

# What each adapter calls, with the parameters it passes.
AIOSMTPD_METHODS = {
    "_call_handler_hook": ["self", "command", "*args"],
    "_set_post_data_state": ["self"],
    "_reset_timeout": ["self", "duration"],
    "_timeout_cb": ["self"],
}
AIOSQLITE_METHODS = {"_execute": ["self", "fn", "*args", "**kwargs"]}
# Undocumented (the first two public by name): delivery.py puts DATA's body on the wire with
# them, and waits for the transport's flow control between the pieces of a large mail.
AIOSMTPLIB_METHODS = {"write": ["self", "data"], "read_response": ["self", "timeout"], "_drain_helper": ["self"]}
ASYNC_METHODS = ("_call_handler_hook", "_execute", "read_response", "_drain_helper")


def _recheck(adapter: object, package: str) -> str:
    return RECHECK.format(adapter=getattr(adapter, "__file__", adapter), package=package, installed=version(package))


def _parameters(function: object) -> list[str]:
    names = []
    for parameter in inspect.signature(function).parameters.values():  # type: ignore[arg-type]
        prefix = {parameter.VAR_POSITIONAL: "*", parameter.VAR_KEYWORD: "**"}.get(parameter.kind, "")
        names.append(prefix + parameter.name)
    return names


def _pin(package: str) -> Requirement:
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    return next(Requirement(text) for text in dependencies if Requirement(text).name == package)


@pytest.mark.parametrize(
    ("package", "adapter"),
    [("aiosmtpd", aiosmtpd_adapter), ("aiosqlite", aiosqlite_adapter), ("aiosmtplib", aiosmtplib_adapter)],
)
def test_the_installed_version_is_inside_our_pin_with_an_upper_bound(package, adapter):
    pin = _pin(package)
    assert any(spec.operator in ("<", "<=", "==", "~=") for spec in pin.specifier), (
        f"pyproject.toml must bound {package} from above: {adapter.__file__} borrows its internals"
    )
    assert pin.specifier.contains(version(package), prereleases=True), (
        f"{package} {version(package)} is outside {pin}: " + _recheck(adapter, package)
    )


@pytest.mark.parametrize(
    ("owner", "methods", "package", "adapter"),
    [
        (SMTP, AIOSMTPD_METHODS, "aiosmtpd", aiosmtpd_adapter),
        (aiosqlite.Connection, AIOSQLITE_METHODS, "aiosqlite", aiosqlite_adapter),
        (SMTPProtocol, AIOSMTPLIB_METHODS, "aiosmtplib", aiosmtplib_adapter),
    ],
)
def test_the_borrowed_methods_take_what_we_pass(owner, methods, package, adapter):
    for name, expected in methods.items():
        method = getattr(owner, name, None)
        assert callable(method), f"{owner.__qualname__}.{name} is gone: " + _recheck(adapter, package)
        assert _parameters(method) == expected, (
            f"{owner.__qualname__}.{name}{inspect.signature(method)} is not ({', '.join(expected)}): "
            + _recheck(adapter, package)
        )
    for name in methods:
        assert inspect.iscoroutinefunction(getattr(owner, name)) == (name in ASYNC_METHODS), (
            f"{owner.__qualname__}.{name} changed between sync and async: " + _recheck(adapter, package)
        )


async def test_a_live_aiosmtpd_session_has_the_stream_and_writer_we_borrow():
    sessions: list[AdaptedSMTP] = []

    class Handler:
        pass

    def factory() -> AdaptedSMTP:
        sessions.append(AdaptedSMTP(Handler(), hostname="adapter.test"))
        return sessions[-1]

    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        assert (await reader.readline()).startswith(b"220 adapter.test")
        [session] = sessions
        recheck = _recheck(aiosmtpd_adapter, "aiosmtpd")
        assert isinstance(session.stream, asyncio.StreamReader), "SMTP._reader is not a StreamReader: " + recheck
        session.write_now(b"250 written by the adapter\r\n")  # SMTP._writer
        assert await reader.readline() == b"250 written by the adapter\r\n", "SMTP._writer did not write: " + recheck
        session.restart_idle_timer()
        session.end_data()
        assert session.envelope is not None, "SMTP._set_post_data_state left no envelope: " + recheck
    finally:
        writer.close()
        server.close()
        await server.wait_closed()


async def test_a_call_runs_on_aiosqlites_own_thread_with_its_sqlite3_connection(tmp_path):
    connection = await aiosqlite.connect(tmp_path / "adapter.db")
    try:
        seen = await run_on_thread(connection, lambda conn: (conn, threading.get_ident()))
    finally:
        await connection.close()
    recheck = _recheck(aiosqlite_adapter, "aiosqlite")
    assert isinstance(seen[0], sqlite3.Connection), "Connection._conn is not a sqlite3.Connection: " + recheck
    assert seen[1] != threading.get_ident(), "Connection._execute did not run the call on its thread: " + recheck


def test_no_module_but_the_adapter_names_what_it_borrows():
    """A borrowed name used elsewhere would break on an upgrade with no test naming it."""
    package = Path(aiosmtpd_adapter.__file__).resolve().parent.parent
    borrowed = {
        Path(aiosmtpd_adapter.__file__).resolve(): aiosmtpd_adapter.BORROWED,
        Path(aiosqlite_adapter.__file__).resolve(): tuple(name.split(".")[-1] for name in aiosqlite_adapter.BORROWED),
        Path(aiosmtplib_adapter.__file__).resolve(): aiosmtplib_adapter.BORROWED,
    }
    offenders = sorted(
        f"{path.relative_to(package.parent)} uses {name}"
        for path in package.rglob("*.py")
        if path.resolve() not in borrowed
        for names in borrowed.values()
        for name in names
        if re.search(rf"\b{re.escape(name)}\b", path.read_text())
    )
    assert offenders == []
