-- awf_lifecycle: snapshots of a session's state.
-- Tables, policies and grants; created before the extension's functions (sql/finalize.sql
-- holds what needs them). Part of the fresh-install script, in the order lib.rs lists.

CREATE TABLE awf.snapshots (
  id           bigserial PRIMARY KEY,
  session_id   uuid NOT NULL REFERENCES awf.sessions ON DELETE CASCADE,
  turn_id      bigint NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  label        text,
  content_hash text NOT NULL,
  payload      jsonb NOT NULL,
  UNIQUE (session_id, content_hash)
);

ALTER TABLE awf.snapshots ENABLE ROW LEVEL SECURITY;
CREATE POLICY snapshots_app ON awf.snapshots TO awf_app
  USING (EXISTS (SELECT FROM awf.sessions s WHERE s.session_id = snapshots.session_id));
CREATE POLICY snapshots_admin ON awf.snapshots TO awf_admin USING (true) WITH CHECK (true);
-- Written only by the extension, as the owner.
GRANT SELECT ON awf.snapshots TO awf_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON awf.snapshots TO awf_admin;

SELECT pg_catalog.pg_extension_config_dump('awf.snapshots', '');
SELECT pg_catalog.pg_extension_config_dump('awf.snapshots_id_seq', '');
