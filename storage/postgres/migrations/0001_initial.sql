-- Schema 1 on PostgreSQL: the tables of SQLite's schema 4 (storage/sqlite/migrations/), in
-- PostgreSQL's own types. Times are timestamptz; flags are booleans; lists and the audit detail
-- are JSON text, as in SQLite, so both backends read them with the same code.

-- Names of feeds and watchlists are unique ignoring letter case, like SQLite's NOCASE: ASCII
-- letters only (lower() would also fold other scripts, and follow the server's locale).
CREATE FUNCTION ascii_lower(value text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT translate(value, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') $$;

CREATE TABLE feeds (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name             text        NOT NULL,
    url              text        NOT NULL,
    interval_s       integer     NOT NULL,
    origin           text        NOT NULL CHECK (origin IN ('config', 'chat')),
    active           boolean     NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL,
    created_by       text,
    etag             text,
    last_modified    text,
    body_hash        text,
    baseline_done    boolean     NOT NULL DEFAULT false,
    last_poll_at     timestamptz,
    last_success_at  timestamptz,
    last_error       text,
    last_error_at    timestamptz,
    failures         integer     NOT NULL DEFAULT 0,
    retry_at         timestamptz
);
CREATE UNIQUE INDEX feeds_name ON feeds (ascii_lower(name));

-- Story ids come from a sequence: they grow with time and are never reused, because identity
-- keys (kept for a year) point at stories long pruned.
CREATE SEQUENCE story_ids AS bigint;

CREATE TABLE stories (
    id             bigint      PRIMARY KEY DEFAULT nextval('story_ids'),
    feed_id        bigint      REFERENCES feeds (id) ON DELETE SET NULL,
    feed_name      text        NOT NULL,
    guid           text,
    url            text,
    title          text        NOT NULL,
    summary        text        NOT NULL DEFAULT '',
    content        text        NOT NULL DEFAULT '',
    published_at   timestamptz,
    first_seen_at  timestamptz NOT NULL,
    updated_at     timestamptz,
    author         text,
    categories     text        NOT NULL DEFAULT '[]',
    image          text,
    alertable      boolean     NOT NULL DEFAULT false,
    revision       integer     NOT NULL DEFAULT 0
);
ALTER SEQUENCE story_ids OWNED BY stories.id;
CREATE INDEX stories_first_seen ON stories (first_seen_at);
CREATE INDEX stories_feed ON stories (feed_id);

-- Compact identity keys (signed 64-bit hashes, see bot/core/identity.py). No foreign key: they
-- outlive the stories they point to, so an old item that reappears never alerts.
CREATE TABLE story_keys (
    key       bigint      NOT NULL,
    story_id  bigint      NOT NULL,
    kind      smallint    NOT NULL,
    seen_at   timestamptz NOT NULL,
    PRIMARY KEY (key, story_id)
);
CREATE INDEX story_keys_age ON story_keys (kind, seen_at);

CREATE TABLE watchlists (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text        NOT NULL,
    query       text        NOT NULL,
    channels    text        NOT NULL DEFAULT '[]',
    origin      text        NOT NULL CHECK (origin IN ('config', 'chat')),
    created_by  text,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE UNIQUE INDEX watchlists_name ON watchlists (ascii_lower(name));

CREATE TABLE subscriptions (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscriber  text        NOT NULL,
    query       text        NOT NULL,
    created_at  timestamptz NOT NULL,
    UNIQUE (subscriber, query)
);

-- The outbox. One row per (story, destination): the constraint, not Python, guarantees one card.
CREATE TABLE deliveries (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    story_id         bigint      NOT NULL REFERENCES stories (id) ON DELETE CASCADE,
    target           text        NOT NULL,
    watchlists       text        NOT NULL DEFAULT '[]',
    subscriber       text,
    matched          text        NOT NULL DEFAULT '[]',
    status           text        NOT NULL DEFAULT 'pending'
                                 CHECK (status IN ('pending', 'sent', 'failed')),
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    created_at       timestamptz NOT NULL,
    sent_at          timestamptz,
    message_id       text,
    error            text,
    update_pending   boolean     NOT NULL DEFAULT false,
    update_count     integer     NOT NULL DEFAULT 0,
    digest           boolean     NOT NULL DEFAULT false,
    digest_group     text,
    UNIQUE (story_id, target)
);
CREATE INDEX deliveries_pending ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_pending_target ON deliveries (target, id) WHERE status = 'pending';
CREATE INDEX deliveries_updates ON deliveries (next_attempt_at) WHERE update_pending;
CREATE INDEX deliveries_target_sent ON deliveries (target, sent_at);
CREATE INDEX deliveries_subscriber ON deliveries (subscriber, id) WHERE subscriber IS NOT NULL;

-- Every change made from chat: who, when, what.
CREATE TABLE audit_log (
    id       bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at       timestamptz NOT NULL,
    actor    text        NOT NULL,
    action   text        NOT NULL,
    detail   text        NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON audit_log (at);
