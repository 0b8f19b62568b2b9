-- Schema 5: adaptive polling (bot/core/polling.py). Whether a feed's interval is its own (a
-- fixed override) or the default it starts from, and its schedule as the last successful poll
-- left it: the wait before the next poll and why, the average gap between its new stories,
-- when the newest appeared, and the document's <ttl>, <skipHours> and <skipDays> (a 304 carries
-- none). NULL poll_interval_s: not polled successfully since; interval_s applies.
ALTER TABLE feeds ADD COLUMN interval_fixed  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE feeds ADD COLUMN poll_interval_s INTEGER;
ALTER TABLE feeds ADD COLUMN poll_reason     TEXT;
ALTER TABLE feeds ADD COLUMN publish_gap_s   REAL;
ALTER TABLE feeds ADD COLUMN last_new_at     REAL;
ALTER TABLE feeds ADD COLUMN feed_ttl_s      REAL;
ALTER TABLE feeds ADD COLUMN skip_hours      TEXT;
ALTER TABLE feeds ADD COLUMN skip_days       TEXT;
