-- Initial schema for addon "library", as its authors wrote it for the Go kernel: the table
-- already exists (the manifest's models made it), and the index on org_id names a column the
-- manifest calls organization_id, so that statement is skipped as contradicting.
CREATE TABLE IF NOT EXISTS books (
  id          uuid PRIMARY KEY,
  org_id      uuid NOT NULL,
  isbn        varchar(17) NOT NULL,
  title       varchar(255) NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX IF NOT EXISTS books_org_isbn_legacy_uq ON books (org_id, isbn);
CREATE INDEX IF NOT EXISTS books_isbn_idx ON books (isbn);
CREATE INDEX IF NOT EXISTS books_title_idx ON books (title);
