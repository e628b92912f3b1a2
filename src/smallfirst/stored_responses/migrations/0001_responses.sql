-- One row per stored Responses API answer: the Response object as its client got it, its own
-- input items, and the id of the response it goes on from (`previous_id`; a row whose
-- previous one was deleted before it was written holds a copy of the chain instead, with no
-- `previous_id`). Not a copy of the whole chain in each row, which grew with the square of
-- its length. A deleted response that later ones go on from stays, `deleted`, holding only
-- its output, until none does. `private_collection`: the private RAG collection its
-- conversation was grounded in, by its own turn or an earlier one (NULL: none); a response
-- that goes on from it stays on local tiers, as its answers quote the documents.
CREATE TABLE responses (
    id TEXT PRIMARY KEY,
    api_key_id TEXT,
    created_at REAL NOT NULL,
    input_items TEXT NOT NULL,
    response TEXT NOT NULL,
    previous_id TEXT,
    deleted INTEGER NOT NULL DEFAULT 0,
    private_collection TEXT
);
CREATE INDEX responses_created_at ON responses (created_at);
CREATE INDEX responses_previous_id ON responses (previous_id);
