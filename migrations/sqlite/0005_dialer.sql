-- Dialer data: contact lists, contacts, the do-not-call list, campaigns and their attempts
-- (SQLite flavour; the PostgreSQL flavour in ../postgres/ has the same tables). Types as in
-- 0001: ids are 16-byte BLOBs, timestamps RFC 3339 UTC TEXT with a "+00:00" suffix, JSON is TEXT.
-- Local times of the calling window are "HH:MM" text on both backends.

CREATE TABLE contact_lists (
    id             BLOB PRIMARY KEY NOT NULL,
    name           TEXT NOT NULL,
    default_region TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE INDEX contact_lists_by_created ON contact_lists (created_at, id);

CREATE TABLE campaigns (
    id               BLOB PRIMARY KEY NOT NULL,
    name             TEXT NOT NULL,
    list_id          BLOB REFERENCES contact_lists (id),
    trunk            TEXT,
    caller_ids       TEXT NOT NULL DEFAULT '{}',
    dial_mode        TEXT NOT NULL
        CHECK (dial_mode IN ('preview', 'power', 'predictive', 'agentless')),
    amd              TEXT NOT NULL DEFAULT '{}',
    on_machine       TEXT NOT NULL
        CHECK (on_machine IN ('hangup', 'continue', 'voicemail_drop')),
    voicemail_prompt TEXT,
    record           INTEGER NOT NULL DEFAULT 0,
    window_start     TEXT NOT NULL,
    window_end       TEXT NOT NULL,
    default_timezone TEXT NOT NULL,
    max_attempts     INTEGER NOT NULL,
    retry_delays     TEXT NOT NULL DEFAULT '{}',
    rate_per_minute  INTEGER,
    rate_per_hour    INTEGER,
    max_concurrent   INTEGER,
    lines_per_agent  REAL NOT NULL,
    priority         INTEGER NOT NULL DEFAULT 0,
    state            TEXT NOT NULL
        CHECK (state IN ('draft', 'running', 'paused', 'completed', 'archived')),
    status_callback  TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    started_at       TEXT,
    completed_at     TEXT
);
CREATE INDEX campaigns_by_created ON campaigns (created_at, id);
CREATE INDEX campaigns_by_state ON campaigns (state, created_at, id);
CREATE INDEX campaigns_by_list ON campaigns (list_id);

CREATE TABLE contacts (
    id               BLOB PRIMARY KEY NOT NULL,
    list_id          BLOB NOT NULL REFERENCES contact_lists (id) ON DELETE CASCADE,
    phone            TEXT NOT NULL,
    name             TEXT,
    timezone         TEXT,
    priority         INTEGER NOT NULL DEFAULT 0,
    custom           TEXT NOT NULL DEFAULT '{}',
    status           TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'dialing', 'retry', 'done', 'failed', 'dnc', 'skipped')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_due_at      TEXT NOT NULL,
    lease_owner      TEXT,
    lease_expires_at TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    CONSTRAINT contacts_list_phone UNIQUE (list_id, phone)
);
-- The claim walks this index in claim order and stops at the first claimable row.
CREATE INDEX contacts_claim ON contacts (list_id, priority DESC, next_due_at, id)
    WHERE status IN ('pending', 'retry');
CREATE INDEX contacts_by_list ON contacts (list_id, status, id);
CREATE INDEX contacts_by_phone ON contacts (phone);
CREATE INDEX contacts_leased ON contacts (lease_expires_at) WHERE status = 'dialing';

CREATE TABLE dnc (
    phone    TEXT PRIMARY KEY NOT NULL,
    reason   TEXT,
    added_at TEXT NOT NULL
);

CREATE TABLE attempts (
    id          BLOB PRIMARY KEY NOT NULL,
    campaign_id BLOB NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    contact_id  BLOB NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    attempt_no  INTEGER NOT NULL,
    phone       TEXT NOT NULL,
    call_id     BLOB,
    node        TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    ended_at    TEXT,
    outcome     TEXT CHECK (outcome IS NULL OR outcome IN
        ('human', 'machine', 'fax', 'no-answer', 'busy', 'failed', 'abandoned', 'cancelled')),
    amd_verdict TEXT,
    duration_ms INTEGER,
    CONSTRAINT attempts_contact_no UNIQUE (contact_id, attempt_no)
);
CREATE INDEX attempts_by_campaign ON attempts (campaign_id, started_at, id);
CREATE INDEX attempts_open ON attempts (campaign_id, started_at) WHERE ended_at IS NULL;
