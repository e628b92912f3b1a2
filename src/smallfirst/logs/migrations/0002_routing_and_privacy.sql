ALTER TABLE requests ADD COLUMN router TEXT;
ALTER TABLE requests ADD COLUMN route_score REAL;
ALTER TABLE requests ADD COLUMN escalations TEXT;
ALTER TABLE requests ADD COLUMN pii_entities TEXT;
ALTER TABLE requests ADD COLUMN pii_action TEXT;
