-- trunkline schema, SQLite flavour (the PostgreSQL flavour in ../postgres/ has the same tables).
-- Column types: ids are UUIDs stored as 16-byte BLOBs; timestamps are UTC RFC 3339 TEXT written
-- by the application with a fixed "+00:00" suffix, so text order is time order; JSON is TEXT.

CREATE TABLE api_keys (
    id           BLOB PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT
);

CREATE TABLE calls (
    id              BLOB PRIMARY KEY NOT NULL,
    direction       TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    from_addr       TEXT NOT NULL,
    to_addr         TEXT NOT NULL,
    trunk           TEXT,
    sip_call_id     TEXT,
    status          TEXT NOT NULL,
    final_status    TEXT CHECK (final_status IN ('completed', 'busy', 'no-answer', 'failed', 'canceled')),
    created_at      TEXT NOT NULL,
    ringing_at      TEXT,
    answered_at     TEXT,
    ended_at        TEXT,
    duration_ms     INTEGER,
    end_sip_code    INTEGER,
    end_reason      TEXT,
    ended_by        TEXT CHECK (ended_by IN ('caller', 'callee', 'api', 'system')),
    rtp_packets_in  INTEGER NOT NULL DEFAULT 0,
    rtp_packets_out INTEGER NOT NULL DEFAULT 0,
    rtp_packets_lost INTEGER NOT NULL DEFAULT 0,
    rtp_packets_late INTEGER NOT NULL DEFAULT 0,
    rtp_jitter_ms   REAL NOT NULL DEFAULT 0,
    status_callback TEXT,
    metadata        TEXT NOT NULL DEFAULT '{}',
    idempotency_key TEXT,
    api_key_id      BLOB REFERENCES api_keys (id)
);
CREATE INDEX calls_by_created ON calls (created_at, id);
CREATE INDEX calls_by_status ON calls (status, created_at, id);
CREATE INDEX calls_by_sip_call_id ON calls (sip_call_id);

CREATE TABLE idempotency_keys (
    api_key_id   BLOB NOT NULL REFERENCES api_keys (id),
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    call_id      BLOB NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (api_key_id, key)
);

CREATE TABLE events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         BLOB NOT NULL UNIQUE,
    type       TEXT NOT NULL,
    call_id    BLOB,
    payload    TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX events_by_call ON events (call_id, seq);

CREATE TABLE webhook_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        BLOB NOT NULL REFERENCES events (id),
    seq             INTEGER NOT NULL,
    call_id         BLOB,
    url             TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    claim_token     BLOB,
    delivered_at    TEXT,
    last_error      TEXT,
    given_up_at     TEXT,
    UNIQUE (event_id, url)
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at)
    WHERE delivered_at IS NULL AND given_up_at IS NULL;
CREATE INDEX webhook_outbox_order ON webhook_outbox (url, call_id, seq)
    WHERE delivered_at IS NULL AND given_up_at IS NULL;
CREATE INDEX webhook_outbox_claim ON webhook_outbox (claim_token);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
