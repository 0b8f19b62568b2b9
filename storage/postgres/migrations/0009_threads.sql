-- Schema 9: threads of updates (issue 18), as SQLite's schema 10: a watchlist's `updates` mode,
-- each card's mode and the revision it was last rendered from, and the other feeds that
-- carried a story.
ALTER TABLE watchlists ADD COLUMN updates text NOT NULL DEFAULT 'edit'
    CHECK (updates IN ('edit', 'thread'));

ALTER TABLE deliveries
    ADD COLUMN thread         boolean NOT NULL DEFAULT false,
    ADD COLUMN shown_revision integer NOT NULL DEFAULT 0;
UPDATE deliveries d SET shown_revision = s.revision FROM stories s
WHERE s.id = d.story_id AND d.status = 'sent' AND NOT d.update_pending;

CREATE TABLE story_sources (
    story_id   bigint      NOT NULL REFERENCES stories (id) ON DELETE CASCADE,
    feed_name  text        NOT NULL,
    seen_at    timestamptz NOT NULL,
    PRIMARY KEY (story_id, feed_name)
);
