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
REVOKE EXECUTE ON FUNCTION awf.wal_reconcile(uuid), awf.wal_cleanup(interval),
  awf.snapshot_prune(uuid), awf.session_import(jsonb, boolean),
  awf.retention_enforce(), awf.rotate_master_key(), awf.save_verify_sample(double precision)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION awf.wal_reconcile(uuid), awf.wal_cleanup(interval),
  awf.snapshot_prune(uuid), awf.session_import(jsonb, boolean),
  awf.retention_enforce(), awf.rotate_master_key(), awf.save_verify_sample(double precision)
  TO awf_admin;
