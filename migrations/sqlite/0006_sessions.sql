-- Agent sessions of the dialer (issue 5, "Agent sessions"); SQLite flavour, the PostgreSQL
-- flavour in ../postgres/ has the same tables. Types as in 0001.
--
-- A session row is the stored image of the pure state machine (`dialer::session`): its state,
-- the customer on the call or in wrap-up, and its running totals. `node` is the process that
-- holds the agent's leg; on start-up that node's live sessions are marked paused.

CREATE TABLE agent_sessions (
    id                 BLOB PRIMARY KEY NOT NULL,
    campaign_id        BLOB NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    agent              TEXT NOT NULL,
    state              TEXT NOT NULL
        CHECK (state IN ('connecting', 'available', 'dialing', 'on-call', 'wrap-up', 'paused',
                         'ended')),
    ended_reason       TEXT CHECK (ended_reason IS NULL OR ended_reason IN
        ('agent-unreachable', 'agent-hangup', 'stopped', 'campaign-ended')),
    current_attempt_id BLOB,
    current_contact_id BLOB,
    agent_call_id      BLOB,
    calls              INTEGER NOT NULL DEFAULT 0,
    dispositions       INTEGER NOT NULL DEFAULT 0,
    skipped            INTEGER NOT NULL DEFAULT 0,
    talk_ms            INTEGER NOT NULL DEFAULT 0,
    wrap_up_ms         INTEGER NOT NULL DEFAULT 0,
    node               TEXT NOT NULL,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    ended_at           TEXT
);
CREATE INDEX agent_sessions_by_campaign ON agent_sessions (campaign_id, created_at, id);
CREATE INDEX agent_sessions_live ON agent_sessions (node) WHERE state <> 'ended';

-- The session an attempt was placed for, and the agent's disposition of it.
ALTER TABLE attempts ADD COLUMN session_id BLOB;
ALTER TABLE attempts ADD COLUMN disposition TEXT;
