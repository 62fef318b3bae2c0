-- API tokens of `backout serve` (as backout-sqlite's 0005_tokens.sql). Only a digest of each
-- token's secret is kept. Revocation is recorded, never a delete, so the audit trail can always
-- say whose token acted. Timestamps are BIGINT milliseconds.

CREATE TABLE tokens (
    id              TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    user_name       TEXT    NOT NULL,
    role            TEXT    NOT NULL CHECK (role IN ('viewer', 'performer', 'decider', 'admin')),
    secret_hash     TEXT    NOT NULL,
    created_at_ms   BIGINT  NOT NULL,
    created_by      TEXT    NOT NULL,
    revoked_at_ms   BIGINT,
    revoked_by      TEXT,
    CHECK ((revoked_at_ms IS NULL) = (revoked_by IS NULL))
);

CREATE TRIGGER tokens_are_never_deleted BEFORE DELETE ON tokens
    FOR EACH ROW EXECUTE FUNCTION backout_refuse_change('revoked, never deleted');
