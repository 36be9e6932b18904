-- Registrations of agents (PostgreSQL flavour; the SQLite flavour in ../sqlite/ has the same
-- table). One row per user and contact, written by the engine's store writer when the
-- registrar creates, refreshes or removes a binding, and read back at start so that
-- registrations survive a restart. Types as in 0001: ids are native UUID, timestamps
-- TIMESTAMPTZ (UTC, microseconds).

CREATE TABLE registrations (
    id          UUID PRIMARY KEY,
    username    TEXT NOT NULL,
    contact     TEXT NOT NULL,
    source      TEXT NOT NULL,
    transport   TEXT NOT NULL CHECK (transport IN ('udp', 'tcp')),
    expires_at  TIMESTAMPTZ NOT NULL,
    call_id     TEXT NOT NULL,
    cseq        BIGINT NOT NULL,
    user_agent  TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (username, contact)
);
CREATE INDEX registrations_by_created ON registrations (created_at, id);
CREATE INDEX registrations_by_user ON registrations (username, created_at, id);
CREATE INDEX registrations_by_expiry ON registrations (expires_at);
