-- The latency a desk feels (bot/core/latency.py). Which feeds carry each story, and
-- when each first did; and whether a story's publish time was a stamp the document gave to
-- several items (the fetch time, a build date), not when the story was published.

ALTER TABLE stories ADD COLUMN published_stamped INTEGER NOT NULL DEFAULT 0;

-- One row per story and feed, the story's own feed included: the first sighting there (later
-- ones change nothing), and whether it was a baseline poll's. Threads' story_sources names the
-- other feeds for a card; this keeps what the latency figures need. No foreign key on the
-- feed: a removed feed's sightings still say who had a story first.
CREATE TABLE story_feeds (
    story_id   INTEGER NOT NULL REFERENCES stories (id) ON DELETE CASCADE,
    feed_id    INTEGER NOT NULL,
    feed_name  TEXT    NOT NULL,
    seen_at    INTEGER NOT NULL,
    baseline   INTEGER NOT NULL DEFAULT 0,  -- seen in the feed's baseline poll
    PRIMARY KEY (story_id, feed_id)
) WITHOUT ROWID;
CREATE INDEX story_feeds_seen ON story_feeds (seen_at);

-- The stories already stored: their first feed, as far as we know. One never alerted was most
-- likely recorded by a baseline poll, which says nothing of when the feed had it.
INSERT INTO story_feeds (story_id, feed_id, feed_name, seen_at, baseline)
SELECT id, feed_id, feed_name, first_seen_at, 1 - alertable FROM stories
WHERE feed_id IS NOT NULL;
