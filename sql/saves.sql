-- awf_lifecycle: cloud saves.
-- Tables, policies and grants; created before the extension's functions (sql/finalize.sql
-- holds what needs them). Part of the fresh-install script, in the order lib.rs lists.

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

SELECT pg_catalog.pg_extension_config_dump('awf.saves', '');
SELECT pg_catalog.pg_extension_config_dump('awf.save_blobs', '');
SELECT pg_catalog.pg_extension_config_dump('awf.save_diffs', '');
SELECT pg_catalog.pg_extension_config_dump('awf.save_archives', '');
SELECT pg_catalog.pg_extension_config_dump('awf.save_archives_archive_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('awf.save_archive_turns', '');
SELECT pg_catalog.pg_extension_config_dump('awf.data_keys', '');


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
