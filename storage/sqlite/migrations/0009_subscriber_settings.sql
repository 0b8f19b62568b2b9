-- Schema 8: how and when each person's cards come (issue 18; bot/core/quiet.py): a time zone,
-- quiet hours, whether urgent stories come through them, and instant or digest delivery. Times
-- of day are minutes after local midnight.
CREATE TABLE subscriber_settings (
    subscriber      TEXT    PRIMARY KEY,
    timezone        TEXT    NOT NULL DEFAULT 'UTC',
    quiet_start     INTEGER CHECK (quiet_start BETWEEN 0 AND 1439),
    quiet_end       INTEGER CHECK (quiet_end BETWEEN 0 AND 1439),
    urgent_through  INTEGER NOT NULL DEFAULT 1,
    mode            TEXT    NOT NULL DEFAULT 'instant'
                            CHECK (mode IN ('instant', 'hourly', 'daily')),
    daily_at        INTEGER NOT NULL DEFAULT 480 CHECK (daily_at BETWEEN 0 AND 1439),
    updated_at      INTEGER NOT NULL
) WITHOUT ROWID;

-- A person's card that waits for their quiet hours to end or their digest (next_attempt_at is
-- the same moment). Unlike a card waiting out a retry, it does not hold up the later cards of
-- its destination: an urgent story may pass it.
ALTER TABLE deliveries ADD COLUMN held_until INTEGER;
CREATE INDEX deliveries_held ON deliveries (subscriber)
    WHERE held_until IS NOT NULL AND status = 'pending';
