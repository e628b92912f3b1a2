-- A tier's latencies and times to first token in order, with what `stats` and /dashboard
-- filter them on: a percentile is read by walking one of these, where it sorted the
-- window's rows once per tier and figure (12 sorts for `stats --since all` on 4 tiers).
CREATE INDEX requests_tier_latency ON requests (tier, latency_ms, status, created_at);
CREATE INDEX requests_tier_ttft ON requests (tier, ttft_ms, status, created_at);
