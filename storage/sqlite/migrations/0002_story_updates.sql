-- Schema 2: a story already alerted can be revised; its cards are edited in place, a few
-- times at most. Cards posted inside a digest are not edited one by one.

ALTER TABLE stories ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;

ALTER TABLE deliveries ADD COLUMN update_pending INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN update_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN digest INTEGER NOT NULL DEFAULT 0;
-- The burst digest a pending card was put in, recorded before the digest is posted.
ALTER TABLE deliveries ADD COLUMN digest_group TEXT;
-- The story revision the posted card shows: a revision that lands while a card is being sent
-- or edited is noticed when the send is recorded, not lost.
ALTER TABLE deliveries ADD COLUMN rendered_revision INTEGER NOT NULL DEFAULT 0;
CREATE INDEX deliveries_updates ON deliveries (next_attempt_at) WHERE update_pending = 1;
