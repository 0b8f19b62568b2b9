-- The latency a desk feels (bot/core/latency.py), as in SQLite. Which feeds
-- carry each story, and when each first did; and whether a story's publish time was a stamp
-- the document gave to several items (the fetch time, a build date).

ALTER TABLE stories ADD COLUMN published_stamped boolean NOT NULL DEFAULT false;

-- One row per story and feed, the story's own feed included: the first sighting there (later
-- ones change nothing), and whether it was a baseline poll's. Threads' story_sources names the
-- other feeds for a card; this keeps what the latency figures need. No foreign key on the
-- feed: a removed feed's sightings still say who had a story first.
CREATE TABLE story_feeds (
    story_id   bigint      NOT NULL REFERENCES stories (id) ON DELETE CASCADE,
    feed_id    bigint      NOT NULL,
    feed_name  text        NOT NULL,
    seen_at    timestamptz NOT NULL,
    baseline   boolean     NOT NULL DEFAULT false,  -- seen in the feed's baseline poll
    PRIMARY KEY (story_id, feed_id)
);
CREATE INDEX story_feeds_seen ON story_feeds (seen_at);

INSERT INTO story_feeds (story_id, feed_id, feed_name, seen_at, baseline)
SELECT id, feed_id, feed_name, first_seen_at, NOT alertable FROM stories
WHERE feed_id IS NOT NULL;
