-- Schema 4: adaptive polling (bot/core/polling.py). Whether a feed's interval is its own (a
-- fixed override) or the default it starts from, and its schedule as the last successful poll
-- left it: the wait before the next poll and why, the average gap between its new stories,
-- when the newest appeared, and the document's <ttl>, <skipHours> and <skipDays> (a 304 carries
-- none). NULL poll_interval_s: not polled successfully since; interval_s applies. The cluster
-- sets next_poll_at from it (bot/cluster.py).
ALTER TABLE feeds ADD COLUMN interval_fixed  boolean NOT NULL DEFAULT false;
ALTER TABLE feeds ADD COLUMN poll_interval_s integer;
ALTER TABLE feeds ADD COLUMN poll_reason     text;
ALTER TABLE feeds ADD COLUMN publish_gap_s   double precision;
ALTER TABLE feeds ADD COLUMN last_new_at     timestamptz;
ALTER TABLE feeds ADD COLUMN feed_ttl_s      double precision;
ALTER TABLE feeds ADD COLUMN skip_hours      text;
ALTER TABLE feeds ADD COLUMN skip_days       text;
