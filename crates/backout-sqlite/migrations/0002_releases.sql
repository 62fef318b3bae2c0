-- Issue 4: releases (one deployment guarded by a plan) and the checkpoints its forward
-- deployment reports. Timestamps are INTEGER milliseconds since the Unix epoch.

CREATE TABLE releases (
    id              TEXT    NOT NULL PRIMARY KEY,
    plan_hash       TEXT    NOT NULL,
    plan_source     TEXT    NOT NULL,
    service         TEXT    NOT NULL,
    version         TEXT    NOT NULL,
    rollback_to     TEXT    NOT NULL,
    environment     TEXT    NOT NULL,
    actor           TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('open', 'closed')),
    opened_at_ms    INTEGER NOT NULL,
    closes_at_ms    INTEGER,
    closed_at_ms    INTEGER,
    close_reason    TEXT,
    CHECK ((state = 'closed') = (closed_at_ms IS NOT NULL))
) STRICT;

CREATE INDEX releases_by_opening ON releases (opened_at_ms DESC, id DESC);

-- rowid order is the order checkpoints were reached.
CREATE TABLE release_checkpoints (
    release_id      TEXT    NOT NULL REFERENCES releases (id),
    name            TEXT    NOT NULL,
    at_ms           INTEGER NOT NULL,
    actor           TEXT    NOT NULL,
    UNIQUE (release_id, name)
) STRICT;
