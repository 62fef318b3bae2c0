-- Leases through which several `backout serve` replicas share the work (as backout-sqlite's
-- 0006_leases.sql). A row is never deleted: releasing a lease empties its owner and keeps its
-- token, so the next holder's fencing token is greater than every one issued before.
-- Timestamps are BIGINT milliseconds from the caller's clock.

CREATE TABLE leases (
    name            TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    owner           TEXT    NOT NULL,
    token           BIGINT  NOT NULL CHECK (token > 0),
    expires_at_ms   BIGINT  NOT NULL
);
