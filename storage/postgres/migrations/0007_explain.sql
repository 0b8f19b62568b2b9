-- Schema 7 (/why, issue 18): what the pipeline decided and did not keep until now.
-- Why a story never alerted when first seen: 'baseline' (a new feed's first poll) or 'old'
-- (published longer ago than max_age); NULL for a story that could alert.
ALTER TABLE stories ADD COLUMN held text;

-- Another feed's item that was found to be a stored story (a duplicate), kept once per story,
-- feed and link: the first sighting only, so a poll that lists it again writes nothing.
CREATE TABLE story_sightings (
    story_id   bigint      NOT NULL REFERENCES stories (id) ON DELETE CASCADE,
    feed_name  text        NOT NULL,
    title      text        NOT NULL,
    url        text        NOT NULL DEFAULT '',
    seen_at    timestamptz NOT NULL,
    PRIMARY KEY (story_id, feed_name, url)
);
