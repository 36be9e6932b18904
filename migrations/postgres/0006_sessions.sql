-- Agent sessions of the dialer (issue 5, "Agent sessions"); PostgreSQL flavour, the SQLite
-- flavour in ../sqlite/ has the same tables. Types as in 0001.
--
-- A session row is the stored image of the pure state machine (`dialer::session`): its state,
-- the customer on the call or in wrap-up, and its running totals. `node` is the process that
-- holds the agent's leg; on start-up that node's live sessions are marked paused.

CREATE TABLE agent_sessions (
    id                 UUID PRIMARY KEY,
    campaign_id        UUID NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    agent              TEXT NOT NULL,
    state              TEXT NOT NULL
        CHECK (state IN ('connecting', 'available', 'dialing', 'on-call', 'wrap-up', 'paused',
                         'ended')),
    ended_reason       TEXT CHECK (ended_reason IS NULL OR ended_reason IN
        ('agent-unreachable', 'agent-hangup', 'stopped', 'campaign-ended')),
    current_attempt_id UUID,
    current_contact_id UUID,
    agent_call_id      UUID,
    calls              BIGINT NOT NULL DEFAULT 0,
    dispositions       BIGINT NOT NULL DEFAULT 0,
    skipped            BIGINT NOT NULL DEFAULT 0,
    talk_ms            BIGINT NOT NULL DEFAULT 0,
    wrap_up_ms         BIGINT NOT NULL DEFAULT 0,
    node               TEXT NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    ended_at           TIMESTAMPTZ
);
CREATE INDEX agent_sessions_by_campaign ON agent_sessions (campaign_id, created_at, id);
CREATE INDEX agent_sessions_live ON agent_sessions (node) WHERE state <> 'ended';

-- The session an attempt was placed for, and the agent's disposition of it.
ALTER TABLE attempts ADD COLUMN session_id UUID;
ALTER TABLE attempts ADD COLUMN disposition TEXT;
