-- awf_lifecycle schema objects, created before the extension's functions.
-- The extension lives in schema awf (awf_lifecycle.control), which CREATE EXTENSION creates.

-- Roles. Roles are cluster-wide, so a second database reuses them.
-- Two databases creating the extension at once may both find a role missing: the loser of
-- that race finds it created.
DO $$
BEGIN
  BEGIN
    CREATE ROLE awf_app NOLOGIN;
  EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
  END;
  BEGIN
    CREATE ROLE awf_admin NOLOGIN;
  EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
  END;
  -- The HTTP server's role: what awf_app may do, plus presenting a device credential or an
  -- admin key for one transaction (awf.act_as_device, awf.act_as_admin).
  BEGIN
    CREATE ROLE awf_gateway NOLOGIN;
  EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
  END;
END
$$;
GRANT awf_app TO awf_gateway;
GRANT USAGE ON SCHEMA awf TO awf_app, awf_admin;

-- The user an awf_app connection acts for (SET awf.user_id_hash = '...'). A function so the
-- policies read one definition; empty or unset sees nothing.
CREATE FUNCTION awf.current_user_id_hash() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT nullif(current_setting('awf.user_id_hash', true), '') $$;

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

-- Every admin action and sync decision leaves a row here. Rows are hash-chained (row_hash
-- covers prev_hash and the row's content), so an edited or deleted row is detectable by
-- awf.audit_verify().
CREATE TABLE awf.audit_log (
  id         bigserial PRIMARY KEY,
  at         timestamptz NOT NULL DEFAULT now(),
  actor      text NOT NULL DEFAULT current_user,
  action     text NOT NULL,
  session_id uuid,
  save_id    uuid,
  device_id  text,
  details    jsonb NOT NULL DEFAULT '{}',
  prev_hash  text,
  row_hash   text
);
CREATE INDEX audit_log_session_idx ON awf.audit_log (session_id, at);
CREATE INDEX audit_log_save_idx ON awf.audit_log (save_id, at);
CREATE INDEX audit_log_action_idx ON awf.audit_log (action, at);
CREATE INDEX audit_log_device_idx ON awf.audit_log (device_id, at);

-- Event counters. Sharded by backend so concurrent turns do not queue on one row; the
-- metrics view sums the shards. Transactional: a rolled-back event is not counted.
CREATE TABLE awf.metric_counters (
  name  text NOT NULL,
  shard integer NOT NULL,
  value bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (name, shard)
);

CREATE VIEW awf.metrics AS
SELECT n.name, coalesce(sum(c.value), 0)::bigint AS value
FROM unnest(ARRAY[
  'awf.snapshots.created', 'awf.snapshots.restored', 'awf.recap.generated',
  'awf.export.sessions', 'awf.import.sessions', 'awf.wal.entries', 'awf.wal.reconciled'
]) AS n(name)
LEFT JOIN awf.metric_counters c USING (name)
GROUP BY n.name
UNION ALL
SELECT c.name, sum(c.value)::bigint
FROM awf.metric_counters c
WHERE c.name NOT IN ('awf.snapshots.created', 'awf.snapshots.restored', 'awf.recap.generated',
  'awf.export.sessions', 'awf.import.sessions', 'awf.wal.entries', 'awf.wal.reconciled')
GROUP BY c.name;

-- Row-level security: awf_app sees only the sessions of awf.user_id_hash, and
-- their turns, WAL and snapshots; awf_admin sees everything. The owner bypasses RLS.
ALTER TABLE awf.sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE awf.turns ENABLE ROW LEVEL SECURITY;
ALTER TABLE awf.turn_wal ENABLE ROW LEVEL SECURITY;
ALTER TABLE awf.snapshots ENABLE ROW LEVEL SECURITY;

CREATE POLICY sessions_app ON awf.sessions TO awf_app
  USING (user_id_hash = awf.current_user_id_hash())
  WITH CHECK (user_id_hash = awf.current_user_id_hash());
CREATE POLICY turns_app ON awf.turns TO awf_app
  USING (EXISTS (SELECT FROM awf.sessions s WHERE s.session_id = turns.session_id));
CREATE POLICY turn_wal_app ON awf.turn_wal TO awf_app
  USING (EXISTS (SELECT FROM awf.sessions s WHERE s.session_id = turn_wal.session_id));
CREATE POLICY snapshots_app ON awf.snapshots TO awf_app
  USING (EXISTS (SELECT FROM awf.sessions s WHERE s.session_id = snapshots.session_id));
CREATE POLICY sessions_admin ON awf.sessions TO awf_admin USING (true) WITH CHECK (true);
CREATE POLICY turns_admin ON awf.turns TO awf_admin USING (true) WITH CHECK (true);
CREATE POLICY turn_wal_admin ON awf.turn_wal TO awf_admin USING (true) WITH CHECK (true);
CREATE POLICY snapshots_admin ON awf.snapshots TO awf_admin USING (true) WITH CHECK (true);

-- Sessions, turns, the WAL and snapshots are written only by the extension, as the owner:
-- no caller changes a state without the WAL, or rewrites its history.
GRANT SELECT ON awf.sessions, awf.turns, awf.turn_wal, awf.snapshots TO awf_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON awf.sessions, awf.turns, awf.turn_wal, awf.snapshots TO awf_admin;
-- No role inserts audit rows directly: the extension writes them (hash-chained) as the
-- table owner, so nobody can add an unhashed or forged row.
GRANT SELECT ON awf.audit_log TO awf_admin;
-- Counters are written by the extension as the owner only: no role forges or locks them.
GRANT SELECT ON awf.metric_counters TO awf_app, awf_admin;
GRANT SELECT ON awf.metrics TO awf_app, awf_admin;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA awf TO awf_app, awf_admin;

-- Serialization points (the audit chain, each user's quota): rows of this table, locked FOR
-- UPDATE by the extension as the owner. No role is granted anything on it, so no other role
-- can take these locks (unlike advisory locks, which any role can take).
CREATE TABLE awf.locks (
  name text PRIMARY KEY
);
-- The audit chain's row exists from the start, so its first writers never wait on each
-- other's insert of it.
INSERT INTO awf.locks (name) VALUES ('audit');

-- pg_dump keeps the rows of extension-owned tables only when they are marked.
SELECT pg_catalog.pg_extension_config_dump('awf.sessions', '');
SELECT pg_catalog.pg_extension_config_dump('awf.turns', '');
SELECT pg_catalog.pg_extension_config_dump('awf.turn_wal', '');
SELECT pg_catalog.pg_extension_config_dump('awf.turn_wal_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('awf.snapshots', '');
SELECT pg_catalog.pg_extension_config_dump('awf.snapshots_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('awf.audit_log', '');
SELECT pg_catalog.pg_extension_config_dump('awf.audit_log_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('awf.metric_counters', '');

-- Phase 23: cloud saves. A save keeps every turn of a session as a base (the whole state) or
-- a diff (an RFC 6902 patch from the previous turn), each in a content-addressed blob, with a
-- hash chain over the turns. The save keeps no copy of its head state: a session's state is its
-- save's head (written once per turn, not twice); anything else rebuilds it from the blobs.
CREATE TABLE awf.saves (
  save_id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  session_id        uuid UNIQUE REFERENCES awf.sessions ON DELETE SET NULL,
  user_id_hash      text NOT NULL CHECK (user_id_hash <> ''),
  version           text NOT NULL DEFAULT '1.0.0',
  sealed            boolean NOT NULL DEFAULT false,  -- client-sealed: opaque bytes, no JSON
  origin_turn       bigint NOT NULL DEFAULT 0,       -- the first stored turn is origin_turn + 1
  origin_chain      text NOT NULL DEFAULT repeat('0', 64), -- chain hash the first stored turn links to
  head_turn         bigint NOT NULL DEFAULT 0,
  head_chain        text NOT NULL DEFAULT repeat('0', 64),
  head_content_hash text,
  bytes_stored      bigint NOT NULL DEFAULT 0 CHECK (bytes_stored >= 0), -- stored bytes of the blobs its turns use
  integrity_ok      boolean,
  last_verified_at  timestamptz,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  CHECK (head_turn >= origin_turn)
);
CREATE INDEX saves_user_idx ON awf.saves (user_id_hash);

-- Content-addressed blobs: blob_hash is the SHA-256 of the plaintext; key_id names the data
-- key that encrypts it ('' = not encrypted), so equal plaintexts share a row per key.
CREATE TABLE awf.save_blobs (
  blob_hash    text NOT NULL CHECK (blob_hash ~ '^[0-9a-f]{64}$'),
  key_id       text NOT NULL DEFAULT '',
  data         bytea NOT NULL,
  plain_bytes  integer NOT NULL,
  stored_bytes integer NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (blob_hash, key_id)
);

CREATE TABLE awf.save_diffs (
  save_id      uuid NOT NULL REFERENCES awf.saves ON DELETE CASCADE,
  turn_id      bigint NOT NULL,
  kind         text NOT NULL CHECK (kind IN ('base', 'diff', 'sealed')),
  blob_hash    text NOT NULL,
  key_id       text NOT NULL,
  content_hash text NOT NULL,
  chain_hash   text NOT NULL,
  stored_bytes integer NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (save_id, turn_id),
  FOREIGN KEY (blob_hash, key_id) REFERENCES awf.save_blobs
);
CREATE INDEX save_diffs_blob_idx ON awf.save_diffs (blob_hash, key_id);

-- Turns taken off a save's head (a manual restore, a losing conflict branch, retention) are
-- archived whole, never destroyed, and can be brought back.
CREATE TABLE awf.save_archives (
  archive_id   bigserial PRIMARY KEY,
  save_id      uuid NOT NULL REFERENCES awf.saves ON DELETE CASCADE,
  reason       text NOT NULL CHECK (reason IN ('manual_restore', 'conflict', 'retention')),
  from_turn    bigint NOT NULL,
  to_turn      bigint NOT NULL,
  base_chain   text NOT NULL,       -- chain hash of from_turn - 1, where the branch attaches
  details      jsonb NOT NULL DEFAULT '{}',
  created_at   timestamptz NOT NULL DEFAULT now(),
  restored_at  timestamptz
);
CREATE TABLE awf.save_archive_turns (
  archive_id   bigint NOT NULL REFERENCES awf.save_archives ON DELETE CASCADE,
  turn_id      bigint NOT NULL,
  kind         text NOT NULL,
  blob_hash    text NOT NULL,
  key_id       text NOT NULL,
  content_hash text NOT NULL,
  chain_hash   text NOT NULL,
  stored_bytes integer NOT NULL,
  PRIMARY KEY (archive_id, turn_id),
  FOREIGN KEY (blob_hash, key_id) REFERENCES awf.save_blobs
);
CREATE INDEX save_archive_turns_blob_idx ON awf.save_archive_turns (blob_hash, key_id);
-- A save's archives by where they attach: a retried conflicting upload finds the archive of
-- its branch (and the save's archives are listed and pruned per save).
CREATE INDEX save_archives_save_idx ON awf.save_archives (save_id, from_turn);

-- Per-user data keys, wrapped by the master key (never stored in clear). Rotating the master
-- key rewraps these rows and rewrites no blob.
CREATE TABLE awf.data_keys (
  user_id_hash  text PRIMARY KEY,
  key_id        text NOT NULL UNIQUE,
  wrapped       bytea NOT NULL,
  master_key_id text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  rotated_at    timestamptz
);

ALTER TABLE awf.saves ENABLE ROW LEVEL SECURITY;
ALTER TABLE awf.save_diffs ENABLE ROW LEVEL SECURITY;
ALTER TABLE awf.save_archives ENABLE ROW LEVEL SECURITY;
CREATE POLICY saves_app ON awf.saves TO awf_app
  USING (user_id_hash = awf.current_user_id_hash())
  WITH CHECK (user_id_hash = awf.current_user_id_hash()
              -- a save can only be bound to a session the caller sees (its own)
              AND (session_id IS NULL
                   OR EXISTS (SELECT FROM awf.sessions s WHERE s.session_id = saves.session_id)));
CREATE POLICY save_diffs_app ON awf.save_diffs TO awf_app
  USING (EXISTS (SELECT FROM awf.saves s WHERE s.save_id = save_diffs.save_id));
CREATE POLICY save_archives_app ON awf.save_archives TO awf_app
  USING (EXISTS (SELECT FROM awf.saves s WHERE s.save_id = save_archives.save_id));
ALTER TABLE awf.save_archive_turns ENABLE ROW LEVEL SECURITY;
CREATE POLICY save_archive_turns_app ON awf.save_archive_turns TO awf_app
  USING (EXISTS (SELECT FROM awf.save_archives a WHERE a.archive_id = save_archive_turns.archive_id));
CREATE POLICY save_archive_turns_admin ON awf.save_archive_turns TO awf_admin USING (true) WITH CHECK (true);
CREATE POLICY saves_admin ON awf.saves TO awf_admin USING (true) WITH CHECK (true);
CREATE POLICY save_diffs_admin ON awf.save_diffs TO awf_admin USING (true) WITH CHECK (true);
CREATE POLICY save_archives_admin ON awf.save_archives TO awf_admin USING (true) WITH CHECK (true);

-- Saves are written only by the extension, as the owner: no caller changes a byte count the
-- quota reads, or a save's turns outside the functions.
GRANT SELECT ON awf.saves, awf.save_diffs, awf.save_archives, awf.save_archive_turns TO awf_app;
-- A blob is visible to an awf_app caller only through a turn or archive of its own saves
-- (the inner tables' policies apply), so no one reads another user's blobs; and only the
-- extension inserts blobs, so no one plants bytes under a hash another user will need.
ALTER TABLE awf.save_blobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY save_blobs_app_read ON awf.save_blobs FOR SELECT TO awf_app
  USING (EXISTS (SELECT FROM awf.save_diffs d
                 WHERE d.blob_hash = save_blobs.blob_hash AND d.key_id = save_blobs.key_id)
         OR EXISTS (SELECT FROM awf.save_archive_turns a
                    WHERE a.blob_hash = save_blobs.blob_hash AND a.key_id = save_blobs.key_id));
CREATE POLICY save_blobs_admin ON awf.save_blobs TO awf_admin USING (true) WITH CHECK (true);
-- Only the extension writes blobs (as the owner; see src/saves/blobs.rs).
GRANT SELECT ON awf.save_blobs TO awf_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON awf.saves, awf.save_diffs, awf.save_archives,
  awf.save_archive_turns, awf.save_blobs TO awf_admin;
-- Wrapped data keys are useless without the master key, which only the extension's code in
-- the server process reads (from the file named by the superuser-only awf.master_key_file).
ALTER TABLE awf.data_keys ENABLE ROW LEVEL SECURITY;
CREATE POLICY data_keys_app ON awf.data_keys TO awf_app
  USING (user_id_hash = awf.current_user_id_hash())
  WITH CHECK (user_id_hash = awf.current_user_id_hash());
CREATE POLICY data_keys_admin ON awf.data_keys TO awf_admin USING (true) WITH CHECK (true);
-- Data keys are created by the extension as the owner: a planted key would break rotation.
GRANT SELECT ON awf.data_keys TO awf_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON awf.data_keys TO awf_admin;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA awf TO awf_app, awf_admin;

SELECT pg_catalog.pg_extension_config_dump('awf.saves', '');
SELECT pg_catalog.pg_extension_config_dump('awf.save_blobs', '');
SELECT pg_catalog.pg_extension_config_dump('awf.save_diffs', '');
SELECT pg_catalog.pg_extension_config_dump('awf.save_archives', '');
SELECT pg_catalog.pg_extension_config_dump('awf.save_archives_archive_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('awf.save_archive_turns', '');
SELECT pg_catalog.pg_extension_config_dump('awf.data_keys', '');

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

-- Admin keys: named credentials of admin tools, presented to the HTTP gateway. Only the
-- SHA-256 of a key is stored; only the extension reads or writes this table (as its owner).
CREATE TABLE awf.admin_keys (
  name         text PRIMARY KEY,
  key_hash     text NOT NULL UNIQUE,
  created_at   timestamptz NOT NULL DEFAULT now(),
  created_by   text NOT NULL,
  last_used_at timestamptz,
  revoked_at   timestamptz
);
SELECT pg_catalog.pg_extension_config_dump('awf.admin_keys', '');

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

-- One-use download links of save exports; only the token's SHA-256 is kept. Only the
-- extension reads or writes this table (as its owner).
CREATE TABLE awf.export_links (
  token_hash    text PRIMARY KEY,
  save_id       uuid NOT NULL REFERENCES awf.saves (save_id) ON DELETE CASCADE,
  format        text NOT NULL,
  include_audit boolean NOT NULL,
  created_by    text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz NOT NULL,
  used_at       timestamptz
);
CREATE INDEX export_links_save_idx ON awf.export_links (save_id);
