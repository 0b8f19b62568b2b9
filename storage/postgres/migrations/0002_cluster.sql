-- Schema 2: several workers on one database (issue 16; bot/core/cluster.py). Every time below is
-- the database's clock, so workers on machines whose clocks disagree still agree on a lease.

-- The workers that run or ran on this database, for /status. A row whose heartbeat is older
-- than a feed lease belongs to a worker that is gone.
CREATE TABLE workers (
    worker      text        PRIMARY KEY,  -- "<host>:<pid>:<random>"
    host        text        NOT NULL,
    pid         integer     NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    seen_at     timestamptz NOT NULL DEFAULT now()
);

-- Fencing tokens of feed leases and destination claims: one sequence, so a later claim always
-- carries a larger number than any earlier one.
CREATE SEQUENCE lease_tokens AS bigint;

-- A feed's lease lives on its own row: a claim locks the row (FOR UPDATE SKIP LOCKED) and a
-- poll's write locks the same row to check its token, so the two can never wait on each other
-- in a cycle. lease_worker NULL: finished (or never claimed); the token stays, for fencing.
ALTER TABLE feeds
    ADD COLUMN next_poll_at     timestamptz,  -- NULL: due now
    ADD COLUMN lease_worker     text,
    ADD COLUMN lease_token      bigint,
    ADD COLUMN lease_expires_at timestamptz;
CREATE INDEX feeds_lease_worker ON feeds (lease_worker) WHERE lease_worker IS NOT NULL;

-- Which worker sends a destination's cards: one at a time, so its cards keep their order.
CREATE TABLE destination_claims (
    destination  text        PRIMARY KEY,
    worker       text        NOT NULL,
    token        bigint      NOT NULL,
    expires_at   timestamptz NOT NULL
);
CREATE INDEX destination_claims_worker ON destination_claims (worker);

-- Who holds a unique role (the session advisory lock is the truth; this row names the holder
-- for /status, and is believed only while that lock is held).
CREATE TABLE role_holders (
    role    text        PRIMARY KEY,
    key     integer     NOT NULL,  -- the lock's second number (the first is the store's)
    worker  text        NOT NULL,
    since   timestamptz NOT NULL DEFAULT now()
);

-- Slack envelopes and command triggers already handled, by any worker (kept a day).
CREATE TABLE handled_events (
    key  text        PRIMARY KEY,
    at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX handled_events_at ON handled_events (at);

-- How many times watchlists, subscriptions and feeds changed: a worker whose listener missed a
-- notification sees the number move.
CREATE TABLE changes (
    signal   text   PRIMARY KEY,
    version  bigint NOT NULL DEFAULT 0
);
INSERT INTO changes (signal) VALUES ('queries'), ('feeds');

-- Changes are told by the tables themselves, in the writing transaction (a NOTIFY is delivered
-- at its commit, and never for a rollback), whichever code wrote them. The payload is
-- "<signal> <version> <worker>": the worker (the pool's newsbot.worker setting) lets a worker
-- ignore its own news, the version lets the fallback poll tell a missed one.
CREATE FUNCTION newsbot_tell() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    told bigint := 0;
BEGIN
    IF TG_ARGV[0] <> 'outbox' THEN  -- cards are counted by their ids: no hot counter row
        INSERT INTO changes AS c (signal, version) VALUES (TG_ARGV[0], 1)
        ON CONFLICT (signal) DO UPDATE SET version = c.version + 1
        RETURNING c.version INTO told;
    END IF;
    PERFORM pg_notify('newsbot', concat_ws(' ', TG_ARGV[0], told,
                                            current_setting('newsbot.worker', true)));
    RETURN NULL;
END $$;

CREATE TRIGGER watchlists_told AFTER INSERT OR UPDATE OR DELETE ON watchlists
    FOR EACH STATEMENT EXECUTE FUNCTION newsbot_tell('queries');
CREATE TRIGGER subscriptions_told AFTER INSERT OR UPDATE OR DELETE ON subscriptions
    FOR EACH STATEMENT EXECUTE FUNCTION newsbot_tell('queries');
CREATE TRIGGER feeds_told AFTER INSERT OR DELETE OR UPDATE OF name, url, interval_s, active
    ON feeds FOR EACH STATEMENT EXECUTE FUNCTION newsbot_tell('feeds');
CREATE TRIGGER deliveries_queued AFTER INSERT ON deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION newsbot_tell('outbox');
-- A card owing an edit (a revision of a sent story).
CREATE TRIGGER deliveries_revised AFTER UPDATE OF update_pending ON deliveries
    FOR EACH ROW WHEN (NEW.update_pending AND NOT OLD.update_pending)
    EXECUTE FUNCTION newsbot_tell('outbox');
