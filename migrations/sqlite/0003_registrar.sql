-- Registrations of agents (SQLite flavour; the PostgreSQL flavour in ../postgres/ has the same
-- table). One row per user and contact, written by the engine's store writer when the
-- registrar creates, refreshes or removes a binding, and read back at start so that
-- registrations survive a restart. Types as in 0001: ids are 16-byte BLOBs, timestamps RFC 3339
-- UTC TEXT with a "+00:00" suffix.

CREATE TABLE registrations (
    id          BLOB PRIMARY KEY NOT NULL,
    username    TEXT NOT NULL,
    contact     TEXT NOT NULL,
    source      TEXT NOT NULL,
    transport   TEXT NOT NULL CHECK (transport IN ('udp', 'tcp')),
    expires_at  TEXT NOT NULL,
    call_id     TEXT NOT NULL,
    cseq        BIGINT NOT NULL,
    user_agent  TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    UNIQUE (username, contact)
);
CREATE INDEX registrations_by_created ON registrations (created_at, id);
CREATE INDEX registrations_by_user ON registrations (username, created_at, id);
CREATE INDEX registrations_by_expiry ON registrations (expires_at);
