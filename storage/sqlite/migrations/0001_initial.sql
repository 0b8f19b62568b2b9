-- Schema 1: feeds and their fetch state, stories and their identity keys, watchlists,
-- subscriptions, and the outbox of deliveries. Times are Unix seconds (UTC).

-- AUTOINCREMENT on feeds and stories: ids are never reused, because identity keys (kept for a
-- year) point at them after the rows themselves are gone.
CREATE TABLE feeds (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    name             TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    url              TEXT    NOT NULL,
    interval_s       INTEGER NOT NULL,
    origin           TEXT    NOT NULL CHECK (origin IN ('config', 'chat')),
    active           INTEGER NOT NULL DEFAULT 1,
    created_at       INTEGER NOT NULL,
    created_by       TEXT,
    etag             TEXT,
    last_modified    TEXT,
    body_hash        TEXT,
    baseline_done    INTEGER NOT NULL DEFAULT 0,
    last_poll_at     INTEGER,
    last_success_at  INTEGER,
    last_error       TEXT,
    last_error_at    INTEGER,
    failures         INTEGER NOT NULL DEFAULT 0,
    retry_at         INTEGER
);

CREATE TABLE stories (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    feed_id        INTEGER REFERENCES feeds (id) ON DELETE SET NULL,
    feed_name      TEXT    NOT NULL,
    guid           TEXT,
    url            TEXT,
    title          TEXT    NOT NULL,
    summary        TEXT    NOT NULL DEFAULT '',
    content        TEXT    NOT NULL DEFAULT '',
    published_at   INTEGER,
    first_seen_at  INTEGER NOT NULL,
    updated_at     INTEGER,
    author         TEXT,
    categories     TEXT    NOT NULL DEFAULT '[]',
    image          TEXT,
    alertable      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX stories_first_seen ON stories (first_seen_at);

-- Compact identity keys (64-bit hashes, see bot/core/identity.py). They outlive the stories
-- they point to, so an old item that reappears in a feed is recognised and never alerts.
CREATE TABLE story_keys (
    key       INTEGER NOT NULL,
    story_id  INTEGER NOT NULL,
    kind      INTEGER NOT NULL,
    seen_at   INTEGER NOT NULL,
    PRIMARY KEY (key, story_id)
) WITHOUT ROWID;
CREATE INDEX story_keys_age ON story_keys (kind, seen_at);

CREATE TABLE watchlists (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    query       TEXT    NOT NULL,
    channels    TEXT    NOT NULL DEFAULT '[]',
    origin      TEXT    NOT NULL CHECK (origin IN ('config', 'chat')),
    created_by  TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE subscriptions (
    id          INTEGER PRIMARY KEY,
    subscriber  TEXT    NOT NULL,
    query       TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (subscriber, query)
);

-- The outbox. One row per (story, destination): the constraint, not Python, guarantees one card.
CREATE TABLE deliveries (
    id               INTEGER PRIMARY KEY,
    story_id         INTEGER NOT NULL REFERENCES stories (id) ON DELETE CASCADE,
    target           TEXT    NOT NULL,
    watchlists       TEXT    NOT NULL DEFAULT '[]',
    subscriber       TEXT,
    matched          TEXT    NOT NULL DEFAULT '[]',
    status           TEXT    NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    sent_at          INTEGER,
    message_id       TEXT,
    error            TEXT,
    UNIQUE (story_id, target)
);
CREATE INDEX deliveries_pending ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_target_sent ON deliveries (target, sent_at);
