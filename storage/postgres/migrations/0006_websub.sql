-- WebSub push (issue 17; bot/feeds/websub.py): a feed's subscription at the hub it advertises.
-- The callback is the random last segment of the URL the hub posts to; the secret signs what
-- it pushes. Gone with its feed.
CREATE TABLE websub_subscriptions (
    feed_id           bigint      PRIMARY KEY REFERENCES feeds (id) ON DELETE CASCADE,
    hub               text        NOT NULL,
    topic             text        NOT NULL,
    callback          text        NOT NULL UNIQUE,
    secret            text        NOT NULL,
    lease_expires_at  timestamptz,
    next_attempt_at   timestamptz,
    failures          integer     NOT NULL DEFAULT 0,
    last_error        text
);
