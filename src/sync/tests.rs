//! In-backend tests of devices, sync up and down, and conflicts.

// pg_test functions live in schema `tests`, so the module must carry that name.
#[pgrx::pg_schema]
mod tests {
    use crate::testing::{assert_sqlstate, json, new_session, one, run, submit, SID};
    use pgrx::prelude::*;
    use serde_json::{json, Value};

    /// A session with a save and `turns` turns, and a registered device; (save id, token).
    fn setup(turns: i64) -> (String, String) {
        new_session();
        let save = json(&format!("SELECT awf.save_create_or_attach('{SID}', 'u1')"))["save_id"]
            .as_str()
            .unwrap()
            .to_owned();
        for n in 1..=turns {
            submit(n, r#"[{"op": "increment", "path": "/player/gold"}]"#);
        }
        let tok = json(&format!(
            "SELECT awf.device_register('phone', 'u1', '{SID}')"
        ))["sync_token"]
            .as_str()
            .unwrap()
            .to_owned();
        (save, tok)
    }

    fn head(save: &str) -> (i64, String) {
        let h = json(&format!(
            "SELECT jsonb_build_object('t', head_turn, 'c', head_chain) FROM awf.saves WHERE save_id = '{save}'"
        ));
        (
            h["t"].as_i64().unwrap(),
            h["c"].as_str().unwrap().to_owned(),
        )
    }

    fn chain_at(save: &str, turn: i64) -> String {
        one::<String>(&format!(
            "SELECT chain_hash FROM awf.save_diffs WHERE save_id = '{save}' AND turn_id = {turn}"
        ))
        .unwrap()
    }

    fn up(tok: &str, req: Value) -> Value {
        json(&format!(
            "SELECT awf.sync_up('phone', '{tok}', '{}')",
            req.to_string().replace('\'', "''")
        ))
    }

    fn gold_turns(from: i64, n: i64, start_gold: i64) -> Value {
        Value::Array(
            (0..n)
                .map(|i| json!({"turn_id": from + i, "patch": [{"op": "replace", "path": "/player/gold", "value": start_gold + 10 * (i + 1)}]}))
                .collect(),
        )
    }

    #[pg_test]
    fn devices_get_tokens_stored_only_as_hashes() {
        let (_, tok) = setup(0);
        assert_eq!(tok.len(), 64);
        assert_eq!(
            one::<String>("SELECT token_hash FROM awf.devices WHERE device_id = 'phone'"),
            Some(awf_core::token::token_hash(&tok).unwrap())
        );
        assert_eq!(
            one::<i64>(&format!(
                "SELECT count(*) FROM awf.devices WHERE token_hash = '{tok}'"
            )),
            Some(0)
        );
        let rotated = json(&format!("SELECT awf.device_rotate_token('phone', '{tok}')"));
        let new = rotated["sync_token"].as_str().unwrap();
        assert_ne!(new, tok);
        assert_sqlstate(
            &format!("SELECT awf.device_rotate_token('phone', '{tok}')"),
            "42501",
        );
        assert_sqlstate("SELECT awf.device_rotate_token('phone', 'nope')", "42501");
        assert_sqlstate(
            &format!("SELECT awf.device_rotate_token('tablet', '{new}')"),
            "42501",
        );
        run("UPDATE awf.devices SET token_expires_at = now() - interval '1 day'");
        assert_sqlstate(
            &format!("SELECT awf.device_rotate_token('phone', '{new}')"),
            "42501",
        );
        // Another user's device, an empty id, a session of another user or none.
        assert_sqlstate("SELECT awf.device_register('phone', 'u2')", "42501");
        assert_sqlstate("SELECT awf.device_register('', 'u1')", "22023");
        assert_sqlstate(
            &format!("SELECT awf.device_register('tv', 'u2', '{SID}')"),
            "42501",
        );
        assert_sqlstate(
            "SELECT awf.device_register('tv', 'u1', '00000000-0000-0000-0000-000000000000')",
            "P0002",
        );
    }

    #[pg_test]
    fn every_sync_down_answer_carries_prev_chain() {
        let (save, tok) = setup(3);
        let (t, c) = head(&save);
        let down = |since: i64| {
            json(&format!(
                "SELECT awf.sync_down('phone', '{tok}', '{save}', {since})"
            ))
        };
        // At the head: the head's own chain hash, and nothing to send.
        let at_head = down(t);
        assert_eq!(at_head["prev_chain"], json!(c), "{at_head}");
        assert_eq!(at_head["turns"], json!([]));
        // Behind: the chain hash of since_turn.
        assert_eq!(down(1)["prev_chain"], json!(chain_at(&save, 1)));
        // Ahead: the key is there, null (the server has no such turn).
        let ahead = down(t + 5);
        assert_eq!(ahead["ahead"], json!(true));
        assert!(
            ahead.as_object().unwrap().contains_key("prev_chain"),
            "{ahead}"
        );
        assert_eq!(ahead["prev_chain"], Value::Null);
        // Far behind (a hostile since_turn): an answer, not an integrity error.
        let far = down(-1000);
        assert!(far.as_object().unwrap().contains_key("prev_chain"), "{far}");
    }

    #[pg_test]
    fn sync_down_then_up_fast_forwards() {
        let (save, tok) = setup(3);
        let down = json(&format!(
            "SELECT awf.sync_down('phone', '{tok}', '{save}', 1)"
        ));
        assert_eq!(down["turns"].as_array().unwrap().len(), 2);
        assert_eq!(down["prev_chain"], json!(chain_at(&save, 1)));
        assert_eq!(down["turns"][1]["chain_hash"], json!(chain_at(&save, 3)));
        assert_eq!(
            one::<i64>("SELECT last_turn_seen FROM awf.devices WHERE device_id = 'phone'"),
            Some(3)
        );
        let (t, c) = head(&save);
        let r = up(
            &tok,
            json!({"save_id": save, "base_turn": t, "base_chain": c, "turns": gold_turns(4, 2, 8)}),
        );
        assert_eq!(r["status"], json!("fast_forward"), "{r}");
        assert_eq!(r["head_turn"], json!(5));
        assert_eq!(
            json("SELECT state -> 'player' -> 'gold' FROM awf.sessions"),
            json!(28)
        );
        assert_eq!(
            json(&format!("SELECT awf.save_verify('{save}')"))["ok"],
            json!(true)
        );
        // A claimed chain hash that differs from the server's is a conflict.
        let (t, c) = head(&save);
        let mut turns = gold_turns(t + 1, 1, 0);
        turns[0]["chain_hash"] = json!("ab".repeat(32));
        assert_sqlstate(
            &format!(
                "SELECT awf.sync_up('phone', '{tok}', '{}')",
                json!({"save_id": save, "base_turn": t, "base_chain": c, "turns": turns})
            ),
            "23505",
        );
    }

    /// A long upload is written in one pass: each turn's row and blob, the save's head once.
    /// Over `awf.sync_max_upload_turns` the request is refused whole (54000).
    #[pg_test]
    fn a_long_upload_lands_whole_and_an_over_long_one_is_refused() {
        let (save, tok) = setup(1);
        let (t, c) = head(&save);
        let r = up(
            &tok,
            json!({"save_id": save, "base_turn": t, "base_chain": c, "turns": gold_turns(2, 300, 0)}),
        );
        assert_eq!(r["head_turn"], json!(301), "{r}");
        assert_eq!(
            one::<i64>(&format!(
                "SELECT count(*) FROM awf.save_diffs WHERE save_id = '{save}'"
            )),
            Some(302)
        );
        assert_eq!(
            json(&format!("SELECT awf.save_verify('{save}')"))["ok"],
            json!(true)
        );
        let stored = one::<i64>(&format!(
            "SELECT bytes_stored FROM awf.saves WHERE save_id = '{save}'"
        ));
        let summed = one::<i64>(&format!(
            "SELECT sum(stored_bytes)::bigint FROM awf.save_diffs WHERE save_id = '{save}'"
        ));
        assert_eq!(
            stored, summed,
            "the byte count moved once by the whole batch"
        );
        run("SET awf.sync_max_upload_turns = 2");
        let (t, c) = head(&save);
        assert_sqlstate(
            &format!(
                "SELECT awf.sync_up('phone', '{tok}', '{}')",
                json!({"save_id": save, "base_turn": t, "base_chain": c, "turns": gold_turns(t + 1, 3, 0)})
            ),
            "54000",
        );
        assert_eq!(head(&save).0, 301, "nothing written");
    }

    #[pg_test]
    fn sync_error_paths() {
        let (save, tok) = setup(2);
        let (t, c) = head(&save);
        let ok = json!({"save_id": save, "base_turn": t, "base_chain": c, "turns": gold_turns(t + 1, 1, 0)});
        assert_sqlstate(
            &format!("SELECT awf.sync_up('phone', '{}', '{ok}')", "0".repeat(64)),
            "42501",
        );
        run("SELECT awf.session_upsert('22222222-2222-2222-2222-222222222222', 'u2', '{}')");
        let other =
            json("SELECT awf.save_create_or_attach('22222222-2222-2222-2222-222222222222', 'u2')")
                ["save_id"]
                .as_str()
                .unwrap()
                .to_owned();
        let mut theirs = ok.clone();
        theirs["save_id"] = json!(other);
        assert_sqlstate(
            &format!("SELECT awf.sync_up('phone', '{tok}', '{theirs}')"),
            "42501",
        );
        assert_sqlstate(
            &format!("SELECT awf.sync_down('phone', '{tok}', '{other}', 0)"),
            "42501",
        );
        let mut stale = ok.clone();
        stale["base_chain"] = json!("cd".repeat(32));
        assert_sqlstate(
            &format!("SELECT awf.sync_up('phone', '{tok}', '{stale}')"),
            "23505",
        );
        let mut gap = ok.clone();
        gap["turns"][0]["turn_id"] = json!(t + 5);
        assert_sqlstate(
            &format!("SELECT awf.sync_up('phone', '{tok}', '{gap}')"),
            "22023",
        );
        let mut bad = ok.clone();
        bad["strategy"] = json!("coin_flip");
        assert_sqlstate(
            &format!("SELECT awf.sync_up('phone', '{tok}', '{bad}')"),
            "22023",
        );
        assert_sqlstate(
            &format!("SELECT awf.sync_up('phone', '{tok}', '[]')"),
            "22023",
        );
        assert_eq!(head(&save).0, t, "nothing was written");
    }

    #[pg_test]
    fn longest_chain_conflict_archives_the_shorter_branch() {
        let (save, tok) = setup(2);
        let base = (2, chain_at(&save, 2));
        submit(3, "[]");
        submit(4, "[]");
        // The device played 3 turns on turn 2 meanwhile: it is longer, so it wins.
        let r = up(
            &tok,
            json!({"save_id": save, "base_turn": base.0, "base_chain": base.1, "turns": gold_turns(3, 3, 2)}),
        );
        assert_eq!(r["status"], json!("conflict"), "{r}");
        let rep = &r["conflict"];
        assert!(rep["conflict_id"].is_string());
        assert_eq!(rep["branches"][1]["device_id"], json!("phone"));
        assert_eq!(
            rep["resolution"]["chosen_branch"],
            rep["branches"][1]["branch_id"]
        );
        assert_eq!(
            rep["resolution"]["archived_branch"],
            rep["branches"][0]["branch_id"]
        );
        assert_eq!(r["head_turn"], json!(5));
        assert_eq!(
            json("SELECT state -> 'player' -> 'gold' FROM awf.sessions"),
            json!(32)
        );
        assert_eq!(
            one::<String>(
                "SELECT reason || ':' || from_turn || '-' || to_turn FROM awf.save_archives"
            )
            .as_deref(),
            Some("conflict:3-4")
        );
        assert_eq!(
            json(&format!("SELECT awf.save_verify('{save}')"))["ok"],
            json!(true)
        );
        // The archived server branch can be brought back.
        run("SELECT awf.save_archive_restore(archive_id) FROM awf.save_archives");
        assert_eq!(head(&save).0, 4);
        assert_eq!(
            json(&format!("SELECT awf.save_verify('{save}')"))["ok"],
            json!(true)
        );
        assert_eq!(
            one::<i64>("SELECT (awf.conflict_stats() ->> 'total')::bigint"),
            Some(1)
        );
        assert_eq!(
            one::<i64>(&format!("SELECT count(*) FROM awf.conflicts('{save}')")),
            Some(1)
        );
    }

    #[pg_test]
    fn server_wins_keeps_the_head_and_archives_the_device_branch() {
        let (save, tok) = setup(2);
        let base = (1, chain_at(&save, 1));
        let before = head(&save);
        let r = up(
            &tok,
            json!({"save_id": save, "base_turn": base.0, "base_chain": base.1,
                                "turns": gold_turns(2, 4, 1), "strategy": "server_wins"}),
        );
        assert_eq!(
            r["conflict"]["resolution"]["archived_branch"],
            r["conflict"]["branches"][1]["branch_id"]
        );
        assert_eq!(head(&save), before);
        assert_eq!(
            one::<i64>("SELECT count(*) FROM awf.save_archive_turns"),
            Some(4),
            "the device's branch is archived whole"
        );
    }

    #[pg_test]
    fn a_retried_conflicting_upload_gets_its_resolution_again_not_a_second_one() {
        for strategy in ["server_wins", "three_way_merge"] {
            let (save, tok) = setup(2);
            let req = json!({"save_id": save, "base_turn": 1, "base_chain": chain_at(&save, 1),
                             "turns": gold_turns(2, 3, 1), "strategy": strategy});
            let first = up(&tok, req.clone());
            assert_eq!(first["status"], json!("conflict"), "{first}");
            let rows = || {
                json(&format!(
                    "SELECT jsonb_build_array(
                       (SELECT count(*) FROM awf.save_conflicts WHERE save_id = '{save}'),
                       (SELECT count(*) FROM awf.save_archives WHERE save_id = '{save}'),
                       (SELECT head_turn FROM awf.saves WHERE save_id = '{save}'))"
                ))
            };
            let before = rows();
            // The answer was lost; the device sends the same upload again.
            let again = up(&tok, req);
            assert_eq!(again["status"], json!("conflict"), "{again}");
            assert_eq!(again["already_resolved"], json!(true), "{again}");
            assert_eq!(
                again["conflict"]["conflict_id"],
                first["conflict"]["conflict_id"]
            );
            assert_eq!(again["head_chain"], first["head_chain"]);
            assert_eq!(
                rows(),
                before,
                "{strategy}: nothing archived, merged or recorded twice"
            );
            run("DELETE FROM awf.devices");
            run(&format!("DELETE FROM awf.saves WHERE save_id = '{save}'"));
            run(&format!(
                "DELETE FROM awf.sessions WHERE session_id = '{SID}'"
            ));
        }
    }

    #[pg_test]
    fn three_way_merge_merges_and_reports_overlaps() {
        let (save, tok) = setup(1);
        let base = (1, chain_at(&save, 1));
        submit(
            2,
            r#"[{"op": "replace", "path": "/player/hp", "value": 3}, {"op": "add", "path": "/player/title", "value": "knight"}]"#,
        );
        let r = up(
            &tok,
            json!({"save_id": save, "base_turn": base.0, "base_chain": base.1,
            "strategy": "three_way_merge",
            "turns": [{"turn_id": 2, "patch": [{"op": "replace", "path": "/player/hp", "value": 9},
                                                {"op": "add", "path": "/player/pet", "value": "owl"}]}]}),
        );
        assert_eq!(r["conflict"]["resolution"]["chosen_branch"], json!("merge"));
        assert_eq!(
            r["conflict"]["merge_conflicts"][0]["path"],
            json!("/player/hp")
        );
        assert_eq!(r["head_turn"], json!(3));
        let state = json(&format!("SELECT awf.save_materialize('{save}')"));
        assert_eq!(state["player"]["pet"], json!("owl"));
        assert_eq!(state["player"]["title"], json!("knight"));
        assert_eq!(
            state["player"]["hp"],
            json!(3),
            "overlaps go to the server by default"
        );
    }

    #[pg_test]
    fn sync_down_sends_a_base_to_a_device_behind_the_oldest_kept_turn() {
        run("SET awf.sync_snapshot_every = 3");
        let (save, tok) = setup(7);
        run(&format!(
            "UPDATE awf.save_diffs SET created_at = now() - interval '2 years' WHERE save_id = '{save}' AND turn_id <= 4"
        ));
        run("SELECT awf.retention_enforce()");
        let down = json(&format!(
            "SELECT awf.sync_down('phone', '{tok}', '{save}', 1)"
        ));
        let base = down["base"]["turn_id"].as_i64().unwrap();
        assert!(base >= 5, "{down}");
        assert_eq!(
            down["base"]["state"],
            json(&format!("SELECT awf.save_materialize('{save}', {base})"))
        );
        assert_eq!(
            down["turns"].as_array().unwrap().len() as i64,
            7 - base,
            "diffs after the base"
        );
        let ahead = json(&format!(
            "SELECT awf.sync_down('phone', '{tok}', '{save}', 99)"
        ));
        assert_eq!(ahead["ahead"], json!(true));
    }

    #[pg_test]
    fn conflict_resolve_is_the_resolver_as_an_api() {
        let (save, _) = setup(1);
        let branches = json!([
            {"branch_id": "server-a", "turn_id": 5, "chain_hash": "a", "length": 2, "server": true},
            {"branch_id": "client-b", "turn_id": 6, "chain_hash": "b", "length": 3, "device_id": "phone", "integrity_score": 0.5}
        ]);
        let r = json(&format!(
            "SELECT awf.conflict_resolve('{save}', '{branches}', 'longest_chain')"
        ));
        assert_eq!(r["resolution"]["chosen_branch"], json!("client-b"));
        let r = json(&format!(
            "SELECT awf.conflict_resolve('{save}', '{branches}', 'server_wins')"
        ));
        assert_eq!(r["resolution"]["archived_branches"], json!(["client-b"]));
        assert_sqlstate(
            &format!("SELECT awf.conflict_resolve('{save}', '{branches}', 'nope')"),
            "22023",
        );
        assert_sqlstate(
            &format!("SELECT awf.conflict_resolve('{save}', '[{{}}]', 'server_wins')"),
            "22023",
        );
        assert_sqlstate(
            &format!("SELECT awf.conflict_resolve('00000000-0000-0000-0000-000000000000', '{branches}', 'server_wins')"),
            "P0002",
        );
    }

    #[pg_test]
    fn a_retried_upload_is_up_to_date_not_a_conflict() {
        let (save, tok) = setup(2);
        let (t, c) = head(&save);
        let req = json!({"save_id": save, "base_turn": t, "base_chain": c,
                         "strategy": "three_way_merge", "turns": gold_turns(t + 1, 2, 0)});
        assert_eq!(up(&tok, req.clone())["status"], json!("fast_forward"));
        let again = up(&tok, req.clone());
        assert_eq!(again["status"], json!("up_to_date"), "{again}");
        assert_eq!(head(&save).0, t + 2, "applied once");
        // A device that sent one turn already and now sends it again with one more.
        let mut longer = req.clone();
        longer["turns"] = gold_turns(t + 1, 3, 0);
        let r = up(&tok, longer);
        assert_eq!(r["status"], json!("fast_forward"), "{r}");
        assert_eq!(r["already_held"], json!(2));
        assert_eq!(head(&save).0, t + 3);
        assert_eq!(
            one::<i64>("SELECT count(*) FROM awf.save_conflicts"),
            Some(0)
        );
    }

    #[pg_test]
    fn an_archived_branch_counts_against_the_limits() {
        let (save, tok) = setup(2);
        let base = (1, chain_at(&save, 1));
        run("SET awf.sync_user_quota_mb = 1");
        run("SET awf.sync_snapshot_every = 1");
        // Three turns of random hex (~0.6 MB each after zstd): over the quota together.
        let sql = format!(
            "SELECT awf.sync_up('phone', '{tok}', jsonb_build_object(
               'save_id', '{save}', 'base_turn', {}, 'base_chain', '{}', 'strategy', 'server_wins',
               'turns', (SELECT jsonb_agg(jsonb_build_object('turn_id', 1 + t, 'state',
                          jsonb_build_object('noise', (SELECT string_agg(md5(random()::text || t || g), '')
                                                       FROM generate_series(1, 40000) g))) ORDER BY t)
                         FROM generate_series(1, 3) t)))",
            base.0, base.1
        );
        assert_sqlstate(&sql, "54000");
        assert_eq!(
            one::<i64>("SELECT count(*) FROM awf.save_archives"),
            Some(0)
        );
    }

    #[pg_test]
    fn retention_keeps_a_restorable_archive_attachable() {
        let (save, tok) = setup(6);
        let base = (2, chain_at(&save, 2));
        up(
            &tok,
            json!({"save_id": save, "base_turn": base.0, "base_chain": base.1,
                        "strategy": "server_wins", "turns": gold_turns(3, 1, 0)}),
        );
        run(&format!(
            "UPDATE awf.save_diffs SET created_at = now() - interval '2 years' WHERE save_id = '{save}' AND turn_id <= 5"
        ));
        run("SELECT awf.retention_enforce()");
        assert!(
            one::<i64>(&format!(
                "SELECT origin_turn FROM awf.saves WHERE save_id = '{save}'"
            ))
            .unwrap()
                <= 1,
            "turn 2, where the archive attaches, is still stored"
        );
        run("SELECT awf.save_archive_restore(archive_id) FROM awf.save_archives");
        assert_eq!(head(&save).0, 3);
        assert_eq!(
            json(&format!("SELECT awf.save_verify('{save}')"))["ok"],
            json!(true)
        );
    }

    #[pg_test]
    fn app_roles_cannot_lift_limits_plant_blobs_or_borrow_sessions() {
        let (save, _) = setup(1);
        run("SELECT awf.session_upsert('99999999-9999-9999-9999-999999999999', 'u2', '{}')");
        run("CREATE ROLE awf_test_app2 IN ROLE awf_app");
        run("SET awf.user_id_hash = 'u1'");
        run("SET ROLE awf_test_app2");
        assert_sqlstate("SET awf.sync_user_quota_mb = 100000", "42501");
        // A base every turn would bypass the diff-size cap; the work limits bound every call.
        assert_sqlstate("SET awf.sync_snapshot_every = 1", "42501");
        assert_sqlstate("SET awf.max_work_units = 2147483647", "42501");
        assert_sqlstate("SET awf.max_built_nodes = 2147483647", "42501");
        // Unredacted export is an admin right, not a default anyone switches on.
        assert_sqlstate("SET awf.export_redact_sensitive = off", "42501");
        assert_sqlstate(
            "SELECT awf.session_export('99999999-9999-9999-9999-999999999999', false)",
            "42501",
        );
        assert_sqlstate("SET awf.sync_token_ttl_days = 3650", "42501");
        assert_sqlstate(
            "INSERT INTO awf.save_blobs VALUES (repeat('a', 64), '', '\\x00', 1, 1)",
            "42501",
        );
        assert_sqlstate(
            "INSERT INTO awf.saves (session_id, user_id_hash) VALUES ('99999999-9999-9999-9999-999999999999', 'u1')",
            "42501",
        );
        // Saves are written only by the extension: no byte count to zero, no quota to escape.
        assert_sqlstate(
            &format!("UPDATE awf.saves SET bytes_stored = 0 WHERE save_id = '{save}'"),
            "42501",
        );
        run("RESET ROLE");
    }

    /// Rows of the save's turns, archives, conflicts and blobs: what a refused upload must not
    /// change.
    fn footprint(save: &str) -> Value {
        json(&format!(
            "SELECT jsonb_build_array(
               (SELECT count(*) FROM awf.save_diffs WHERE save_id = '{save}'),
               (SELECT count(*) FROM awf.save_archives WHERE save_id = '{save}'),
               (SELECT count(*) FROM awf.save_conflicts WHERE save_id = '{save}'),
               (SELECT count(*) FROM awf.save_blobs),
               (SELECT head_chain FROM awf.saves WHERE save_id = '{save}'))"
        ))
    }

    fn sealed_turns(from: i64, n: i64, tag: u8) -> Value {
        Value::Array(
            (0..n)
                .map(|i| json!({"turn_id": from + i, "sealed_hex": hex::encode([tag, i as u8, 0xee])}))
                .collect(),
        )
    }

    #[pg_test]
    fn client_sealed_saves_sync_up_and_down_without_the_server_reading_them() {
        // With awf.sync_client_sealed on, a new save is sealed unless its creator says not.
        run("SET awf.sync_client_sealed = on");
        new_session();
        let made = json(&format!("SELECT awf.save_create_or_attach('{SID}', 'u1')"));
        assert_eq!(made["sealed"], json!(true), "{made}");
        let save = made["save_id"].as_str().unwrap().to_owned();
        // Nothing stored yet: its head is the origin a first device starts from.
        let (origin, origin_chain) = head(&save);
        assert_eq!(made["head_turn"], json!(origin));
        let tok = json(&format!(
            "SELECT awf.device_register('phone', 'u1', '{SID}')"
        ))["sync_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let down = |since: i64| {
            json(&format!(
                "SELECT awf.sync_down('phone', '{tok}', '{save}', {since})"
            ))
        };
        let empty = down(-1);
        assert_eq!(empty["sealed"], json!(true), "{empty}");
        assert_eq!(empty["turns"], json!([]), "{empty}");
        assert_eq!(empty["head_chain"], json!(origin_chain), "{empty}");

        // Fast-forward with the device's chain hashes: stored as sent, chained by their bytes.
        let mut turns = sealed_turns(origin + 1, 3, 1);
        let mut prev = origin_chain.clone();
        for t in turns.as_array_mut().unwrap() {
            let bytes = hex::decode(t["sealed_hex"].as_str().unwrap()).unwrap();
            let link = awf_core::chain::link(
                &prev,
                t["turn_id"].as_i64().unwrap(),
                &awf_core::canonical::sha256_hex(&bytes),
            );
            t["chain_hash"] = json!(link);
            prev = link;
        }
        let req = json!({"save_id": save, "base_turn": origin, "base_chain": origin_chain,
                         "turns": turns});
        let r = up(&tok, req.clone());
        assert_eq!(r["status"], json!("fast_forward"), "{r}");
        assert_eq!(r["head_chain"], json!(prev), "{r}");
        // The same upload again (a lost answer): nothing new.
        assert_eq!(up(&tok, req)["status"], json!("up_to_date"));
        let all = down(origin);
        assert_eq!(all["prev_chain"], json!(origin_chain), "{all}");
        let got: Vec<&Value> = all["turns"].as_array().unwrap().iter().collect();
        assert_eq!(got.len(), 3, "{all}");
        assert_eq!(got[2]["kind"], json!("sealed"));
        assert_eq!(got[2]["sealed_hex"], turns[2]["sealed_hex"]);
        assert_eq!(got[2]["chain_hash"], json!(prev));
        // Behind the origin: every sealed turn stands alone, so the newest one is the base.
        let fresh = down(i64::MIN);
        assert_eq!(
            fresh["base"]["sealed_hex"], turns[2]["sealed_hex"],
            "{fresh}"
        );
        assert_eq!(fresh["turns"], json!([]));

        // Refused, writing nothing: JSON turns on a sealed save, bad hex, a merge.
        let (t3, c3) = head(&save);
        let before = footprint(&save);
        let on_head = |turns: Value| {
            format!(
                "SELECT awf.sync_up('phone', '{tok}', '{}')",
                json!({"save_id": save, "base_turn": t3, "base_chain": c3, "turns": turns})
            )
        };
        for bad in [
            json!([{"turn_id": t3 + 1, "state": {"a": 1}}]),
            json!([{"turn_id": t3 + 1, "patch": []}]),
            json!([{"turn_id": t3 + 1, "sealed_hex": "abc"}]),
            json!([{"turn_id": t3 + 1, "sealed_hex": "zz"}]),
            json!([{"turn_id": t3 + 1, "sealed_hex": ""}]),
            json!([{"turn_id": t3 + 1, "sealed_hex": 12}]),
            json!([{"turn_id": t3 + 1, "sealed_hex": "01", "state": {}}]),
        ] {
            assert_sqlstate(&on_head(bad), "22023");
        }
        let stale = json!({"save_id": save, "base_turn": origin + 1,
                           "base_chain": chain_at(&save, origin + 1),
                           "turns": sealed_turns(origin + 2, 1, 2), "strategy": "three_way_merge"});
        assert_sqlstate(
            &format!("SELECT awf.sync_up('phone', '{tok}', '{stale}')"),
            "22023",
        );
        assert_eq!(footprint(&save), before);

        // A conflict: the device's three turns on turn origin+1 beat the server's two after
        // it (longest chain); the server's branch is archived whole.
        let r = up(
            &tok,
            json!({"save_id": save, "base_turn": origin + 1,
                   "base_chain": chain_at(&save, origin + 1),
                   "turns": sealed_turns(origin + 2, 3, 3)}),
        );
        assert_eq!(r["status"], json!("conflict"), "{r}");
        assert_eq!(
            r["conflict"]["resolution"]["chosen_branch"]
                .as_str()
                .map(|b| &b[..7]),
            Some("client-")
        );
        assert_eq!(r["head_turn"], json!(origin + 4), "{r}");
        let archived = json(&format!(
            "SELECT jsonb_agg(kind ORDER BY turn_id) FROM awf.save_archive_turns
             WHERE archive_id = {}",
            r["conflict"]["resolution"]["archive_id"]
        ));
        assert_eq!(archived, json!(["sealed", "sealed"]));
        // server_wins keeps the server's and archives the device's.
        let (t, c) = head(&save);
        let r = up(
            &tok,
            json!({"save_id": save, "base_turn": t - 1, "base_chain": chain_at(&save, t - 1),
                   "turns": sealed_turns(t, 2, 4), "strategy": "server_wins"}),
        );
        assert_eq!(r["head_chain"], json!(c), "{r}");
        // The save verifies: every turn's content hash is the SHA-256 of its sealed bytes.
        let v = json(&format!("SELECT awf.save_verify('{save}')"));
        assert_eq!(v["ok"], json!(true), "{v}");

        // Two first uploads on the origin of a session-less save: the longer one wins over
        // the save's whole history, which goes to the archive.
        let fresh = json("SELECT awf.save_create_or_attach(NULL, 'u1')")["save_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (o, oc) = head(&fresh);
        let first = |n: i64, tag: u8| {
            up(
                &tok,
                json!({"save_id": fresh, "base_turn": o, "base_chain": oc,
                       "turns": sealed_turns(o + 1, n, tag)}),
            )
        };
        assert_eq!(first(1, 6)["status"], json!("fast_forward"));
        let r = first(2, 7);
        assert_eq!(r["status"], json!("conflict"), "{r}");
        assert_eq!(r["head_turn"], json!(o + 2), "{r}");
        assert_eq!(
            r["conflict"]["ancestor"],
            json!({"turn_id": o, "chain_hash": oc})
        );
        let v = json(&format!("SELECT awf.save_verify('{fresh}')"));
        assert_eq!(v["ok"], json!(true), "{v}");
    }

    #[pg_test]
    fn a_json_save_refuses_sealed_turns() {
        let (plain, ptok) = setup(1);
        let (pt, pc) = head(&plain);
        assert_sqlstate(
            &format!(
                "SELECT awf.sync_up('phone', '{ptok}', '{}')",
                json!({"save_id": plain, "base_turn": pt, "base_chain": pc,
                       "turns": sealed_turns(pt + 1, 1, 5)})
            ),
            "22023",
        );
    }
}
