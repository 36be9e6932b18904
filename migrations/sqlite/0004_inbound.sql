-- Inbound calls: outcome markers, missed calls with their follow-up, cool-downs and opt-outs
-- (SQLite flavour; the PostgreSQL flavour in ../postgres/ has the same tables).
--
-- `missed_calls.call_id` is UNIQUE: the row, the `call.missed` event and the follow-up are
-- written in one transaction, so a call is missed (and followed up) at most once whoever
-- tries again (a retry, the sweeper after a restart).

CREATE TABLE inbound_calls (
    call_id     BLOB PRIMARY KEY NOT NULL,
    number      TEXT NOT NULL,
    caller      TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    outcome     TEXT CHECK (outcome IN ('answered', 'missed')),
    agent       TEXT,
    decided_at  TEXT
);
CREATE INDEX inbound_calls_undecided ON inbound_calls (started_at) WHERE outcome IS NULL;

CREATE TABLE missed_calls (
    id                BLOB PRIMARY KEY NOT NULL,
    call_id           BLOB NOT NULL UNIQUE,
    number            TEXT NOT NULL,
    caller            TEXT NOT NULL,
    reason            TEXT NOT NULL CHECK (reason IN
        ('caller-hangup', 'no-answer', 'busy', 'no-agents', 'closed', 'restart')),
    ring_ms           INTEGER NOT NULL,
    voicemail_id      BLOB,
    event_id          BLOB NOT NULL,
    followup_state    TEXT NOT NULL CHECK (followup_state IN ('none', 'pending', 'suppressed')),
    followup_reason   TEXT CHECK (followup_reason IN ('cooldown', 'opt-out')),
    followup_event_id BLOB,
    created_at        TEXT NOT NULL
);
CREATE INDEX missed_calls_by_created ON missed_calls (created_at, id);
CREATE INDEX missed_calls_by_caller ON missed_calls (caller, created_at);

CREATE TABLE followup_cooldowns (
    number       TEXT NOT NULL,
    caller       TEXT NOT NULL,
    last_sent_at TEXT NOT NULL,
    PRIMARY KEY (number, caller)
);

CREATE TABLE opt_outs (
    caller     TEXT PRIMARY KEY NOT NULL,
    reason     TEXT,
    created_at TEXT NOT NULL
);
