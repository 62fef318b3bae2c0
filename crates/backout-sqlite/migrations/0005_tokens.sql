-- Issue 7: API tokens of `backout serve`. Only a digest of each token's secret is kept (the
-- secret is shown once, when the token is created). Revocation is recorded, never a delete, so
-- the audit trail can always say whose token acted. Timestamps are INTEGER milliseconds.

CREATE TABLE tokens (
    id              TEXT    NOT NULL PRIMARY KEY,
    user_name       TEXT    NOT NULL,
    role            TEXT    NOT NULL CHECK (role IN ('viewer', 'performer', 'decider', 'admin')),
    secret_hash     TEXT    NOT NULL,
    created_at_ms   INTEGER NOT NULL,
    created_by      TEXT    NOT NULL,
    revoked_at_ms   INTEGER,
    revoked_by      TEXT,
    CHECK ((revoked_at_ms IS NULL) = (revoked_by IS NULL))
) STRICT;

CREATE TRIGGER tokens_are_never_deleted BEFORE DELETE ON tokens
BEGIN
    SELECT RAISE(ABORT, 'tokens are revoked, never deleted');
END;
