-- trunkline schema, PostgreSQL flavour (the SQLite flavour in ../sqlite/ has the same tables).
-- Column types: ids are native UUID; timestamps are TIMESTAMPTZ (UTC, microseconds); JSON is JSONB.

CREATE TABLE api_keys (
    id           UUID PRIMARY KEY,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);

CREATE TABLE calls (
    id              UUID PRIMARY KEY,
    direction       TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    from_addr       TEXT NOT NULL,
    to_addr         TEXT NOT NULL,
    trunk           TEXT,
    sip_call_id     TEXT,
    status          TEXT NOT NULL,
    final_status    TEXT CHECK (final_status IN ('completed', 'busy', 'no-answer', 'failed', 'canceled')),
    created_at      TIMESTAMPTZ NOT NULL,
    ringing_at      TIMESTAMPTZ,
    answered_at     TIMESTAMPTZ,
    ended_at        TIMESTAMPTZ,
    duration_ms     BIGINT,
    end_sip_code    INTEGER,
    end_reason      TEXT,
    ended_by        TEXT CHECK (ended_by IN ('caller', 'callee', 'api', 'system')),
    rtp_packets_in  BIGINT NOT NULL DEFAULT 0,
    rtp_packets_out BIGINT NOT NULL DEFAULT 0,
    rtp_packets_lost BIGINT NOT NULL DEFAULT 0,
    rtp_packets_late BIGINT NOT NULL DEFAULT 0,
    rtp_jitter_ms   DOUBLE PRECISION NOT NULL DEFAULT 0,
    status_callback TEXT,
    metadata        JSONB NOT NULL DEFAULT '{}',
    idempotency_key TEXT,
    api_key_id      UUID REFERENCES api_keys (id)
);
CREATE INDEX calls_by_created ON calls (created_at, id);
CREATE INDEX calls_by_status ON calls (status, created_at, id);
CREATE INDEX calls_by_sip_call_id ON calls (sip_call_id);

CREATE TABLE idempotency_keys (
    api_key_id   UUID NOT NULL REFERENCES api_keys (id),
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    call_id      UUID NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (api_key_id, key)
);

CREATE TABLE events (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id         UUID NOT NULL UNIQUE,
    type       TEXT NOT NULL,
    call_id    UUID,
    payload    JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX events_by_call ON events (call_id, seq);

CREATE TABLE webhook_outbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        UUID NOT NULL REFERENCES events (id),
    seq             BIGINT NOT NULL,
    call_id         UUID,
    url             TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    claim_token     UUID,
    delivered_at    TIMESTAMPTZ,
    last_error      TEXT,
    given_up_at     TIMESTAMPTZ,
    UNIQUE (event_id, url)
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at)
    WHERE delivered_at IS NULL AND given_up_at IS NULL;
CREATE INDEX webhook_outbox_order ON webhook_outbox (url, call_id, seq)
    WHERE delivered_at IS NULL AND given_up_at IS NULL;
CREATE INDEX webhook_outbox_claim ON webhook_outbox (claim_token);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
