-- Issue 6: rehearsal evidence, bound to the plan's content hash. Written once, with its journal
-- event, and never changed. Timestamps are INTEGER milliseconds since the Unix epoch.

CREATE TABLE evidence (
    id              TEXT    NOT NULL PRIMARY KEY,
    -- A run has at most one piece of evidence.
    run_id          TEXT    NOT NULL UNIQUE REFERENCES runs (id),
    plan_hash       TEXT    NOT NULL,
    service         TEXT    NOT NULL,
    environment     TEXT    NOT NULL,
    actor           TEXT    NOT NULL,
    started_at_ms   INTEGER NOT NULL,
    finished_at_ms  INTEGER NOT NULL,
    -- JSON array of {step_id, state, attempts, duration_ms, contingency?}.
    steps           TEXT    NOT NULL DEFAULT '[]',
    -- JSON array of contingency ids that ran.
    contingencies   TEXT    NOT NULL DEFAULT '[]',
    -- JSON {command, first, second} of a round trip, or NULL.
    round_trip      TEXT,
    recorded_at_ms  INTEGER NOT NULL,
    CHECK (finished_at_ms >= started_at_ms)
) STRICT;

-- What lint, render and start ask: the newest evidence of this hash in this environment.
CREATE INDEX evidence_by_hash ON evidence (plan_hash, environment, finished_at_ms DESC);
CREATE INDEX evidence_by_service ON evidence (service, finished_at_ms DESC);

CREATE TRIGGER evidence_is_immutable_update BEFORE UPDATE ON evidence
BEGIN
    SELECT RAISE(ABORT, 'evidence is immutable');
END;

CREATE TRIGGER evidence_is_immutable_delete BEFORE DELETE ON evidence
BEGIN
    SELECT RAISE(ABORT, 'evidence is immutable');
END;
