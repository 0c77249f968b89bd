"""The database's tables, in one script run at every open (CREATE … IF NOT EXISTS): the
spool, tickets and their people, messages, files, history, ratings, the outbox, and
the IMAP messages already spooled."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    mail_from TEXT NOT NULL,
    rcpt_tos TEXT NOT NULL,            -- JSON list of envelope recipients
    peer TEXT NOT NULL DEFAULT '',
    size INTEGER NOT NULL,             -- of the raw mail, in bytes
    status TEXT NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'processing', 'done', 'failed', 'ignored')),
    attempts INTEGER NOT NULL DEFAULT 0,
    outcome TEXT,                      -- what the pipeline did with it
    error TEXT,                        -- why it failed, for `inbound list`
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS spool_pending ON spool (status, id)
    WHERE status IN ('queued', 'processing');

-- The bytes exactly as received, apart from the spool row: a row's status changes two or
-- three times, and SQLite rewrites a whole row, overflow pages and all, on each change.
CREATE TABLE IF NOT EXISTS spool_raw (
    id INTEGER PRIMARY KEY REFERENCES spool (id),
    raw BLOB NOT NULL
);

CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO counters (name, value) VALUES ('ticket', 0);

CREATE TABLE IF NOT EXISTS tickets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    number TEXT NOT NULL UNIQUE,
    subject TEXT NOT NULL,
    requester TEXT NOT NULL,
    requester_name TEXT NOT NULL DEFAULT '',
    mailbox TEXT NOT NULL,
    country TEXT NOT NULL DEFAULT '',
    brand TEXT NOT NULL DEFAULT '',
    product TEXT NOT NULL DEFAULT '',
    type TEXT NOT NULL,
    priority TEXT NOT NULL,
    status TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT 'email',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    assignee TEXT,
    incident TEXT,                     -- the engineering incident's sub-status, if tracked
    fiscal_id TEXT,
    fiscal_id_valid INTEGER,           -- 1 valid, 0 kept as written but flagged
    company TEXT NOT NULL DEFAULT '',
    phone TEXT NOT NULL DEFAULT '',
    follow_up_of INTEGER REFERENCES tickets (id),
    first_response_at TEXT,
    resolved_at TEXT,
    closed_at TEXT,
    resolutions INTEGER NOT NULL DEFAULT 0  -- how often it was resolved: a rating rates one
);
CREATE INDEX IF NOT EXISTS tickets_status ON tickets (status, id);
CREATE INDEX IF NOT EXISTS tickets_requester ON tickets (requester, id);
CREATE INDEX IF NOT EXISTS tickets_resolved ON tickets (resolved_at) WHERE status = 'resolved';

-- Every change of a ticket's fields: when, what, from what to what, and who.
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id INTEGER NOT NULL REFERENCES tickets (id),
    at TEXT NOT NULL,
    field TEXT NOT NULL,
    old TEXT,
    new TEXT,
    by TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_ticket ON history (ticket_id, id);

CREATE TABLE IF NOT EXISTS ratings (
    ticket_id INTEGER NOT NULL REFERENCES tickets (id),
    resolution INTEGER NOT NULL,
    helpful INTEGER NOT NULL,
    comment TEXT NOT NULL DEFAULT '',
    at TEXT NOT NULL,
    PRIMARY KEY (ticket_id, resolution)
);

CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS participants (
    ticket_id INTEGER NOT NULL REFERENCES tickets (id),
    address TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    role TEXT NOT NULL CHECK (role IN ('requester', 'cc')),
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'bounced')),
    diagnostic TEXT,                   -- why we stopped mailing a bounced address
    added_at TEXT NOT NULL,
    PRIMARY KEY (ticket_id, address)
);

CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id INTEGER NOT NULL REFERENCES tickets (id),
    spool_id INTEGER REFERENCES spool (id),
    message_id TEXT,
    direction TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    author TEXT NOT NULL,
    author_name TEXT NOT NULL DEFAULT '',
    recipients_to TEXT NOT NULL DEFAULT '[]',
    recipients_cc TEXT NOT NULL DEFAULT '[]',
    subject TEXT NOT NULL DEFAULT '',
    date TEXT,
    body TEXT NOT NULL DEFAULT '',     -- the full text as received
    new_part TEXT,                     -- without quoted history: what notifications show
    html TEXT,
    visibility TEXT NOT NULL DEFAULT 'public' CHECK (visibility IN ('public', 'internal', 'system')),
    note TEXT,                         -- why a message is internal or system, for agents
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_ticket ON messages (ticket_id, id);
CREATE UNIQUE INDEX IF NOT EXISTS messages_inbound_id ON messages (message_id)
    WHERE direction = 'inbound' AND message_id IS NOT NULL;

-- Every Message-ID that belongs to a ticket, received or sent by us: what threading looks up.
CREATE TABLE IF NOT EXISTS thread_ids (
    message_id TEXT PRIMARY KEY,
    ticket_id INTEGER NOT NULL REFERENCES tickets (id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS attachments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_row INTEGER NOT NULL REFERENCES messages (id),
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL REFERENCES blobs (sha256)
);
CREATE INDEX IF NOT EXISTS attachments_message ON attachments (message_row);

-- Every mail the gateway sends, rendered in full, from the transaction that caused it
-- until the relay accepts it (sent) or refuses it for good (failed).
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id INTEGER REFERENCES tickets (id),
    template TEXT NOT NULL,
    message_id TEXT NOT NULL UNIQUE,
    envelope_from TEXT NOT NULL,
    recipients TEXT NOT NULL,          -- JSON list of envelope recipients
    raw BLOB NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    next_attempt_at TEXT NOT NULL,
    sent_at TEXT,
    relay_reply TEXT,                  -- the relay's last answer, success or failure
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (next_attempt_at) WHERE status = 'queued';
-- What went out about a ticket in the last hour: the bound on automatic mail (notify.allow).
CREATE INDEX IF NOT EXISTS outbox_ticket ON outbox (ticket_id, created_at);

-- Attachment contents, stored once however often they are sent.
CREATE TABLE IF NOT EXISTS blobs (
    sha256 TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    content BLOB NOT NULL
);

-- Each IMAP message stored in the spool, committed with its spool row: after a crash
-- before the message left its folder, the UID is known and the message is only moved.
CREATE TABLE IF NOT EXISTS imap_seen (
    mailbox TEXT NOT NULL,
    folder TEXT NOT NULL,
    uidvalidity INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    spool_id INTEGER NOT NULL REFERENCES spool (id),
    PRIMARY KEY (mailbox, folder, uidvalidity, uid)
) WITHOUT ROWID;
"""
