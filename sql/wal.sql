-- awf_lifecycle: the turn write-ahead log.
-- Tables, policies and grants; created before the extension's functions (sql/finalize.sql
-- holds what needs them). Part of the fresh-install script, in the order lib.rs lists.

-- The write-ahead log: a turn is recorded here before it is applied, so a crash between the
-- two leaves evidence that awf.wal_reconcile() can act on.
CREATE TABLE awf.turn_wal (
  id                bigserial PRIMARY KEY,
  session_id        uuid NOT NULL REFERENCES awf.sessions ON DELETE CASCADE,
  turn_id           bigint NOT NULL,
  awf_raw           jsonb NOT NULL,
  payload_hash      text NOT NULL,
  state_hash_before text NOT NULL,
  applied           boolean NOT NULL DEFAULT false,
  attempts          integer NOT NULL DEFAULT 0,
  last_error        text,
  created_at        timestamptz NOT NULL DEFAULT now(),
  applied_at        timestamptz,
  UNIQUE (session_id, turn_id)
);
CREATE INDEX turn_wal_unapplied_idx ON awf.turn_wal (session_id, turn_id) WHERE NOT applied;

ALTER TABLE awf.turn_wal ENABLE ROW LEVEL SECURITY;
CREATE POLICY turn_wal_app ON awf.turn_wal TO awf_app
  USING (EXISTS (SELECT FROM awf.sessions s WHERE s.session_id = turn_wal.session_id));
CREATE POLICY turn_wal_admin ON awf.turn_wal TO awf_admin USING (true) WITH CHECK (true);
-- Written only by the extension, as the owner.
GRANT SELECT ON awf.turn_wal TO awf_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON awf.turn_wal TO awf_admin;

SELECT pg_catalog.pg_extension_config_dump('awf.turn_wal', '');
SELECT pg_catalog.pg_extension_config_dump('awf.turn_wal_id_seq', '');
