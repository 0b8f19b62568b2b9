-- Schema 4: story ids come from a sequence of our own, not from SQLite's bookkeeping of
-- AUTOINCREMENT, so that handing them out is plain SQL any engine runs. It starts past every id
-- ever given: identity keys (kept for a year) point at stories long pruned, and a new story must
-- never be mistaken for one of them.
CREATE TABLE id_sequences (
    name     TEXT    PRIMARY KEY,
    last_id  INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO id_sequences (name, last_id)
SELECT 'stories', max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'stories'), 0),
                      coalesce((SELECT max(id) FROM stories), 0));

-- Written with every send and edit, never read: whether a card is behind its story is decided
-- when the send is recorded (deliveries.update_pending), from the revision the sender showed.
ALTER TABLE deliveries DROP COLUMN rendered_revision;
