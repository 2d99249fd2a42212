-- awf_lifecycle: the audit log, metric counters and the extension's locks.
-- Tables, policies and grants; created before the extension's functions (sql/finalize.sql
-- holds what needs them). Part of the fresh-install script, in the order lib.rs lists.

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

-- No role inserts audit rows directly: the extension writes them (hash-chained) as the
-- table owner, so nobody can add an unhashed or forged row.
GRANT SELECT ON awf.audit_log TO awf_admin;
-- Counters are written by the extension as the owner only: no role forges or locks them.
GRANT SELECT ON awf.metric_counters TO awf_app, awf_admin;
GRANT SELECT ON awf.metrics TO awf_app, awf_admin;

-- Serialization points (the audit chain, each user's quota): rows of this table, locked FOR
-- UPDATE by the extension as the owner. No role is granted anything on it, so no other role
-- can take these locks (unlike advisory locks, which any role can take).
CREATE TABLE awf.locks (
  name text PRIMARY KEY
);
-- The audit chain's row exists from the start, so its first writers never wait on each
-- other's insert of it.
INSERT INTO awf.locks (name) VALUES ('audit');

SELECT pg_catalog.pg_extension_config_dump('awf.audit_log', '');
SELECT pg_catalog.pg_extension_config_dump('awf.audit_log_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('awf.metric_counters', '');
