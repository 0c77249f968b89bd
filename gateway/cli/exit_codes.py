"""The exit statuses of every command, in one place: sysexits.h values where an MTA reads
them (the `ingest` pipe: Postfix and Exim retry on 75 and bounce on the others)."""

OK = 0
NOT_FOUND = 1  # a ticket, a mail or a file that is not there
USAGE = 2  # argparse's own status for a malformed command line
DATAERR = 65  # EX_DATAERR: the mail itself is refused (too large, unreadable)
NOINPUT = 66  # EX_NOINPUT: no database where the configuration points
NOUSER = 67  # EX_NOUSER: not one of our mailboxes
SOFTWARE = 70  # EX_SOFTWARE: the MTA bounces it instead of retrying forever
TEMPFAIL = 75  # EX_TEMPFAIL: the MTA keeps the mail and tries again later
# The database's schema is not this release's (migrations.py): too new (written by a newer
# release) or, for a command that only reads, not yet migrated. Temporary, as for `ingest`
# nothing is lost by waiting: the MTA keeps the mail until the right release runs.
SCHEMA_VERSION = TEMPFAIL
