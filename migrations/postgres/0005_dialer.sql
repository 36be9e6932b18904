-- Dialer data: contact lists, contacts, the do-not-call list, campaigns and their attempts
-- (PostgreSQL flavour; the SQLite flavour in ../sqlite/ has the same tables). Types as in 0001:
-- ids are native UUID, timestamps TIMESTAMPTZ (UTC, microseconds), JSON is JSONB.
-- Local times of the calling window are "HH:MM" text on both backends.

CREATE TABLE contact_lists (
    id             UUID PRIMARY KEY,
    name           TEXT NOT NULL,
    default_region TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX contact_lists_by_created ON contact_lists (created_at, id);

CREATE TABLE campaigns (
    id               UUID PRIMARY KEY,
    name             TEXT NOT NULL,
    list_id          UUID REFERENCES contact_lists (id),
    trunk            TEXT,
    caller_ids       JSONB NOT NULL DEFAULT '{}',
    dial_mode        TEXT NOT NULL
        CHECK (dial_mode IN ('preview', 'power', 'predictive', 'agentless')),
    amd              JSONB NOT NULL DEFAULT '{}',
    on_machine       TEXT NOT NULL
        CHECK (on_machine IN ('hangup', 'continue', 'voicemail_drop')),
    voicemail_prompt TEXT,
    record           BOOLEAN NOT NULL DEFAULT FALSE,
    window_start     TEXT NOT NULL,
    window_end       TEXT NOT NULL,
    default_timezone TEXT NOT NULL,
    max_attempts     BIGINT NOT NULL,
    retry_delays     JSONB NOT NULL DEFAULT '{}',
    rate_per_minute  BIGINT,
    rate_per_hour    BIGINT,
    max_concurrent   BIGINT,
    lines_per_agent  DOUBLE PRECISION NOT NULL,
    priority         BIGINT NOT NULL DEFAULT 0,
    state            TEXT NOT NULL
        CHECK (state IN ('draft', 'running', 'paused', 'completed', 'archived')),
    status_callback  TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    started_at       TIMESTAMPTZ,
    completed_at     TIMESTAMPTZ
);
CREATE INDEX campaigns_by_created ON campaigns (created_at, id);
CREATE INDEX campaigns_by_state ON campaigns (state, created_at, id);
CREATE INDEX campaigns_by_list ON campaigns (list_id);

CREATE TABLE contacts (
    id               UUID PRIMARY KEY,
    list_id          UUID NOT NULL REFERENCES contact_lists (id) ON DELETE CASCADE,
    phone            TEXT NOT NULL,
    name             TEXT,
    timezone         TEXT,
    priority         BIGINT NOT NULL DEFAULT 0,
    custom           JSONB NOT NULL DEFAULT '{}',
    status           TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'dialing', 'retry', 'done', 'failed', 'dnc', 'skipped')),
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_due_at      TIMESTAMPTZ NOT NULL,
    lease_owner      TEXT,
    lease_expires_at TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
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
    added_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE attempts (
    id          UUID PRIMARY KEY,
    campaign_id UUID NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    contact_id  UUID NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    attempt_no  BIGINT NOT NULL,
    phone       TEXT NOT NULL,
    call_id     UUID,
    node        TEXT NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    ended_at    TIMESTAMPTZ,
    outcome     TEXT CHECK (outcome IS NULL OR outcome IN
        ('human', 'machine', 'fax', 'no-answer', 'busy', 'failed', 'abandoned', 'cancelled')),
    amd_verdict TEXT,
    duration_ms BIGINT,
    CONSTRAINT attempts_contact_no UNIQUE (contact_id, attempt_no)
);
CREATE INDEX attempts_by_campaign ON attempts (campaign_id, started_at, id);
CREATE INDEX attempts_open ON attempts (campaign_id, started_at) WHERE ended_at IS NULL;
