-- Schema 3: a worker is alive while its session lock is held, not until its heartbeat is old.
-- Each worker holds pg_advisory_lock(1818850917 ("live"), live_key) on its own connection for
-- as long as it runs: the server lets go the moment the process dies (SIGKILL, a crashed
-- host once TCP notices), so its feed leases and destination claims are taken over at once
-- instead of when they lapse, and /status stops counting it.
ALTER TABLE workers ADD COLUMN live_key integer;

CREATE VIEW live_workers AS
    SELECT w.worker FROM workers w
    JOIN pg_locks l ON l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
        AND l.classid = 1818850917::oid AND l.objid = w.live_key::oid
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database());
