-- awf_lifecycle: SQL-language helpers and function privileges, after the Rust functions exist.

-- The WAL entries of a session, oldest first.
CREATE FUNCTION awf.wal_list(session_id uuid)
RETURNS TABLE (id bigint, turn_id bigint, applied boolean, payload_hash text,
               state_hash_before text, attempts integer, last_error text,
               created_at timestamptz, applied_at timestamptz)
LANGUAGE sql STABLE
AS $$
  SELECT w.id, w.turn_id, w.applied, w.payload_hash, w.state_hash_before, w.attempts,
         w.last_error, w.created_at, w.applied_at
  FROM awf.turn_wal w
  WHERE w.session_id = wal_list.session_id
  ORDER BY w.turn_id
$$;

-- The snapshots of a session, newest first (payloads left out: fetch one from awf.snapshots).
CREATE FUNCTION awf.snapshot_list(session_id uuid)
RETURNS TABLE (id bigint, turn_id bigint, created_at timestamptz, label text,
               content_hash text, size_bytes integer)
LANGUAGE sql STABLE
AS $$
  SELECT s.id, s.turn_id, s.created_at, s.label, s.content_hash, pg_column_size(s.payload)
  FROM awf.snapshots s
  WHERE s.session_id = snapshot_list.session_id
  ORDER BY s.created_at DESC, s.id DESC
$$;

-- Admin functions: awf_admin only. Everything else stays executable by awf_app (and PUBLIC,
-- which row-level security and table grants still constrain).
REVOKE EXECUTE ON FUNCTION awf.wal_reconcile(uuid), awf.wal_cleanup(interval), awf.wal_discard(uuid, bigint),
  awf.snapshot_prune(uuid), awf.session_import(jsonb, boolean),
  awf.retention_enforce(), awf.rotate_master_key(), awf.save_verify_sample(double precision)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION awf.wal_reconcile(uuid), awf.wal_cleanup(interval), awf.wal_discard(uuid, bigint),
  awf.snapshot_prune(uuid), awf.session_import(jsonb, boolean),
  awf.retention_enforce(), awf.rotate_master_key(), awf.save_verify_sample(double precision)
  TO awf_admin;

-- Conflicts resolved by awf.sync_up, newest first (of one save, or all).
CREATE FUNCTION awf.conflicts(save_id uuid DEFAULT NULL)
RETURNS TABLE (conflict_id uuid, save_id uuid, device_id text, strategy text, chosen text,
               archive_id bigint, created_at timestamptz, report jsonb)
LANGUAGE sql STABLE
AS $$
  SELECT c.conflict_id, c.save_id, c.device_id, c.strategy, c.chosen, c.archive_id,
         c.created_at, c.report
  FROM awf.save_conflicts c
  WHERE conflicts.save_id IS NULL OR c.save_id = conflicts.save_id
  ORDER BY c.created_at DESC, c.conflict_id
$$;

-- Conflict statistics: totals by strategy and by the branch that stayed.
CREATE FUNCTION awf.conflict_stats(save_id uuid DEFAULT NULL)
RETURNS jsonb
LANGUAGE sql STABLE
AS $$
  SELECT jsonb_build_object(
    'total', count(*),
    'by_strategy', coalesce((SELECT jsonb_object_agg(strategy, n) FROM (
        SELECT strategy, count(*) AS n FROM awf.save_conflicts
        WHERE conflict_stats.save_id IS NULL OR save_conflicts.save_id = conflict_stats.save_id
        GROUP BY strategy) s), '{}'),
    'by_chosen', coalesce((SELECT jsonb_object_agg(chosen, n) FROM (
        SELECT chosen, count(*) AS n FROM awf.save_conflicts
        WHERE conflict_stats.save_id IS NULL OR save_conflicts.save_id = conflict_stats.save_id
        GROUP BY chosen) s), '{}'))
  FROM awf.save_conflicts c
  WHERE conflict_stats.save_id IS NULL OR c.save_id = conflict_stats.save_id
$$;

-- Privacy operations that destroy data: awf_admin only.
REVOKE EXECUTE ON FUNCTION awf.save_delete(uuid, text), awf.user_delete(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION awf.save_delete(uuid, text), awf.user_delete(text, text) TO awf_admin;

-- Audit and admin views across users: awf_admin only.
REVOKE EXECUTE ON FUNCTION awf.audit_verify(bigint, text),
  awf.audit_query(uuid, text, text, timestamptz, timestamptz, integer),
  awf.sync_stats(), awf.save_details(uuid), awf.device_details(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION awf.audit_verify(bigint, text),
  awf.audit_query(uuid, text, text, timestamptz, timestamptz, integer),
  awf.sync_stats(), awf.save_details(uuid), awf.device_details(text) TO awf_admin;

-- Row-level security reads the acting user through the library, never through
-- current_setting() directly: calling awf.acting_user() loads the library, which defines the
-- superuser-only awf.user_id_hash, so a value an unprivileged role SET before the library was
-- loaded is discarded instead of read.
CREATE OR REPLACE FUNCTION awf.current_user_id_hash() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT awf.acting_user() $$;

-- Naming the user a transaction acts for is the trusted backend's right (awf_app) only.
REVOKE EXECUTE ON FUNCTION awf.act_as(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION awf.act_as(text) TO awf_app;

-- The HTTP gateway (awf_gateway, a member of awf_app). It presents a device's credential or
-- an admin key for one transaction; only these two functions set those identities.
REVOKE EXECUTE ON FUNCTION awf.act_as_device(text, text), awf.act_as_admin(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION awf.act_as_device(text, text), awf.act_as_admin(text) TO awf_gateway;
-- Admin keys are managed by admins in SQL (or the CLI), never through the gateway.
REVOKE EXECUTE ON FUNCTION awf.admin_key_create(text, boolean), awf.admin_key_list(),
  awf.admin_key_revoke(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION awf.admin_key_create(text, boolean), awf.admin_key_list(),
  awf.admin_key_revoke(text) TO awf_admin;
-- Signed sync: a device's user (or an admin) may fetch the key of a save it can see; only
-- the gateway checks request signatures and signs answers.
REVOKE EXECUTE ON FUNCTION awf.sync_signing_key(uuid),
  awf.sync_request_verify(uuid, text, text, text, text),
  awf.sync_response_sign(uuid, integer, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION awf.sync_signing_key(uuid) TO awf_app, awf_admin;
GRANT EXECUTE ON FUNCTION awf.sync_request_verify(uuid, text, text, text, text),
  awf.sync_response_sign(uuid, integer, text, text) TO awf_gateway;
-- Download links: minted by whoever may export the save; spent only by the gateway.
REVOKE EXECUTE ON FUNCTION awf.save_export_link(uuid, text, boolean),
  awf.save_export_redeem(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION awf.save_export_link(uuid, text, boolean) TO awf_app, awf_admin;
GRANT EXECUTE ON FUNCTION awf.save_export_redeem(text) TO awf_gateway;
GRANT EXECUTE ON FUNCTION awf.save_export_link(uuid, text, boolean) TO awf_gateway;
-- Sync for admins (over HTTP, an admin key on sync/down and sync/up).
REVOKE EXECUTE ON FUNCTION awf.sync_down_admin(uuid, bigint), awf.sync_up_admin(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION awf.sync_down_admin(uuid, bigint), awf.sync_up_admin(jsonb)
  TO awf_admin, awf_gateway;
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
