-- Schema 10: threads of updates (issue 18). A watchlist may ask for updates of an alerted story
-- as replies under its card (`updates = 'thread'`); such a card also names every feed that
-- carries the story.
ALTER TABLE watchlists ADD COLUMN updates TEXT NOT NULL DEFAULT 'edit'
    CHECK (updates IN ('edit', 'thread'));

-- The card's mode, decided when it was planned (one of the destination's watchlists asked for
-- threads), and the story revision it was last rendered from: an update past it is a rewrite
-- (a thread reply, counted toward the update cap), one at it only names a new source.
ALTER TABLE deliveries ADD COLUMN thread INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN shown_revision INTEGER NOT NULL DEFAULT 0;
UPDATE deliveries SET shown_revision = (SELECT revision FROM stories s WHERE s.id = story_id)
WHERE status = 'sent' AND update_pending = 0;

-- The other feeds that carried a story, each once, in the order they did (its own feed is
-- stories.feed_name). Gone with the story.
CREATE TABLE story_sources (
    story_id   INTEGER NOT NULL REFERENCES stories (id) ON DELETE CASCADE,
    feed_name  TEXT    NOT NULL,
    seen_at    INTEGER NOT NULL,
    PRIMARY KEY (story_id, feed_name)
) WITHOUT ROWID;
