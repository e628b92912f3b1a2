-- The name a citation shows for a document: its path relative to the folder it was ingested
-- from (a file given alone: its name). `source`, the absolute path, stays the document's id
-- on this machine and is not sent to clients. '' for documents stored before: their name.
ALTER TABLE documents ADD COLUMN shown_as TEXT NOT NULL DEFAULT '';
