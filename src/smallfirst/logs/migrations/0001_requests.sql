CREATE TABLE requests (
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
    response TEXT
);
CREATE INDEX requests_created_at ON requests (created_at);
CREATE INDEX requests_tier ON requests (tier, created_at);
