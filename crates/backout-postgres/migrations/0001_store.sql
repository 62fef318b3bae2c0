-- The whole store as of issue 8: runs, step states, the hash-chained event journal, releases and
-- their checkpoints, the notification outbox and rehearsal evidence. The same records and rules
-- as backout-sqlite's migrations 0001-0004; never edit this file once released (sqlx checks each
-- applied migration's checksum), add a new one.
--
-- Timestamps are BIGINT milliseconds since the Unix epoch, supplied by the caller's clock.
-- Identifiers use the "C" collation so that `ORDER BY id` is bytewise, as in SQLite, whatever
-- the database's default collation is. JSON is kept as TEXT: event payloads must come back
-- byte for byte as they were hashed (jsonb would reorder keys and renormalize numbers).

CREATE TABLE runs (
    id              TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    plan_hash       TEXT    NOT NULL,
    plan_source     TEXT    NOT NULL,
    kind            TEXT    NOT NULL
        CHECK (kind IN ('adhoc', 'release', 'rehearsal', 'workaround')),
    release_id      TEXT COLLATE "C",
    environment     TEXT    NOT NULL,
    actor           TEXT    NOT NULL,
    state           TEXT    NOT NULL
        CHECK (state IN ('running', 'waiting', 'succeeded', 'failed', 'aborted', 'refused')),
    -- JSON array of checkpoint names reached when the run started.
    checkpoints     TEXT    NOT NULL DEFAULT '[]',
    executor_pid    BIGINT,
    executor_host   TEXT,
    created_at_ms   BIGINT  NOT NULL,
    updated_at_ms   BIGINT  NOT NULL,
    finished_at_ms  BIGINT,
    CHECK ((executor_pid IS NULL) = (executor_host IS NULL))
);

CREATE INDEX runs_by_creation ON runs (created_at_ms DESC, id DESC);
CREATE INDEX runs_by_release ON runs (release_id) WHERE release_id IS NOT NULL;

CREATE TABLE step_states (
    -- The order in which steps were first recorded (SQLite's rowid): an upsert keeps the row
    -- and so its position.
    position        BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id          TEXT COLLATE "C" NOT NULL REFERENCES runs (id),
    step_id         TEXT COLLATE "C" NOT NULL,
    state           TEXT    NOT NULL
        CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'skipped',
                         'waiting_manual', 'in_doubt', 'aborted')),
    attempt         BIGINT  NOT NULL CHECK (attempt >= 0),
    started_at_ms   BIGINT,
    finished_at_ms  BIGINT,
    exit_status     BIGINT,
    pgid            BIGINT,
    note            TEXT,
    -- JSON object of captured output values.
    outputs         TEXT    NOT NULL DEFAULT '{}',
    -- Captured output as UTF-8 bytes: commands may print NUL, which TEXT cannot hold.
    stdout          BYTEA   NOT NULL DEFAULT '',
    stderr          BYTEA   NOT NULL DEFAULT '',
    updated_at_ms   BIGINT  NOT NULL,
    UNIQUE (run_id, step_id)
);

-- seq is assigned by the store as max(seq) + 1 while it holds the journal's advisory lock (not
-- a sequence), so a rolled-back append never leaves a gap and appends are totally ordered.
CREATE TABLE events (
    seq             BIGINT  NOT NULL PRIMARY KEY CHECK (seq >= 1),
    at_ms           BIGINT  NOT NULL,
    kind            TEXT    NOT NULL,
    run_id          TEXT COLLATE "C" REFERENCES runs (id),
    step_id         TEXT COLLATE "C",
    release_id      TEXT COLLATE "C",
    actor           TEXT    NOT NULL,
    -- Canonical JSON (backout_store::canonical_json): exactly what the hash covers.
    payload         TEXT    NOT NULL,
    prev_hash       TEXT    NOT NULL,
    hash            TEXT    NOT NULL UNIQUE
);

CREATE INDEX events_by_run ON events (run_id, seq) WHERE run_id IS NOT NULL;
CREATE INDEX events_by_release ON events (release_id, seq) WHERE release_id IS NOT NULL;
CREATE INDEX events_by_kind ON events (kind, seq);

-- The journal is append-only. These guards stop accidents, not an attacker with the database
-- owner's rights (who can drop them); the hash chain is what detects tampering.
CREATE FUNCTION backout_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% are %', TG_TABLE_NAME, TG_ARGV[0];
END;
$$;

CREATE TRIGGER events_are_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION backout_refuse_change('append-only');
CREATE TRIGGER events_are_append_only_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION backout_refuse_change('append-only');

CREATE TABLE releases (
    id              TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    plan_hash       TEXT    NOT NULL,
    plan_source     TEXT    NOT NULL,
    service         TEXT    NOT NULL,
    version         TEXT    NOT NULL,
    rollback_to     TEXT    NOT NULL,
    environment     TEXT    NOT NULL,
    actor           TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('open', 'closed')),
    opened_at_ms    BIGINT  NOT NULL,
    closes_at_ms    BIGINT,
    closed_at_ms    BIGINT,
    close_reason    TEXT,
    CHECK ((state = 'closed') = (closed_at_ms IS NOT NULL))
);

CREATE INDEX releases_by_opening ON releases (opened_at_ms DESC, id DESC);
CREATE INDEX releases_open ON releases (opened_at_ms, id) WHERE state = 'open';

CREATE TABLE release_checkpoints (
    -- The order checkpoints were reached.
    position        BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    release_id      TEXT COLLATE "C" NOT NULL REFERENCES releases (id),
    name            TEXT    NOT NULL,
    at_ms           BIGINT  NOT NULL,
    actor           TEXT    NOT NULL,
    UNIQUE (release_id, name)
);

-- The notification outbox: a delivery is inserted in the transaction of the journal event it
-- announces, then claimed, attempted and settled by dispatchers.
CREATE TABLE deliveries (
    -- Increasing in the order deliveries were written (they are written under the journal lock).
    id                  BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_seq           BIGINT  NOT NULL REFERENCES events (seq),
    -- The event's release, or the release of the event's run.
    release_id          TEXT COLLATE "C",
    run_id              TEXT COLLATE "C",
    channel             TEXT    NOT NULL,
    kind                TEXT    NOT NULL
        CHECK (kind IN ('webhook', 'slack', 'email', 'command')),
    notify_event        TEXT    NOT NULL,
    state               TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    created_at_ms       BIGINT  NOT NULL,
    next_attempt_at_ms  BIGINT,
    -- A lease: the dispatcher holding it may send until claimed_until_ms; after that another may.
    claimed_by          TEXT,
    claimed_until_ms    BIGINT,
    -- JSON array of every attempt: {at_ms, outcome, detail, by}.
    attempts            TEXT    NOT NULL DEFAULT '[]',
    last_error          TEXT,
    delivered_at_ms     BIGINT,
    updated_at_ms       BIGINT  NOT NULL,
    UNIQUE (event_seq, channel, notify_event),
    CHECK ((state = 'pending') = (next_attempt_at_ms IS NOT NULL)),
    CHECK ((state = 'delivered') = (delivered_at_ms IS NOT NULL)),
    CHECK ((claimed_by IS NULL) = (claimed_until_ms IS NULL))
);

CREATE INDEX deliveries_due ON deliveries (next_attempt_at_ms, id) WHERE state = 'pending';
CREATE INDEX deliveries_by_release ON deliveries (release_id, id) WHERE release_id IS NOT NULL;

-- Rehearsal evidence, bound to the plan's content hash; written once with its event.
CREATE TABLE evidence (
    id              TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    run_id          TEXT COLLATE "C" NOT NULL UNIQUE REFERENCES runs (id),
    plan_hash       TEXT    NOT NULL,
    service         TEXT    NOT NULL,
    environment     TEXT    NOT NULL,
    actor           TEXT    NOT NULL,
    started_at_ms   BIGINT  NOT NULL,
    finished_at_ms  BIGINT  NOT NULL,
    -- JSON array of {step_id, state, attempts, duration_ms, contingency?}.
    steps           TEXT    NOT NULL DEFAULT '[]',
    -- JSON array of contingency ids that ran.
    contingencies   TEXT    NOT NULL DEFAULT '[]',
    -- JSON {command, first, second} of a round trip, or NULL.
    round_trip      TEXT,
    recorded_at_ms  BIGINT  NOT NULL,
    CHECK (finished_at_ms >= started_at_ms)
);

CREATE INDEX evidence_by_hash ON evidence (plan_hash, environment, finished_at_ms DESC);
CREATE INDEX evidence_by_service ON evidence (service, finished_at_ms DESC);

CREATE TRIGGER evidence_is_immutable BEFORE UPDATE OR DELETE ON evidence
    FOR EACH ROW EXECUTE FUNCTION backout_refuse_change('immutable');
