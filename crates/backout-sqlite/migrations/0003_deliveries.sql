-- Issue 5: the notification outbox. A delivery is inserted in the transaction of the journal
-- event it announces, then claimed, attempted and settled by dispatchers.
-- Timestamps are INTEGER milliseconds since the Unix epoch, supplied by the caller's clock.

CREATE TABLE deliveries (
    -- A rowid alias: ids increase in the order deliveries were written.
    id                  INTEGER NOT NULL PRIMARY KEY,
    event_seq           INTEGER NOT NULL REFERENCES events (seq),
    -- The event's release, or the release of the event's run (so `deliveries REL` shows both).
    release_id          TEXT,
    run_id              TEXT,
    -- The plan's channel name and kind.
    channel             TEXT    NOT NULL,
    kind                TEXT    NOT NULL
        CHECK (kind IN ('webhook', 'slack', 'email', 'command')),
    -- The lifecycle event announced (rollback_required, started, ...; `message` for a notify step).
    notify_event        TEXT    NOT NULL,
    state               TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    created_at_ms       INTEGER NOT NULL,
    next_attempt_at_ms  INTEGER,
    -- A lease: the dispatcher holding it may send until claimed_until_ms; after that another may.
    claimed_by          TEXT,
    claimed_until_ms    INTEGER,
    -- JSON array of every attempt: {at_ms, outcome, detail, by}.
    attempts            TEXT    NOT NULL DEFAULT '[]',
    last_error          TEXT,
    delivered_at_ms     INTEGER,
    updated_at_ms       INTEGER NOT NULL,
    UNIQUE (event_seq, channel, notify_event),
    CHECK ((state = 'pending') = (next_attempt_at_ms IS NOT NULL)),
    CHECK ((state = 'delivered') = (delivered_at_ms IS NOT NULL)),
    CHECK ((claimed_by IS NULL) = (claimed_until_ms IS NULL))
) STRICT;

-- What dispatchers poll: pending deliveries by due time.
CREATE INDEX deliveries_due ON deliveries (next_attempt_at_ms, id) WHERE state = 'pending';
CREATE INDEX deliveries_by_release ON deliveries (release_id, id) WHERE release_id IS NOT NULL;
