-- Live updates across processes: every statement that inserts into the journal announces the
-- journal's new end on channel `backout_events` (payload: the highest seq inserted, in decimal).
-- PostgreSQL delivers a NOTIFY when the inserting transaction commits, and never for one that
-- rolls back, so a listener that wakes on it finds the events committed. Listeners
-- (`backout_postgres::listen`, used by `backout serve`) treat the payload as "read the store
-- now": notifications sent while a listener was disconnected are lost, and it re-reads the
-- journal's end when it reconnects.
--
-- One notification per statement (not per row): a batch of a thousand measurements costs one.

CREATE FUNCTION backout_notify_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    last BIGINT;
BEGIN
    SELECT max(seq) INTO last FROM inserted;
    IF last IS NOT NULL THEN
        PERFORM pg_notify('backout_events', last::text);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_notify AFTER INSERT ON events
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION backout_notify_events();
