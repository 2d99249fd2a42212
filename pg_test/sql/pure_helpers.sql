-- The pure helpers: canonical form and hash, diff and patch, merge, redaction.
-- Each statement below is also an example in docs/sql-api.md.
\set VERBOSITY terse

-- Canonical JSON (RFC 8785): keys sorted, numbers in their shortest exact form, no spaces.
SELECT awf.canonical_json('{"name": "Ash", "hp": 10.0, "pos": [1e1, -0.50]}');

-- The content hash is SHA-256 of exactly those bytes, whatever the input spelling.
SELECT awf.canonical_hash('{"hp": 10, "name": "Ash"}') = awf.canonical_hash('{"name":"Ash","hp":1e1}') AS same_state;
SELECT awf.canonical_hash('{"a": 1}') = encode(sha256(convert_to(awf.canonical_json('{"a": 1}'), 'UTF8')), 'hex') AS hash_of_canonical_bytes;

-- Numbers that would not survive the f64 round trip are refused, never rounded (22023).
SELECT awf.canonical_hash('{"id": 9007199254740993}');
SELECT awf.canonical_hash('{"x": 0.10000000000000000001}');

-- A diff is an RFC 6902 patch; arrays are aligned, so an insertion is one operation.
SELECT awf.json_diff('{"hp": 10, "inv": ["sword", "rope"]}', '{"hp": 7, "inv": ["sword", "lamp", "rope"]}');
SELECT awf.json_patch_apply('{"hp": 10, "inv": ["sword", "rope"]}',
                            awf.json_diff('{"hp": 10, "inv": ["sword", "rope"]}', '{"hp": 7, "inv": ["sword", "lamp", "rope"]}'));

-- Applying a patch: every operation or none. A failing "test" refuses the whole patch (22023).
SELECT awf.json_patch_apply('{"gold": 5}', '[{"op": "test", "path": "/gold", "value": 5.0}, {"op": "replace", "path": "/gold", "value": 6}]');
SELECT awf.json_patch_apply('{"gold": 5}', '[{"op": "replace", "path": "/gold", "value": 6}, {"op": "test", "path": "/gold", "value": 5}]');
SELECT awf.json_patch_apply('{"gold": 5}', '[{"op": "remove", "path": "/silver"}]');

-- Three-way merge: disjoint edits merge cleanly; overlapping ones are reported and the rule decides.
SELECT jsonb_pretty(awf.json_merge('{"hp": 10, "gold": 5}', '{"hp": 8, "gold": 5}', '{"hp": 10, "gold": 9}', 'ours'));
SELECT jsonb_pretty(awf.json_merge('{"hp": 10}', '{"hp": 8}', '{"hp": 12}', 'theirs'));
SELECT awf.json_merge('{"hp": 10}', '{"hp": 8}', '{"hp": 12}', 'fail');
SELECT awf.json_merge('{}', '{}', '{}', 'coin-flip');

-- Redaction replaces secrets and PII with a kind and a salted hash, and reports each one.
SELECT jsonb_pretty(awf.redact('{"player": {"name": "Ash", "email": "ash@example.com", "api_key": "sk-live-1234567890abcdef"}, "note": "from 203.0.113.7"}', 'salt-1'));

-- Strict: NULL in, NULL out.
SELECT awf.canonical_hash(NULL) IS NULL AS strict;
