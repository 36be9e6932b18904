-- Media: recordings, conferences, and the AMD verdict and conference of a call (PostgreSQL
-- flavour; the SQLite flavour in ../sqlite/ has the same tables). Types as in 0001: ids are
-- native UUID, timestamps TIMESTAMPTZ (UTC, microseconds), JSON is JSONB.
--
-- No foreign keys from recordings to calls or conferences: the engine's store writer batches
-- call rows, so a recording row may be written before its call's row commits, and a retention
-- job may delete either side first.

CREATE TABLE recordings (
    id            UUID PRIMARY KEY,
    call_id       UUID,
    conference_id UUID,
    path          TEXT NOT NULL,
    status        TEXT NOT NULL
        CHECK (status IN ('recording', 'paused', 'completed', 'interrupted', 'failed')),
    started_at    TIMESTAMPTZ NOT NULL,
    ended_at      TIMESTAMPTZ,
    duration_ms   BIGINT,
    size_bytes    BIGINT,
    channels      INTEGER NOT NULL,
    sample_rate   INTEGER NOT NULL,
    sha256        TEXT,
    error         TEXT,
    created_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX recordings_by_created ON recordings (created_at, id);
CREATE INDEX recordings_by_call ON recordings (call_id, created_at, id);
CREATE INDEX recordings_by_conference ON recordings (conference_id, created_at, id);
CREATE INDEX recordings_by_status ON recordings (status, created_at, id);

CREATE TABLE conferences (
    id               UUID PRIMARY KEY,
    name             TEXT,
    status           TEXT NOT NULL CHECK (status IN ('waiting', 'active', 'ended')),
    created_at       TIMESTAMPTZ NOT NULL,
    started_at       TIMESTAMPTZ,
    ended_at         TIMESTAMPTZ,
    end_reason       TEXT,
    max_participants INTEGER,
    options          JSONB NOT NULL DEFAULT '{}',
    status_callback  TEXT
);
CREATE INDEX conferences_by_created ON conferences (created_at, id);
CREATE INDEX conferences_by_status ON conferences (status, created_at, id);
CREATE INDEX conferences_by_name ON conferences (name, created_at, id);

-- The AMD verdict name (human, machine_start, ...) has no CHECK: the detector may learn new
-- verdicts, and an old row must never block a newer binary.
ALTER TABLE calls ADD COLUMN amd_result TEXT;
ALTER TABLE calls ADD COLUMN amd_confidence DOUBLE PRECISION;
ALTER TABLE calls ADD COLUMN amd_decision_ms BIGINT;
ALTER TABLE calls ADD COLUMN amd_beep_ms BIGINT;
ALTER TABLE calls ADD COLUMN amd_drop_ms BIGINT;
ALTER TABLE calls ADD COLUMN conference_id UUID;
CREATE INDEX calls_by_conference ON calls (conference_id) WHERE conference_id IS NOT NULL;
