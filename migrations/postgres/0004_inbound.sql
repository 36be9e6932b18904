-- Inbound calls: outcome markers, missed calls with their follow-up, cool-downs and opt-outs
-- (PostgreSQL flavour; the SQLite flavour in ../sqlite/ has the same tables).
--
-- `missed_calls.call_id` is UNIQUE: the row, the `call.missed` event and the follow-up are
-- written in one transaction, so a call is missed (and followed up) at most once whoever
-- tries again (a retry, the sweeper after a restart).

CREATE TABLE inbound_calls (
    call_id     UUID PRIMARY KEY,
    number      TEXT NOT NULL,
    caller      TEXT NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    outcome     TEXT CHECK (outcome IN ('answered', 'missed')),
    agent       TEXT,
    decided_at  TIMESTAMPTZ
);
CREATE INDEX inbound_calls_undecided ON inbound_calls (started_at) WHERE outcome IS NULL;

CREATE TABLE missed_calls (
    id                UUID PRIMARY KEY,
    call_id           UUID NOT NULL UNIQUE,
    number            TEXT NOT NULL,
    caller            TEXT NOT NULL,
    reason            TEXT NOT NULL CHECK (reason IN
        ('caller-hangup', 'no-answer', 'busy', 'no-agents', 'closed', 'restart')),
    ring_ms           BIGINT NOT NULL,
    voicemail_id      UUID,
    event_id          UUID NOT NULL,
    followup_state    TEXT NOT NULL CHECK (followup_state IN ('none', 'pending', 'suppressed')),
    followup_reason   TEXT CHECK (followup_reason IN ('cooldown', 'opt-out')),
    followup_event_id UUID,
    created_at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX missed_calls_by_created ON missed_calls (created_at, id);
CREATE INDEX missed_calls_by_caller ON missed_calls (caller, created_at);

CREATE TABLE followup_cooldowns (
    number       TEXT NOT NULL,
    caller       TEXT NOT NULL,
    last_sent_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (number, caller)
);

CREATE TABLE opt_outs (
    caller     TEXT PRIMARY KEY,
    reason     TEXT,
    created_at TIMESTAMPTZ NOT NULL
);
