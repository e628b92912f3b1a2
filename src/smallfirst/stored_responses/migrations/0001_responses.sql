-- One row per stored Responses API answer: the Response object as its client got it, and
-- the input items it answered (the chain of `previous_response_id` first, then its own).
CREATE TABLE responses (
    id TEXT PRIMARY KEY,
    api_key_id TEXT,
    created_at REAL NOT NULL,
    input_items TEXT NOT NULL,
    response TEXT NOT NULL
);
CREATE INDEX responses_created_at ON responses (created_at);
