-- awf_lifecycle: sessions and their turns.
-- Tables, policies and grants; created before the extension's functions (sql/finalize.sql
-- holds what needs them). Part of the fresh-install script, in the order lib.rs lists.

-- Phase 10: sessions and their turns.
CREATE TABLE awf.sessions (
  session_id   uuid PRIMARY KEY,
  user_id_hash text NOT NULL CHECK (user_id_hash <> ''),
  turn_id      bigint NOT NULL DEFAULT 0 CHECK (turn_id >= 0),
  -- lz4, not the default pglz: the whole state is rewritten every turn, and pglz compressing
  -- it was the largest single cost of a turn (about 12% of the backend's time, perf).
  state        jsonb COMPRESSION lz4 NOT NULL CHECK (jsonb_typeof(state) = 'object'),
  state_hash   text NOT NULL CHECK (state_hash ~ '^[0-9a-f]{64}$'),
  contract_ref text,
  sandbox_of   uuid,          -- the source session of an imported sandbox
  source       jsonb,         -- where an imported session came from (bundle checksum, export time)
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sessions_user_idx ON awf.sessions (user_id_hash);

CREATE TABLE awf.turns (
  session_id   uuid NOT NULL REFERENCES awf.sessions ON DELETE CASCADE,
  turn_id      bigint NOT NULL,  -- imported history may be numbered up to 0
  lines        text[] NOT NULL DEFAULT '{}',   -- the narrative lines (AWF.txt)
  acts         jsonb NOT NULL DEFAULT '[]',
  payload_hash text NOT NULL,
  state_hash   text NOT NULL,                  -- the state after this turn
  applied_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (session_id, turn_id)
);

-- Row-level security: awf_app sees only the sessions of awf.user_id_hash, and their turns;
-- awf_admin sees everything. The owner bypasses RLS.
ALTER TABLE awf.sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE awf.turns ENABLE ROW LEVEL SECURITY;
CREATE POLICY sessions_app ON awf.sessions TO awf_app
  USING (user_id_hash = awf.current_user_id_hash())
  WITH CHECK (user_id_hash = awf.current_user_id_hash());
CREATE POLICY turns_app ON awf.turns TO awf_app
  USING (EXISTS (SELECT FROM awf.sessions s WHERE s.session_id = turns.session_id));
CREATE POLICY sessions_admin ON awf.sessions TO awf_admin USING (true) WITH CHECK (true);
CREATE POLICY turns_admin ON awf.turns TO awf_admin USING (true) WITH CHECK (true);

-- Sessions and turns are written only by the extension, as the owner: no caller changes a
-- state without the WAL, or rewrites its history.
GRANT SELECT ON awf.sessions, awf.turns TO awf_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON awf.sessions, awf.turns TO awf_admin;

-- pg_dump keeps the rows of extension-owned tables only when they are marked.
SELECT pg_catalog.pg_extension_config_dump('awf.sessions', '');
SELECT pg_catalog.pg_extension_config_dump('awf.turns', '');
