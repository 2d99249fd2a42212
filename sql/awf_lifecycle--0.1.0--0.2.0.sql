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
