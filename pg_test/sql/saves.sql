-- Cloud saves: attach a save to a session, play turns, read any turn back exactly, verify,
-- restore and undo, retention. Reads like the "Cloud saves" part of docs/sql-api.md.
\set VERBOSITY terse
\set s '''33333333-3333-3333-3333-333333333333'''
SET awf.sync_snapshot_every = 3;

SELECT awf.session_upsert(:s, 'user-7', '{"player": {"hp": 10, "gold": 0, "log": []}}') ->> 'created' AS created;
CREATE TEMP TABLE sv AS SELECT (awf.save_create_or_attach(:s, 'user-7') ->> 'save_id')::uuid AS id;
SELECT awf.save_create_or_attach(:s, 'user-7') - 'save_id' AS attach_again;

-- Every applied turn is persisted into the save, as a base every 3 turns and diffs between.
SELECT awf.turn_submit(:s, n, jsonb_build_object('txt', 'Turn ' || n, 'acts', jsonb_build_array(
         jsonb_build_object('op', 'increment', 'path', '/player/gold', 'by', n),
         jsonb_build_object('op', 'append', 'path', '/player/log', 'value', 'turn ' || n)))) ->> 'turn_id' AS turn
FROM generate_series(1, 7) n;
SELECT turn_id, kind, length(content_hash) AS hash_len FROM awf.save_diffs WHERE save_id = (SELECT id FROM sv) ORDER BY turn_id;

-- Any turn rebuilds exactly: its canonical hash is the hash recorded when the turn was applied.
SELECT t.turn_id, awf.canonical_hash(awf.save_materialize((SELECT id FROM sv), t.turn_id)) = t.state_hash AS exact
FROM awf.turns t WHERE t.session_id = :s ORDER BY t.turn_id;
SELECT awf.save_materialize((SELECT id FROM sv), 4) -> 'player' AS player_at_turn_4;
SELECT convert_from(awf.save_materialize_bytes((SELECT id FROM sv), 2), 'UTF8') AS canonical_bytes_at_turn_2;
SELECT awf.save_verify((SELECT id FROM sv));

-- Errors: a turn the save does not hold (P0002), a turn out of order (22023), a diff over the
-- limit (54000). Messages name the save's random id, so these show the SQLSTATE only.
\set VERBOSITY sqlstate
SELECT awf.save_materialize((SELECT id FROM sv), 99);
SELECT awf.save_persist_turn((SELECT id FROM sv), 3, '{}');
\set VERBOSITY terse
SET awf.sync_max_diff_bytes_kb = 1;
SELECT awf.save_persist_turn((SELECT id FROM sv), 8, jsonb_build_object('player', jsonb_build_object('notes', repeat('x', 3000))));
RESET awf.sync_max_diff_bytes_kb;

-- A corrupted blob is found by verify and refused by materialize (XX001); then repaired here.
CREATE TEMP TABLE orig AS
  SELECT b.blob_hash, b.key_id, b.data FROM awf.save_blobs b JOIN awf.save_diffs d USING (blob_hash, key_id)
  WHERE d.save_id = (SELECT id FROM sv) AND d.turn_id = 5;
UPDATE awf.save_blobs b SET data = set_byte(b.data, 20, get_byte(b.data, 20) # 255) FROM orig o
  WHERE b.blob_hash = o.blob_hash AND b.key_id = o.key_id;
SELECT awf.save_verify((SELECT id FROM sv)) - 'reason' AS report;
\set VERBOSITY sqlstate
SELECT awf.save_materialize((SELECT id FROM sv), 5);
\set VERBOSITY terse
UPDATE awf.save_blobs b SET data = o.data FROM orig o WHERE b.blob_hash = o.blob_hash AND b.key_id = o.key_id;
SELECT awf.save_verify((SELECT id FROM sv)) ->> 'ok' AS repaired;

-- Restore to turn 4: turns 5..7 are archived, not destroyed; the session gets turn 4's state back.
SELECT awf.save_restore((SELECT id FROM sv), 4) - 'save_id' AS restore;
SELECT reason, from_turn, to_turn FROM awf.save_archives;
SELECT state -> 'player' -> 'gold' AS session_gold FROM awf.sessions WHERE session_id = :s;
-- ... and undone.
SELECT awf.save_archive_restore((SELECT archive_id FROM awf.save_archives)) - 'save_id' AS undo;
SELECT head_turn FROM awf.saves WHERE save_id = (SELECT id FROM sv);

-- Retention: history older than awf.sync_retention_days is pruned, the first kept turn re-based.
UPDATE awf.save_diffs SET created_at = now() - interval '2 years' WHERE save_id = (SELECT id FROM sv) AND turn_id <= 4;
SELECT awf.retention_enforce() - 'snapshots_deleted' - 'wal_entries_deleted' AS retention;
SELECT origin_turn, (SELECT kind FROM awf.save_diffs WHERE save_id = sv.id AND turn_id = 5) AS turn_5
FROM awf.saves, sv WHERE save_id = sv.id;
SELECT awf.save_verify((SELECT id FROM sv)) ->> 'ok' AS still_valid;

-- Client-sealed saves: bytes the server cannot read, still hashed and chained.
CREATE TEMP TABLE sealed AS SELECT (awf.save_create_or_attach(NULL, 'user-7', '1.0.0', true) ->> 'save_id')::uuid AS id;
SELECT awf.save_persist_sealed((SELECT id FROM sealed), 1, '\x5345414c4544'::bytea) ->> 'kind' AS kind;
SELECT awf.save_materialize_bytes((SELECT id FROM sealed), 1);
\set VERBOSITY sqlstate
SELECT awf.save_materialize((SELECT id FROM sealed), 1);
\set VERBOSITY terse

SELECT name, value FROM awf.metrics WHERE name LIKE 'awf.sync.%' ORDER BY name;
