-- Issue 8: leases through which several `backout serve` replicas share the work (watching a
-- release, executing a run). A row is never deleted: releasing a lease empties its owner and
-- keeps its token, so the next holder's fencing token is greater than every one issued before.
-- Timestamps are INTEGER milliseconds from the caller's clock.

CREATE TABLE leases (
    name            TEXT    NOT NULL PRIMARY KEY,
    owner           TEXT    NOT NULL,
    token           INTEGER NOT NULL CHECK (token > 0),
    expires_at_ms   INTEGER NOT NULL
) STRICT;
