-- What each answered request would have cost on the baseline model (the `cost saved` reference).
ALTER TABLE requests ADD COLUMN baseline_cost_usd REAL NOT NULL DEFAULT 0;
