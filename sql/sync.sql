-- awf_lifecycle: devices, conflicts, tombstones and signed-request nonces.
-- Tables, policies and grants; created before the extension's functions (sql/finalize.sql
-- holds what needs them). Part of the fresh-install script, in the order lib.rs lists.

-- Phase 23, sync: devices, conflicts, tombstones.
-- A device belongs to one user; only the SHA-256 of its sync token is stored.
CREATE TABLE awf.devices (
  device_id        text PRIMARY KEY CHECK (device_id <> ''),
  user_id_hash     text NOT NULL CHECK (user_id_hash <> ''),
  session_id       uuid REFERENCES awf.sessions ON DELETE SET NULL,
  token_hash       text NOT NULL,
  token_expires_at timestamptz NOT NULL,
  last_turn_seen   bigint,
  last_seen_at     timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  rotated_at       timestamptz
);
CREATE INDEX devices_user_idx ON awf.devices (user_id_hash);

-- Every conflict sync_up resolved, with its report (the losing branch is in awf.save_archives).
CREATE TABLE awf.save_conflicts (
  conflict_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  save_id     uuid NOT NULL REFERENCES awf.saves ON DELETE CASCADE,
  device_id   text,
  strategy    text NOT NULL,
  chosen      text NOT NULL,
  archive_id  bigint REFERENCES awf.save_archives ON DELETE SET NULL,
  report      jsonb NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX save_conflicts_save_idx ON awf.save_conflicts (save_id, created_at);
-- The conflict that archived a branch (and the ON DELETE SET NULL of a pruned archive).
CREATE INDEX save_conflicts_archive_idx ON awf.save_conflicts (archive_id);

-- What is left of a deleted save or an erased user: no content, only that it existed.
CREATE TABLE awf.save_tombstones (
  save_id      uuid PRIMARY KEY,
  user_id_hash text NOT NULL,
  session_id   uuid,
  reason       text NOT NULL,
  turns        bigint NOT NULL,
  bytes        bigint NOT NULL,
  deleted_at   timestamptz NOT NULL DEFAULT now(),
  deleted_by   text NOT NULL DEFAULT current_user
);

ALTER TABLE awf.devices ENABLE ROW LEVEL SECURITY;
ALTER TABLE awf.save_conflicts ENABLE ROW LEVEL SECURITY;
CREATE POLICY devices_app ON awf.devices TO awf_app
  USING (user_id_hash = awf.current_user_id_hash())
  WITH CHECK (user_id_hash = awf.current_user_id_hash());
CREATE POLICY save_conflicts_app ON awf.save_conflicts TO awf_app
  USING (EXISTS (SELECT FROM awf.saves s WHERE s.save_id = save_conflicts.save_id));
CREATE POLICY devices_admin ON awf.devices TO awf_admin USING (true) WITH CHECK (true);
CREATE POLICY save_conflicts_admin ON awf.save_conflicts TO awf_admin USING (true) WITH CHECK (true);
-- Devices are written by the extension as the owner: no caller sets its own token or expiry.
GRANT SELECT ON awf.devices TO awf_app;
GRANT SELECT ON awf.save_conflicts TO awf_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON awf.devices, awf.save_conflicts, awf.save_tombstones TO awf_admin;

SELECT pg_catalog.pg_extension_config_dump('awf.devices', '');
SELECT pg_catalog.pg_extension_config_dump('awf.save_conflicts', '');
SELECT pg_catalog.pg_extension_config_dump('awf.save_tombstones', '');

-- Nonces of signed sync requests, per save (a save's key signs them), with the signature's
-- time, kept about two signature windows so a captured request cannot be replayed. Only the
-- extension reads or writes this table (as its owner).
CREATE TABLE awf.sync_nonces (
  save_id uuid NOT NULL,
  nonce   text NOT NULL,
  t       bigint NOT NULL,
  PRIMARY KEY (save_id, nonce)
);
CREATE INDEX sync_nonces_t_idx ON awf.sync_nonces (t);


-- Every sequence of the schema (those of the files before this one), for the roles that
-- read the tables.
GRANT USAGE ON ALL SEQUENCES IN SCHEMA awf TO awf_app, awf_admin;
