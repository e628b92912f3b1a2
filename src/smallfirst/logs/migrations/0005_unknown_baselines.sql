-- Rows logged before 0003 got its DEFAULT 0 as their baseline, as if their tokens had cost
-- nothing on the baseline model: after an upgrade `stats` showed a negative saving. Their
-- baseline is unknown: NULL, left out of the baseline and the saving. SQLite's ALTER TABLE
-- cannot drop a NOT NULL, so the table is copied (the copy has no default: a row written
-- without a baseline has none).
CREATE TABLE requests_new (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    endpoint TEXT NOT NULL,
    model_requested TEXT NOT NULL,
    model_answered TEXT,
    tier TEXT,
    status INTEGER NOT NULL,
    error_code TEXT,
    stream INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    latency_ms REAL NOT NULL,
    ttft_ms REAL,
    cost_usd REAL NOT NULL DEFAULT 0,
    api_key_id TEXT,
    route_reason TEXT,
    prompt TEXT,
    response TEXT,
    router TEXT,
    route_score REAL,
    escalations TEXT,
    pii_entities TEXT,
    pii_action TEXT,
    baseline_cost_usd REAL,
    cached_tokens INTEGER NOT NULL DEFAULT 0
);
INSERT INTO requests_new
SELECT
    id, created_at, endpoint, model_requested, model_answered, tier, status, error_code, stream,
    prompt_tokens, completion_tokens, latency_ms, ttft_ms, cost_usd, api_key_id, route_reason,
    prompt, response, router, route_score, escalations, pii_entities, pii_action,
    CASE
        WHEN baseline_cost_usd = 0 AND created_at < (
            -- when 0003 was applied, from a Julian day to epoch seconds like created_at
            SELECT (applied_at - 2440587.5) * 86400 FROM _migrations
            WHERE name = '0003_baseline_cost'
        ) THEN NULL
        ELSE baseline_cost_usd
    END,
    cached_tokens
FROM requests;
DROP TABLE requests;
ALTER TABLE requests_new RENAME TO requests;
CREATE INDEX requests_created_at ON requests (created_at);
CREATE INDEX requests_tier ON requests (tier, created_at);
