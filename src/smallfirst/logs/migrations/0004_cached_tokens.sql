-- Prompt tokens a cache held: a local model's kept or restored context, or an upstream's
-- prompt cache (billed at `cached_input_cost_per_1m` where set).
ALTER TABLE requests ADD COLUMN cached_tokens INTEGER NOT NULL DEFAULT 0;
