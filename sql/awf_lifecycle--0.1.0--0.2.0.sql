-- awf_lifecycle 0.1.0 -> 0.2.0. Released scripts are frozen: never edit this file once 0.2.0
-- is released; ship the next change as awf_lifecycle--0.2.0--0.3.0.sql.
\echo Use "ALTER EXTENSION awf_lifecycle UPDATE TO '0.2.0'" to load this file. \quit

-- Identity: the acting user is named by awf.act_as() for one transaction (the setting
-- awf.user_id_hash is superuser-only from this version on), and row-level security reads it
-- through the library.
CREATE FUNCTION awf."act_as"(
	"user_id_hash" TEXT /* &str */
) RETURNS TEXT /* alloc::string::String */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'act_as_wrapper';

CREATE FUNCTION awf."acting_user"() RETURNS TEXT /* core::option::Option<alloc::string::String> */
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'acting_user_wrapper';

CREATE OR REPLACE FUNCTION awf.current_user_id_hash() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT awf.acting_user() $$;

REVOKE EXECUTE ON FUNCTION awf.act_as(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION awf.act_as(text) TO awf_app;

-- Serialization points (the audit chain, each user's quota): rows of this table, locked FOR
-- UPDATE by the extension as the owner. No role is granted anything on it, so no other role
-- can take these locks (unlike advisory locks, which any role can take).
CREATE TABLE awf.locks (
  name text PRIMARY KEY
);
-- The audit chain's row exists from the start, so its first writers never wait on each
-- other's insert of it.
INSERT INTO awf.locks (name) VALUES ('audit');

-- The extension writes these tables as their owner; callers keep only SELECT (row-level
-- security still applies), so nobody forges counters, plants data keys, or sets a device's
-- token or expiry outside the functions.
REVOKE INSERT, UPDATE ON awf.metric_counters FROM awf_app, awf_admin;
REVOKE INSERT ON awf.data_keys FROM awf_app;
REVOKE INSERT, UPDATE ON awf.devices FROM awf_app;
REVOKE INSERT, UPDATE ON awf.sessions, awf.turns, awf.turn_wal, awf.snapshots FROM awf_app;
REVOKE DELETE ON awf.snapshots FROM awf_app;
REVOKE INSERT, UPDATE ON awf.saves, awf.save_diffs, awf.save_archives, awf.save_archive_turns,
  awf.save_conflicts FROM awf_app;
REVOKE DELETE ON awf.save_diffs, awf.save_archive_turns FROM awf_app;

-- The HTTP gateway: its role, admin keys, and presenting a device credential or an admin key
-- for one transaction.
DO $$
BEGIN
  CREATE ROLE awf_gateway NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;
GRANT awf_app TO awf_gateway;
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

CREATE FUNCTION awf."act_as_admin"(
	"key" TEXT /* &str */
) RETURNS TEXT /* alloc::string::String */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'act_as_admin_wrapper';

CREATE FUNCTION awf."act_as_device"(
	"device_id" TEXT, /* &str */
	"sync_token" TEXT /* &str */
) RETURNS TEXT /* alloc::string::String */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'act_as_device_wrapper';

CREATE FUNCTION awf."acting_admin"() RETURNS bool /* bool */
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'acting_admin_wrapper';

CREATE FUNCTION awf."admin_key_create"(
	"name" TEXT, /* &str */
	"replace" bool DEFAULT false /* bool */
) RETURNS jsonb /* pgrx::JsonB */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'admin_key_create_wrapper';

CREATE FUNCTION awf."admin_key_list"() RETURNS TABLE (
	"name" TEXT,
	"created_at" timestamp with time zone,
	"created_by" TEXT,
	"last_used_at" timestamp with time zone,
	"revoked_at" timestamp with time zone
)
STRICT STABLE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'admin_key_list_wrapper';

CREATE FUNCTION awf."admin_key_revoke"(
	"name" TEXT /* &str */
) RETURNS bool /* bool */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'admin_key_revoke_wrapper';

-- The HTTP gateway (awf_gateway, a member of awf_app). It presents a device's credential or
-- an admin key for one transaction; only these two functions set those identities.
REVOKE EXECUTE ON FUNCTION awf.act_as_device(text, text), awf.act_as_admin(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION awf.act_as_device(text, text), awf.act_as_admin(text) TO awf_gateway;
-- Admin keys are managed by admins in SQL (or the CLI), never through the gateway.
REVOKE EXECUTE ON FUNCTION awf.admin_key_create(text, boolean), awf.admin_key_list(),
  awf.admin_key_revoke(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION awf.admin_key_create(text, boolean), awf.admin_key_list(),
  awf.admin_key_revoke(text) TO awf_admin;
-- The admin functions behind the HTTP admin routes. Each checks admin rights itself
-- (awf_admin, or an admin key presented in the transaction); save_delete also lets a device
-- delete its own user's saves.
GRANT EXECUTE ON FUNCTION awf.wal_reconcile(uuid), awf.session_import(jsonb, boolean),
  awf.retention_enforce(), awf.save_delete(uuid, text), awf.sync_stats(),
  awf.save_details(uuid), awf.device_details(text),
  awf.audit_query(uuid, text, text, timestamptz, timestamptz, integer) TO awf_gateway;
-- With an admin key the gateway sees every row, as awf_admin does; without one, only the
-- acting user's (the awf_app policies). Read-only: the extension writes as the owner.
CREATE POLICY sessions_gateway ON awf.sessions FOR SELECT TO awf_gateway USING ((SELECT awf.acting_admin()));
CREATE POLICY turns_gateway ON awf.turns FOR SELECT TO awf_gateway USING ((SELECT awf.acting_admin()));
CREATE POLICY turn_wal_gateway ON awf.turn_wal FOR SELECT TO awf_gateway USING ((SELECT awf.acting_admin()));
CREATE POLICY snapshots_gateway ON awf.snapshots FOR SELECT TO awf_gateway USING ((SELECT awf.acting_admin()));
CREATE POLICY saves_gateway ON awf.saves FOR SELECT TO awf_gateway USING ((SELECT awf.acting_admin()));
CREATE POLICY save_diffs_gateway ON awf.save_diffs FOR SELECT TO awf_gateway USING ((SELECT awf.acting_admin()));
CREATE POLICY save_archives_gateway ON awf.save_archives FOR SELECT TO awf_gateway USING ((SELECT awf.acting_admin()));
CREATE POLICY save_archive_turns_gateway ON awf.save_archive_turns FOR SELECT TO awf_gateway USING ((SELECT awf.acting_admin()));
CREATE POLICY save_blobs_gateway ON awf.save_blobs FOR SELECT TO awf_gateway USING ((SELECT awf.acting_admin()));
CREATE POLICY data_keys_gateway ON awf.data_keys FOR SELECT TO awf_gateway USING ((SELECT awf.acting_admin()));
CREATE POLICY devices_gateway ON awf.devices FOR SELECT TO awf_gateway USING ((SELECT awf.acting_admin()));
CREATE POLICY save_conflicts_gateway ON awf.save_conflicts FOR SELECT TO awf_gateway USING ((SELECT awf.acting_admin()));

-- Signed sync payloads.
CREATE FUNCTION awf."sync_request_verify"(
	"save_id" uuid, /* Uuid */
	"method" TEXT, /* &str */
	"path" TEXT, /* &str */
	"body_sha256" TEXT, /* &str */
	"signature" TEXT /* &str */
) RETURNS void
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'sync_request_verify_wrapper';

CREATE FUNCTION awf."sync_response_sign"(
	"save_id" uuid, /* Uuid */
	"status" INT, /* i32 */
	"nonce" TEXT, /* &str */
	"body_sha256" TEXT /* &str */
) RETURNS TEXT /* String */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'sync_response_sign_wrapper';

CREATE FUNCTION awf."sync_signing_key"(
	"save_id" uuid /* Uuid */
) RETURNS jsonb /* JsonB */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'sync_signing_key_wrapper';

-- Signed sync: a device's user (or an admin) may fetch the key of a save it can see; only
-- the gateway checks request signatures and signs answers.
REVOKE EXECUTE ON FUNCTION awf.sync_signing_key(uuid),
  awf.sync_request_verify(uuid, text, text, text, text),
  awf.sync_response_sign(uuid, integer, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION awf.sync_signing_key(uuid) TO awf_app, awf_admin;
GRANT EXECUTE ON FUNCTION awf.sync_request_verify(uuid, text, text, text, text),
  awf.sync_response_sign(uuid, integer, text, text) TO awf_gateway;

-- Download links of save exports.
CREATE FUNCTION awf."save_export_link"(
	"save_id" uuid, /* Uuid */
	"format" TEXT DEFAULT 'jsonl', /* &str */
	"include_audit" bool DEFAULT false /* bool */
) RETURNS jsonb /* JsonB */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'save_export_link_wrapper';

CREATE FUNCTION awf."save_export_redeem"(
	"token" TEXT /* &str */
) RETURNS TABLE (
	"save_id" uuid,  /* Uuid */
	"format" TEXT,  /* String */
	"archive" TEXT  /* String */
)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'save_export_redeem_wrapper';

-- Download links: minted by whoever may export the save; spent only by the gateway.
REVOKE EXECUTE ON FUNCTION awf.save_export_link(uuid, text, boolean),
  awf.save_export_redeem(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION awf.save_export_link(uuid, text, boolean) TO awf_app, awf_admin;
GRANT EXECUTE ON FUNCTION awf.save_export_redeem(text) TO awf_gateway;
GRANT EXECUTE ON FUNCTION awf.save_export_link(uuid, text, boolean) TO awf_gateway;

-- Sync down for admins.
CREATE FUNCTION awf."sync_down_admin"(
	"save_id" uuid, /* Uuid */
	"since_turn" bigint /* i64 */
) RETURNS jsonb /* JsonB */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'sync_down_admin_wrapper';

CREATE FUNCTION awf."sync_up_admin"(
	"request" jsonb /* JsonB */
) RETURNS jsonb /* JsonB */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'sync_up_admin_wrapper';

-- Sync for admins (over HTTP, an admin key on sync/down and sync/up).
REVOKE EXECUTE ON FUNCTION awf.sync_down_admin(uuid, bigint), awf.sync_up_admin(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION awf.sync_down_admin(uuid, bigint), awf.sync_up_admin(jsonb)
  TO awf_admin, awf_gateway;

-- Client-sealed saves by setting: `sealed` defaults to NULL, which takes awf.sync_client_sealed
-- (off unless the DBA turns it on), instead of false.
CREATE OR REPLACE FUNCTION awf."save_create_or_attach"(
	"session_id" uuid, /* Option < Uuid > */
	"user_id_hash" TEXT, /* Option < & str > */
	"version" TEXT DEFAULT '1.0.0', /* Option < & str > */
	"sealed" bool DEFAULT NULL /* Option < bool > */
) RETURNS jsonb /* JsonB */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'save_create_or_attach_wrapper';

-- A retried conflicting upload finds the conflict that archived its branch (instead of
-- archiving and merging it again); both also serve per-save archive listing and pruning.
CREATE INDEX save_archives_save_idx ON awf.save_archives (save_id, from_turn);
CREATE INDEX save_conflicts_archive_idx ON awf.save_conflicts (archive_id);

-- The states rewritten every turn are compressed with lz4 instead of pglz (the largest single
-- cost of a turn); values already stored keep their compression until rewritten.
ALTER TABLE awf.sessions ALTER COLUMN state SET COMPRESSION lz4;
-- The save no longer keeps a copy of its head state: the session's state is the head, and
-- anything else rebuilds it from the blobs; writing the whole state twice per turn was the
-- largest cost of a turn after compression.
ALTER TABLE awf.saves DROP COLUMN head_state;
-- Whether a save belongs to a user is read by the extension itself, as the owner; the SQL
-- helper it called through SPI is gone.
DROP FUNCTION awf.save_belongs_to(uuid, text);
