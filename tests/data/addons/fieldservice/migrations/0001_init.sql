-- Initial schema for addon "fieldservice" (the manifest's model already created the table).
CREATE TABLE IF NOT EXISTS work_orders (
  id           uuid PRIMARY KEY,
  org_id       uuid NOT NULL,
  customer_id  uuid NOT NULL,
  reference    varchar(24) NOT NULL,
  status       varchar(20) NOT NULL DEFAULT 'draft',
  deleted_at   timestamptz,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS work_orders_reference_idx ON work_orders (reference);
