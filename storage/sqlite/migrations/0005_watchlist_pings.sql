-- Urgent pings, opt-in (issue 18): who a watchlist's cards may mention ("role:<id>",
-- "user:<id>", "usergroup:<id>", a JSON list like channels) and when ('urgent' or 'always').
-- Existing watchlists ping nobody, as before.
ALTER TABLE watchlists ADD COLUMN ping TEXT NOT NULL DEFAULT '[]';
ALTER TABLE watchlists ADD COLUMN ping_when TEXT NOT NULL DEFAULT 'urgent'
    CHECK (ping_when IN ('urgent', 'always'));
