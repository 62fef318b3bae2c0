-- Issue 3: runs, step states and the hash-chained event journal.
-- Later features (releases, decisions, evidence) add tables in new migrations; never edit this
-- file once released (sqlx checks each applied migration's checksum).
-- Timestamps are INTEGER milliseconds since the Unix epoch, supplied by the caller's clock.

CREATE TABLE runs (
    id              TEXT    NOT NULL PRIMARY KEY,
    plan_hash       TEXT    NOT NULL,
    plan_source     TEXT    NOT NULL,
    kind            TEXT    NOT NULL
        CHECK (kind IN ('adhoc', 'release', 'rehearsal', 'workaround')),
    -- No foreign key yet: the releases table arrives with its own migration.
    release_id      TEXT,
    environment     TEXT    NOT NULL,
    actor           TEXT    NOT NULL,
    state           TEXT    NOT NULL
        CHECK (state IN ('running', 'waiting', 'succeeded', 'failed', 'aborted', 'refused')),
    -- JSON array of checkpoint names reached when the run started.
    checkpoints     TEXT    NOT NULL DEFAULT '[]',
    executor_pid    INTEGER,
    executor_host   TEXT,
    created_at_ms   INTEGER NOT NULL,
    updated_at_ms   INTEGER NOT NULL,
    finished_at_ms  INTEGER,
    CHECK ((executor_pid IS NULL) = (executor_host IS NULL))
) STRICT;

CREATE INDEX runs_by_creation ON runs (created_at_ms DESC, id DESC);
CREATE INDEX runs_by_release ON runs (release_id) WHERE release_id IS NOT NULL;

-- A rowid table on purpose: rowid keeps the order in which steps were first recorded, and an
-- upsert (ON CONFLICT DO UPDATE) keeps the row and so its rowid.
CREATE TABLE step_states (
    run_id          TEXT    NOT NULL REFERENCES runs (id),
    step_id         TEXT    NOT NULL,
    state           TEXT    NOT NULL
        CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'skipped',
                         'waiting_manual', 'in_doubt', 'aborted')),
    attempt         INTEGER NOT NULL CHECK (attempt >= 0),
    started_at_ms   INTEGER,
    finished_at_ms  INTEGER,
    exit_status     INTEGER,
    pgid            INTEGER,
    note            TEXT,
    -- JSON object of captured output values.
    outputs         TEXT    NOT NULL DEFAULT '{}',
    stdout          TEXT    NOT NULL DEFAULT '',
    stderr          TEXT    NOT NULL DEFAULT '',
    updated_at_ms   INTEGER NOT NULL,
    UNIQUE (run_id, step_id)
) STRICT;

-- seq is assigned by the store as max(seq) + 1 inside a BEGIN IMMEDIATE transaction (not
-- AUTOINCREMENT), so a rolled-back append never leaves a gap.
CREATE TABLE events (
    seq             INTEGER NOT NULL PRIMARY KEY CHECK (seq >= 1),
    at_ms           INTEGER NOT NULL,
    kind            TEXT    NOT NULL,
    run_id          TEXT    REFERENCES runs (id),
    step_id         TEXT,
    release_id      TEXT,
    actor           TEXT    NOT NULL,
    -- Canonical JSON (backout_store::canonical_json): exactly what the hash covers.
    payload         TEXT    NOT NULL,
    prev_hash       TEXT    NOT NULL,
    hash            TEXT    NOT NULL UNIQUE
) STRICT;

CREATE INDEX events_by_run ON events (run_id, seq) WHERE run_id IS NOT NULL;
CREATE INDEX events_by_release ON events (release_id, seq) WHERE release_id IS NOT NULL;

-- The journal is append-only. These guards stop accidents, not an attacker with the file (who
-- can drop them); the hash chain is what detects tampering.
CREATE TRIGGER events_are_append_only_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;

CREATE TRIGGER events_are_append_only_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;
