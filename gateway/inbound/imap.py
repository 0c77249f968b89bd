"""IMAP intake: a mailbox hosted elsewhere (Google Workspace, Microsoft 365, any IMAP
server) read into the same spool the SMTP listener fills.

Guarantee: a message leaves its folder (moved, flagged or deleted) only after it is
committed to the spool together with its mailbox, folder, UIDVALIDITY and UID
(`Spool.add_along`). A crash between the two is finished at the next connection: the
UID is known, the message is only moved, so it is one ticket, never two and never none.
Everything after the spool is the SMTP path's code.

Only this module imports aioimaplib (untyped libraries stay at the edge); the decisions
are in imap_decide.py. Each source's state (connected, last error, last fetch) is kept in
a JSON file beside the database, for `status` (runtime/state_file.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

import aioimaplib

from gateway.clock import timestamp
from gateway.inbound.imap_decide import (
    batches,
    envelope_sender,
    literal_of,
    next_delay,
    plan,
    uid_set,
    uids_of,
    uidvalidity_of,
)
from gateway.inbound.spool import Spool
from gateway.runtime.state_file import IntakeStates
from gateway.settings import ImapSettings, MailboxSettings, OAuth2Settings, Settings

log = logging.getLogger(__name__)

SEEN = "INSERT INTO imap_seen (mailbox, folder, uidvalidity, uid, spool_id) VALUES (?, ?, ?, ?, ?)"
SPOOLED = "SELECT uid FROM imap_seen WHERE mailbox = ? AND folder = ? AND uidvalidity = ? AND uid >= ?"
TOKEN_OUTPUT_BYTES = 64 * 1024
# A message whose fetch ended the connection this often (Dovecot answers an unreadable
# file with BYE) is stored as failed without its bytes, so it cannot stop the folder.
MAX_FETCH_TRIES = 3


class ImapError(Exception):
    """The server refused a step, or a credential could not be had; the session ends."""


class LoginRefusedError(ImapError):
    """Wrong password or token: said at ERROR, as only the operator can fix it."""


async def access_token(oauth: OAuth2Settings, timeout: float) -> str:
    """A current OAuth2 access token: printed by token_command, or refreshed (RFC 6749 §6)."""
    if oauth.token_command:
        process = await asyncio.create_subprocess_exec(
            *oauth.token_command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout)
        if process.returncode != 0 or not out.strip():
            problem = err.decode(errors="replace").strip()[:200] or "no token printed"
            raise ImapError(f"token_command exited {process.returncode}: {problem}")
        return out[:TOKEN_OUTPUT_BYTES].decode().strip()
    return await asyncio.to_thread(_refreshed_token, oauth, timeout)


def _refreshed_token(oauth: OAuth2Settings, timeout: float) -> str:
    form = {
        "grant_type": "refresh_token",
        "client_id": oauth.client_id,
        "refresh_token": _from_environment(oauth.refresh_token_env),
    }
    if oauth.client_secret_env:
        form["client_secret"] = _from_environment(oauth.client_secret_env)
    request = urllib.request.Request(oauth.token_url, data=urllib.parse.urlencode(form).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            token = json.loads(answer.read(TOKEN_OUTPUT_BYTES)).get("access_token")
    except (OSError, ValueError) as error:
        raise ImapError(f"token refresh at {oauth.token_url} failed: {error}") from error
    if not isinstance(token, str) or not token:
        raise ImapError(f"token refresh at {oauth.token_url}: no access_token in the answer")
    return token


def _from_environment(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise ImapError(f"environment variable {name} is not set")
    return value


class ImapSource:
    """One mailbox's folder, read for ever: connect, take what is new, wait (IDLE or poll),
    and on any failure connect again after a growing pause."""

    def __init__(
        self, mailbox: MailboxSettings, spool: Spool, wakeup: Callable[[], None], states: IntakeStates
    ) -> None:
        assert mailbox.imap is not None
        self.mailbox = mailbox
        self.imap: ImapSettings = mailbox.imap
        self.spool = spool
        self.wakeup = wakeup
        self.states = states
        self.name = f"imap:{self.imap.username}@{self.imap.host}/{self.imap.folder}"
        self._delay: float | None = None
        self._outage = False
        self._lost = asyncio.Event()
        self._fetching: tuple[int, int] | None = None  # (UIDVALIDITY, UID) while being fetched
        self._fetch_failures: dict[tuple[int, int], int] = {}

    async def run(self) -> None:
        self.states.update(self.name, connected=False)
        try:
            while True:
                try:
                    await self._session()
                except Exception as error:  # the unit of work is one connection: any failure ends it
                    self._failed(error)
                await asyncio.sleep(self._delay or 0)
        finally:  # stopped: `status` must not show a connection that is gone
            self.states.update(self.name, connected=False)

    def _failed(self, error: Exception) -> None:
        if self._fetching is not None:  # the connection ended during this message's fetch
            self._fetch_failures[self._fetching] = self._fetch_failures.get(self._fetching, 0) + 1
            self._fetching = None
        self.states.update(self.name, connected=False, last_error=str(error) or type(error).__name__)
        self._delay = next_delay(self._delay, self.imap.first_retry_seconds, self.imap.max_retry_seconds)
        if self._outage:  # told once per outage
            log.debug("%s: still failing (%s); next try in %g s", self.name, error, self._delay)
            return
        self._outage = True
        expected = isinstance(error, OSError | TimeoutError | ImapError | aioimaplib.AioImapException)
        level = logging.ERROR if isinstance(error, LoginRefusedError) else logging.WARNING
        log.log(level, "%s: %s; trying again, first in %g s", self.name, error or type(error).__name__,
                self._delay, exc_info=not expected)  # fmt: skip

    def _connected(self) -> None:
        if self._outage:
            log.info("%s: connected again", self.name)
        else:
            log.info("%s: connected", self.name)
        self._outage, self._delay = False, None
        self.states.update(self.name, connected=True, last_error=None)

    async def _session(self) -> None:
        self._lost.clear()
        context = ssl.create_default_context() if self.imap.security == "tls" else None
        client = aioimaplib.IMAP4(
            self.imap.host, self.imap.port, timeout=self.imap.timeout_seconds,
            conn_lost_cb=lambda _: self._lost.set(), ssl_context=context,
        )  # fmt: skip
        try:
            await client.wait_hello_from_server()
            await self._log_in(client)
            uidvalidity = await self._select(client)
            await self._take_new(client, uidvalidity)
            self._connected()  # only a whole round ends an outage: a MOVE refused each time is one outage
            while True:
                await self._wait_for_news(client)
                await self._take_new(client, uidvalidity)
        finally:
            transport = client.protocol.transport
            if transport is not None:
                transport.close()

    async def _log_in(self, client: Any) -> None:
        if self.imap.oauth2 is not None:
            token = await access_token(self.imap.oauth2, self.imap.timeout_seconds)
            response = await self._ask(client.xoauth2(self.imap.username, token))
        else:
            response = await self._ask(client.login(self.imap.username, _from_environment(self.imap.password_env)))
        if response.result != "OK":
            raise LoginRefusedError(f"login refused for {self.imap.username}: {_text(response)}")

    async def _select(self, client: Any) -> int:
        if self.imap.after == "move":
            await self._ask(client.create(self.imap.done_folder))  # "NO [ALREADYEXISTS]" is fine
        response = await self._ask(client.select(self.imap.folder))
        uidvalidity = uidvalidity_of(response.lines) if response.result == "OK" else None
        if uidvalidity is None:
            raise ImapError(f"cannot select {self.imap.folder}: {_text(response)}")
        return uidvalidity

    async def _take_new(self, client: Any, uidvalidity: int) -> None:
        """Finish what a crash left in the spool, then fetch the rest a batch at a time:
        at most one message is in memory, and each batch leaves the folder once stored."""
        criteria = ("UNKEYWORD", self.imap.done_flag) if self.imap.after == "flag" else ("UNDELETED",)
        found = await self._ask(client.uid_search(*criteria, charset=None))
        if found.result != "OK":
            raise ImapError(f"search failed: {_text(found)}")
        uids = uids_of(found.lines)
        if not uids:
            return
        rows = await self.spool.database.fetch_all(
            SPOOLED, (self.mailbox.address, self.imap.folder, uidvalidity, min(uids))
        )
        decided = plan(uids, (row["uid"] for row in rows))
        for batch in batches(decided.finish, self.imap.batch_size):
            log.info("%s: UIDs %s were stored before; finishing them", self.name, uid_set(batch))
            await self._finish(client, batch)
        for batch in batches(decided.fetch, self.imap.batch_size):
            for uid in batch:
                await self._store(client, uidvalidity, uid)
            self.wakeup()
            await self._finish(client, batch)
            self.states.update(self.name, last_fetch_at=timestamp(self.spool.clock.now()))

    async def _store(self, client: Any, uidvalidity: int, uid: int) -> None:
        """One message into the spool with its UID. One the server will not give is stored
        empty as failed, with the reason: it is moved on and never blocks the folder."""
        raw, error = await self._fetch(client, uidvalidity, uid)
        if raw is None:  # expunged by someone else meanwhile: nothing to keep
            return
        along = (SEEN, (self.mailbox.address, self.imap.folder, uidvalidity, uid))
        spool_id = await self.spool.add_along(
            envelope_sender(raw), [self.mailbox.address], self.name, raw, along, error
        )
        log.info("inbound %d: from %s UID %d (%d bytes)%s", spool_id, self.name, uid, len(raw),
                 f", kept as failed: {error}" if error else "")  # fmt: skip

    async def _fetch(self, client: Any, uidvalidity: int, uid: int) -> tuple[bytes | None, str | None]:
        """The message's bytes, or b"" and why it could not be had; None: it is gone."""
        tries = self._fetch_failures.get((uidvalidity, uid), 0)
        if tries >= MAX_FETCH_TRIES:
            return b"", f"IMAP fetch of UID {uid} in {self.imap.folder} ended the connection {tries} times"
        self._fetching = (uidvalidity, uid)
        response = await self._ask(client.uid("fetch", str(uid), "(UID BODY.PEEK[])"))
        self._fetching = None
        if response.result != "OK":
            return b"", f"IMAP fetch of UID {uid} in {self.imap.folder} failed: {_text(response)}"
        return literal_of(response.lines), None

    async def _finish(self, client: Any, uids: list[int]) -> None:
        which = uid_set(uids)
        capabilities = client.protocol.capabilities
        if self.imap.after == "move" and "MOVE" in capabilities:  # RFC 6851
            _ok(await self._ask(client.uid("move", which, self.imap.done_folder)), "move")
            return
        if self.imap.after == "flag":
            _ok(await self._ask(client.uid("store", which, "+FLAGS.SILENT", f"({self.imap.done_flag})")), "flag")
            return
        if self.imap.after == "move":
            _ok(await self._ask(client.uid("copy", which, self.imap.done_folder)), "copy")
        _ok(await self._ask(client.uid("store", which, "+FLAGS.SILENT", r"(\Deleted)")), "delete")
        # UID EXPUNGE (RFC 4315) removes only ours; a plain EXPUNGE also what a person deleted.
        expunged = client.uid("expunge", which) if "UIDPLUS" in capabilities else client.expunge()
        _ok(await self._ask(expunged), "expunge")

    async def _wait_for_news(self, client: Any) -> None:
        """IDLE until the folder changes or idle_minutes pass (RFC 2177: re-issued before
        the server's 30 minutes); without IDLE, poll_seconds. A lost connection ends it."""
        if "IDLE" not in client.protocol.capabilities:
            try:
                await asyncio.wait_for(self._lost.wait(), self.imap.poll_seconds)
            except TimeoutError:
                return
            raise ImapError("connection lost")
        idle = await self._ask(client.idle_start(timeout=self.imap.idle_minutes * 60))
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            while True:
                push = asyncio.ensure_future(client.wait_server_push(timeout=self.imap.idle_minutes * 60 + 60))
                done, _ = await asyncio.wait({push, lost}, return_when=asyncio.FIRST_COMPLETED)
                if lost in done:
                    push.cancel()
                    raise ImapError("connection lost")
                lines = push.result()
                if lines == aioimaplib.STOP_WAIT_SERVER_PUSH or any(b"EXISTS" in bytes(line) for line in lines):
                    break
        finally:
            lost.cancel()
        client.idle_done()
        await self._ask(asyncio.wait_for(idle, self.imap.timeout_seconds))

    async def _ask(self, call: Awaitable[Any]) -> Any:
        """A command's answer; aioimaplib leaves a command waiting for its timeout when the
        server hangs up (Dovecot says BYE and closes after an internal error), so the
        connection's loss ends the wait at once."""
        answer = asyncio.ensure_future(call)
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            await asyncio.wait({answer, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:  # also when this task is cancelled (the daemon stops)
            lost.cancel()
            if not answer.done():
                answer.cancel()
        if answer.cancelled():
            raise ImapError("connection lost")
        return answer.result()


def _ok(response: Any, what: str) -> None:
    if response.result != "OK":
        raise ImapError(f"{what} failed: {_text(response)}")


def _text(response: Any) -> str:
    return " ".join(bytes(line).decode(errors="replace") for line in response.lines if isinstance(line, bytes))[:300]


def start_imap_sources(settings: Settings, spool: Spool, wakeup: Callable[[], None]) -> list[asyncio.Task[None]]:
    """One task per mailbox with an [mailboxes.imap] table, in the listener's process: a
    source that cannot log in retries on its own and never stops the SMTP listener."""
    states = IntakeStates(settings.database.path, spool.clock)
    sources = [ImapSource(box, spool, wakeup, states) for box in settings.mailboxes if box.imap is not None]
    return [asyncio.create_task(source.run(), name=source.name) for source in sources]
