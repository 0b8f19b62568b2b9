-- WebSub push (issue 17; bot/feeds/websub.py): a feed's subscription at the hub it advertises.
-- The callback is the random last segment of the URL the hub posts to; the secret signs what
-- it pushes (the file is private to the bot, like the tokens it never holds). Gone with its feed.
CREATE TABLE websub_subscriptions (
    feed_id           INTEGER PRIMARY KEY REFERENCES feeds (id) ON DELETE CASCADE,
    hub               TEXT    NOT NULL,
    topic             TEXT    NOT NULL,
    callback          TEXT    NOT NULL UNIQUE,
    secret            TEXT    NOT NULL,
    lease_expires_at  REAL,
    next_attempt_at   REAL,
    failures          INTEGER NOT NULL DEFAULT 0,
    last_error        TEXT
);
