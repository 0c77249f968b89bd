"""What Postfix in front of the gateway needs from its configuration (docs/postfix.md).

`ticket-gateway postfix-maps` prints the mailboxes as a Postfix lookup table, for
`relay_recipient_maps`: Postfix then refuses an unknown recipient at its own RCPT (550
5.1.1 to the sending server) instead of accepting the mail and bouncing it later to a
sender who may be forged (backscatter). `size_warning` tells `check-config` when Postfix
would accept mail the gateway refuses as too large: that mail would bounce after Postfix
took it, where a refusal at Postfix's SMTP door costs nobody anything.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

from gateway.cli import exit_codes
from gateway.settings import Settings

POSTCONF_SECONDS = 10


def add_postfix_commands(commands: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    command(
        "postfix-maps",
        run_postfix_maps,
        "print the mailboxes as a Postfix table for relay_recipient_maps (then run postmap on it)",
        commands,
    )


def recipient_table(settings: Settings) -> str:
    """One `address OK` line per mailbox (postmap(1) source format). Plus forms
    (`soporte+TK-000123.<mac>@`) match their mailbox through Postfix's recipient_delimiter."""
    lines = ["# ticket-gateway postfix-maps: the mailboxes of the gateway's configuration"]
    lines += [f"{address} OK" for address in sorted(settings.our_addresses)]
    return "\n".join(lines) + "\n"


async def run_postfix_maps(settings: Settings, args: argparse.Namespace) -> int:
    print(recipient_table(settings), end="")
    return exit_codes.OK


def size_warning(settings: Settings) -> str | None:
    """A warning when the local Postfix (`postconf`, honouring $MAIL_CONFIG) takes larger
    mail than `[smtp] max_message_size`; None when it does not, or there is no Postfix."""
    # postconf lives in /usr/sbin, which an unprivileged user's PATH often lacks.
    postconf = shutil.which("postconf", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))
    if postconf is None:
        return None
    try:
        answer = subprocess.run(
            [postconf, "-h", "message_size_limit"], capture_output=True, text=True, timeout=POSTCONF_SECONDS
        )
        postfix_limit = int(answer.stdout.strip())
    except (OSError, subprocess.SubprocessError, ValueError):
        return None  # a Postfix we cannot ask is one we cannot judge
    ours = settings.smtp.max_message_size
    if 0 < postfix_limit <= ours:
        return None
    accepted = "mail of any size" if postfix_limit == 0 else f"mail up to {postfix_limit} bytes"
    return (
        f"Postfix's message_size_limit lets in {accepted}, but [smtp] max_message_size is {ours}: "
        f"Postfix would take larger mail and then bounce it; set message_size_limit = {ours} "
        "or lower in main.cf (docs/postfix.md)"
    )
