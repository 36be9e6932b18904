-- Media: recordings, conferences, and the AMD verdict and conference of a call (SQLite flavour;
-- the PostgreSQL flavour in ../postgres/ has the same tables). Types as in 0001: ids are 16-byte
-- BLOBs, timestamps RFC 3339 UTC TEXT with a "+00:00" suffix, JSON is TEXT.
--
-- No foreign keys from recordings to calls or conferences: the engine's store writer batches
-- call rows, so a recording row may be written before its call's row commits, and a retention
-- job may delete either side first.

CREATE TABLE recordings (
    id            BLOB PRIMARY KEY NOT NULL,
    call_id       BLOB,
    conference_id BLOB,
    path          TEXT NOT NULL,
    status        TEXT NOT NULL
        CHECK (status IN ('recording', 'paused', 'completed', 'interrupted', 'failed')),
    started_at    TEXT NOT NULL,
    ended_at      TEXT,
    duration_ms   INTEGER,
    size_bytes    INTEGER,
    channels      INTEGER NOT NULL,
    sample_rate   INTEGER NOT NULL,
    sha256        TEXT,
    error         TEXT,
    created_at    TEXT NOT NULL
);
CREATE INDEX recordings_by_created ON recordings (created_at, id);
CREATE INDEX recordings_by_call ON recordings (call_id, created_at, id);
CREATE INDEX recordings_by_conference ON recordings (conference_id, created_at, id);
CREATE INDEX recordings_by_status ON recordings (status, created_at, id);

CREATE TABLE conferences (
    id               BLOB PRIMARY KEY NOT NULL,
    name             TEXT,
    status           TEXT NOT NULL CHECK (status IN ('waiting', 'active', 'ended')),
    created_at       TEXT NOT NULL,
    started_at       TEXT,
    ended_at         TEXT,
    end_reason       TEXT,
    max_participants INTEGER,
    options          TEXT NOT NULL DEFAULT '{}',
    status_callback  TEXT
);
CREATE INDEX conferences_by_created ON conferences (created_at, id);
CREATE INDEX conferences_by_status ON conferences (status, created_at, id);
CREATE INDEX conferences_by_name ON conferences (name, created_at, id);

-- The AMD verdict name (human, machine_start, ...) has no CHECK: the detector may learn new
-- verdicts, and an old row must never block a newer binary.
ALTER TABLE calls ADD COLUMN amd_result TEXT;
ALTER TABLE calls ADD COLUMN amd_confidence REAL;
ALTER TABLE calls ADD COLUMN amd_decision_ms INTEGER;
ALTER TABLE calls ADD COLUMN amd_beep_ms INTEGER;
ALTER TABLE calls ADD COLUMN amd_drop_ms INTEGER;
ALTER TABLE calls ADD COLUMN conference_id BLOB;
CREATE INDEX calls_by_conference ON calls (conference_id) WHERE conference_id IS NOT NULL;
