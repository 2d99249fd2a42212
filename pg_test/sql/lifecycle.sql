-- A session's life: create it, play turns through the WAL, snapshot and restore, recap,
-- export and import. Reads top to bottom like the SQL API reference (docs/sql-api.md).
\set VERBOSITY terse
\set s '''11111111-1111-1111-1111-111111111111'''

-- Create a session with its initial state.
SELECT awf.session_upsert(:s, 'user-1', '{"player": {"name": "Ash", "hp": 10, "gold": 5, "inventory": []}}', 'contract/v1') - 'state_hash';

-- Play turn 1: narrative lines plus acts, applied exactly once.
SELECT awf.turn_submit(:s, 1, '{"txt": "Ash enters the cave.\nIt is dark.", "acts": [
  {"op": "increment", "path": "/player/gold", "by": 3},
  {"op": "append", "path": "/player/inventory", "value": "torch"},
  {"op": "pin", "text": "Ash promised to find the lost lamp."},
  {"op": "objective", "id": "lamp", "text": "Find the lost lamp", "priority": 2}
]}') - 'state_hash';
SELECT state FROM awf.sessions WHERE session_id = :s;

-- The same turn again returns the first result and changes nothing.
SELECT awf.turn_submit(:s, 1, '{"txt": "Ash enters the cave.\nIt is dark.", "acts": [
  {"op": "increment", "path": "/player/gold", "by": 3},
  {"op": "append", "path": "/player/inventory", "value": "torch"},
  {"op": "pin", "text": "Ash promised to find the lost lamp."},
  {"op": "objective", "id": "lamp", "text": "Find the lost lamp", "priority": 2}
]}') ->> 'duplicate' AS duplicate;
SELECT state -> 'player' -> 'gold' AS gold_still_8 FROM awf.sessions WHERE session_id = :s;

-- The same turn with another payload is a conflict (23505); skipping ahead names the expected turn (22023).
SELECT awf.turn_submit(:s, 1, '{"txt": "Something else."}');
SELECT awf.turn_submit(:s, 3, '{"txt": "Too far."}');
-- An invalid act refuses the whole turn (22023): the first act is not half-applied.
SELECT awf.turn_submit(:s, 2, '{"acts": [{"op": "increment", "path": "/player/gold"}, {"op": "increment", "path": "/player/name"}]}');
SELECT turn_id, state -> 'player' -> 'gold' AS gold FROM awf.sessions WHERE session_id = :s;
-- A session that does not exist (P0002).
SELECT awf.turn_submit('00000000-0000-0000-0000-000000000000', 1, '{}');

-- The two-step form: append to the WAL, then apply (in another transaction if you like).
SELECT awf.wal_append(:s, 2, '{"txt": "A bat flies past.", "acts": [{"op": "remember", "text": "A bat startled Ash.", "salience": 0.8}]}') - 'payload_hash';
SELECT turn_id, applied, attempts FROM awf.wal_list(:s);
SELECT awf.wal_apply(:s, 2) - 'state_hash';
SELECT turn_id, applied, attempts FROM awf.wal_list(:s);

-- Reconciliation finds nothing to do when every entry is applied.
SELECT * FROM awf.wal_reconcile(:s);

-- Snapshots: capture, deduplicate, change the state, restore.
SELECT awf.snapshot_create(:s, 'before the fight') - 'content_hash';
SELECT awf.snapshot_create(:s, 'same state again') - 'content_hash';
SELECT awf.turn_submit(:s, 3, '{"txt": "Ash fights a goblin.", "acts": [{"op": "replace", "path": "/player/hp", "value": 4}]}') ->> 'turn_id' AS turn;
SELECT awf.snapshot_restore(:s, 1) - 'state_hash';
SELECT turn_id, state -> 'player' -> 'hp' AS hp_restored FROM awf.sessions WHERE session_id = :s;
SELECT id, turn_id, label FROM awf.snapshot_list(:s) ORDER BY id;
SELECT awf.snapshot_restore(:s, 999);

-- Recap: pins, then episodic memories by salience, then the last turns' lines.
SELECT jsonb_pretty(awf.recap(:s, 2));

-- Export (redacted by default) and import as a sandbox.
SELECT awf.session_upsert(:s, 'user-1', jsonb_set(state, '{player,email}', '"ash@example.com"')) ->> 'created' AS created
FROM awf.sessions WHERE session_id = :s;
SELECT b -> 'format' AS format, b -> 'version' AS version, b -> 'redaction' -> 'report' -> 'counts' AS redacted,
       position('ash@example.com' IN b::text) = 0 AS email_gone
FROM awf.session_export(:s) b;
SELECT (awf.session_import(awf.session_export(:s, false), true) - 'session_id' - 'bundle_checksum' - 'state_hash') AS imported;
SELECT count(*) AS sandboxes, bool_and(state_hash = (SELECT state_hash FROM awf.sessions WHERE session_id = :s)) AS same_state
FROM awf.sessions WHERE sandbox_of = :s;
-- A tampered bundle is refused, saying what failed (22023).
SELECT awf.session_import(jsonb_set(awf.session_export(:s, false), '{sections,state,player,gold}', '1000'));

-- Metrics count real events; every admin action is audited.
SELECT name, value FROM awf.metrics ORDER BY name;
SELECT action, count(*) FROM awf.audit_log GROUP BY action ORDER BY action;
