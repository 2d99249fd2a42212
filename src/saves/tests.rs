//! In-backend tests of cloud saves: every function and its error paths.

// pg_test functions live in schema `tests`, so the module must carry that name.
#[pgrx::pg_schema]
pub(crate) mod tests {
    use crate::testing::{assert_sqlstate, json, new_session, one, run, submit, SID};
    use pgrx::prelude::*;
    use serde_json::json;

    /// Attaches a save to the test session and plays `turns` turns; returns the save id.
    fn save_with_turns(turns: i64) -> String {
        new_session();
        let r = json(&format!("SELECT awf.save_create_or_attach('{SID}', 'u1')"));
        assert_eq!(r["created"], json!(true));
        for n in 1..=turns {
            submit(
                n,
                &format!(
                    r#"[{{"op": "increment", "path": "/player/gold", "by": {n}}}, {{"op": "append", "path": "/player/inventory", "value": "item {n}"}}]"#
                ),
            );
        }
        r["save_id"].as_str().unwrap().to_owned()
    }

    /// Writes a key file the server process can read and points the setting at it.
    pub(crate) fn use_key_file(name: &str, lines: &[&str]) -> String {
        let path = format!("/tmp/awf-pgtest-{}-{name}.key", std::process::id());
        std::fs::write(&path, lines.join("\n")).expect("write key file");
        run(&format!("SET awf.master_key_file = '{path}'"));
        path
    }

    #[pg_test]
    fn session_turns_are_persisted_and_every_turn_materializes() {
        run("SET awf.sync_snapshot_every = 4");
        let save = save_with_turns(10);
        assert_eq!(
            one::<i64>(&format!(
                "SELECT head_turn FROM awf.saves WHERE save_id = '{save}'"
            )),
            Some(10)
        );
        assert_eq!(
            one::<String>(&format!(
                "SELECT string_agg(kind, ',' ORDER BY turn_id) FROM awf.save_diffs WHERE save_id = '{save}'"
            ))
            .as_deref(),
            Some("base,diff,diff,diff,base,diff,diff,diff,base,diff,diff"),
            "turn 0 (attach) and every 4th turn after it are bases"
        );
        let mismatches = one::<i64>(&format!(
            "SELECT count(*) FROM awf.turns t
             WHERE t.session_id = '{SID}'
               AND awf.canonical_hash(awf.save_materialize('{save}', t.turn_id)) <> t.state_hash"
        ));
        assert_eq!(mismatches, Some(0));
        assert_eq!(
            one::<Vec<u8>>(&format!("SELECT awf.save_materialize_bytes('{save}')")),
            one::<String>("SELECT awf.canonical_json(state) FROM awf.sessions")
                .map(String::into_bytes)
        );
        let again = json(&format!("SELECT awf.save_create_or_attach('{SID}', 'u1')"));
        assert_eq!(again["created"], json!(false));
        assert_eq!(again["save_id"], json!(save));
        let v = json(&format!("SELECT awf.save_verify('{save}')"));
        assert_eq!(v["ok"], json!(true), "{v}");
        assert_eq!(v["turns_checked"], json!(11));
    }

    #[pg_test]
    fn persist_error_paths_write_nothing() {
        let save = save_with_turns(2);
        let before = one::<i64>("SELECT count(*) FROM awf.save_diffs");
        assert_sqlstate(
            &format!(r#"SELECT awf.save_persist_turn('{save}', 5, '{{}}')"#),
            "22023",
        );
        assert_sqlstate(
            r#"SELECT awf.save_persist_turn('00000000-0000-0000-0000-000000000000', 1, '{}')"#,
            "P0002",
        );
        assert_sqlstate(
            &format!(r#"SELECT awf.save_persist_turn('{save}', 3, '[1]')"#),
            "22023",
        );
        run("SET awf.sync_max_diff_bytes_kb = 1");
        assert_sqlstate(
            &format!(
                "SELECT awf.save_persist_turn('{save}', 3, jsonb_build_object('player', jsonb_build_object('notes', repeat('x', 5000))))"
            ),
            "54000",
        );
        run("RESET awf.sync_max_diff_bytes_kb");
        run("SET awf.sync_user_quota_mb = 1");
        run("SET awf.sync_snapshot_every = 1");
        assert_sqlstate(
            &format!(
                "SELECT awf.save_persist_turn('{save}', 3, jsonb_build_object('noise', (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 100000) i)))"
            ),
            "54000",
        );
        assert_eq!(one::<i64>("SELECT count(*) FROM awf.save_diffs"), before);
        assert_sqlstate(
            &format!("SELECT awf.save_materialize('{save}', 99)"),
            "P0002",
        );
        assert_sqlstate(
            "SELECT awf.save_create_or_attach('00000000-0000-0000-0000-000000000000', 'u1')",
            "P0002",
        );
        assert_sqlstate(
            &format!("SELECT awf.save_create_or_attach('{SID}', 'u2')"),
            "42501",
        );
        assert_sqlstate("SELECT awf.save_create_or_attach(NULL, 'u1')", "22023");
    }

    #[pg_test]
    fn a_flipped_byte_is_found_by_verify_and_refused_by_materialize() {
        run("SET awf.sync_snapshot_every = 4");
        let save = save_with_turns(6);
        // Corrupt the blob of turn 3 (a diff): flip a byte in the middle.
        run(&format!(
            "UPDATE awf.save_blobs b SET data = set_byte(data, length(data) / 2, get_byte(data, length(data) / 2) # 1)
             FROM awf.save_diffs d
             WHERE d.save_id = '{save}' AND d.turn_id = 3 AND b.blob_hash = d.blob_hash AND b.key_id = d.key_id"
        ));
        assert_sqlstate(
            &format!("SELECT awf.save_materialize('{save}', 3)"),
            "XX001",
        );
        // Turn 4 is a base: the head (turn 6) is rebuilt without turn 3's blob.
        assert!(
            one::<crate::jsonb::JsonB>(&format!("SELECT awf.save_materialize('{save}')")).is_some()
        );
        // Turn 2 does not depend on it.
        assert!(
            one::<crate::jsonb::JsonB>(&format!("SELECT awf.save_materialize('{save}', 2)"))
                .is_some()
        );
        let v = json(&format!("SELECT awf.save_verify('{save}')"));
        assert_eq!(v["ok"], json!(false));
        assert_eq!(v["first_bad_turn"], json!(3), "{v}");
        assert_eq!(
            one::<bool>(&format!(
                "SELECT integrity_ok FROM awf.saves WHERE save_id = '{save}'"
            )),
            Some(false)
        );
        // An edited chain or content hash is found too.
        run(&format!(
            "UPDATE awf.save_blobs b SET data = set_byte(data, length(data) / 2, get_byte(data, length(data) / 2) # 1)
             FROM awf.save_diffs d
             WHERE d.save_id = '{save}' AND d.turn_id = 3 AND b.blob_hash = d.blob_hash AND b.key_id = d.key_id"
        ));
        run(&format!(
            "UPDATE awf.save_diffs SET content_hash = repeat('a', 64) WHERE save_id = '{save}' AND turn_id = 5"
        ));
        let v = json(&format!("SELECT awf.save_verify('{save}')"));
        assert_eq!(v["first_bad_turn"], json!(5), "{v}");
        let rows = json("SELECT jsonb_agg(to_jsonb(r)) FROM awf.save_verify_sample(100) r");
        assert_eq!(rows[0]["ok"], json!(false));
        assert!(
            one::<i64>("SELECT value FROM awf.metrics WHERE name = 'awf.sync.verify_failures'")
                .unwrap()
                >= 2
        );
    }

    #[pg_test]
    fn encrypted_saves_survive_master_key_rotation() {
        let a = "ka:1111111111111111111111111111111111111111111111111111111111111111";
        let b = "kb:2222222222222222222222222222222222222222222222222222222222222222";
        use_key_file("a", &[a]);
        let save = save_with_turns(3);
        assert_eq!(
            one::<i64>("SELECT count(*) FROM awf.save_blobs WHERE key_id = ''"),
            Some(0),
            "every blob is encrypted"
        );
        assert_eq!(
            one::<bool>("SELECT bool_or(position(convert_to('item 1', 'UTF8') IN data) > 0) FROM awf.save_blobs"),
            Some(false)
        );
        let head = one::<String>(&format!(
            "SELECT awf.canonical_hash(awf.save_materialize('{save}'))"
        ));
        use_key_file("ba", &[b, a]);
        let r = json("SELECT awf.rotate_master_key()");
        assert_eq!(r["rewrapped"], json!(1));
        assert_eq!(r["master_key_id"], json!("kb"));
        use_key_file("b", &[b]);
        assert_eq!(
            one::<String>(&format!(
                "SELECT awf.canonical_hash(awf.save_materialize('{save}'))"
            )),
            head,
            "old blobs decrypt under the rotated data key"
        );
        submit(4, "[]");
        use_key_file("a-only", &[a]);
        assert_sqlstate(&format!("SELECT awf.save_materialize('{save}')"), "P0002");
        run("RESET awf.master_key_file");
    }

    #[pg_test]
    fn master_key_file_is_hidden_from_non_superusers() {
        assert_eq!(
            one::<String>(
                "SELECT string_agg(flags, ',') FROM (SELECT 'superuser-only' AS flags FROM pg_settings
                 WHERE name = 'awf.master_key_file' AND context = 'superuser') s"
            )
            .as_deref(),
            Some("superuser-only")
        );
    }

    #[pg_test]
    fn restore_archives_and_can_be_undone() {
        let save = save_with_turns(6);
        let at4 = one::<String>("SELECT state_hash FROM awf.turns WHERE turn_id = 4");
        let r = json(&format!("SELECT awf.save_restore('{save}', 4)"));
        assert_eq!(r["archived_turns"], json!(2));
        assert_eq!(
            one::<String>("SELECT reason FROM awf.save_archives").as_deref(),
            Some("manual_restore")
        );
        assert_eq!(one::<String>("SELECT state_hash FROM awf.sessions"), at4);
        assert_eq!(
            one::<i64>(&format!(
                "SELECT max(turn_id) FROM awf.save_diffs WHERE save_id = '{save}'"
            )),
            Some(4)
        );
        let undo = json(&format!(
            "SELECT awf.save_archive_restore({})",
            r["archive_id"]
        ));
        assert_eq!(undo["head_turn"], json!(6));
        let at6 = one::<String>("SELECT state_hash FROM awf.turns WHERE turn_id = 6");
        assert_eq!(
            one::<String>(&format!(
                "SELECT awf.canonical_hash(awf.save_materialize('{save}'))"
            )),
            at6
        );
        assert_eq!(
            json(&format!("SELECT awf.save_verify('{save}')"))["ok"],
            json!(true)
        );
        assert_sqlstate(
            &format!("SELECT awf.save_archive_restore({})", r["archive_id"]),
            "23505",
        );
        assert_sqlstate("SELECT awf.save_archive_restore(424242)", "P0002");
        assert_sqlstate(&format!("SELECT awf.save_restore('{save}', 77)"), "P0002");
    }

    #[pg_test]
    fn retention_rebases_and_keeps_every_kept_turn_valid() {
        run("SET awf.sync_snapshot_every = 100");
        let save = save_with_turns(8);
        run(&format!(
            "UPDATE awf.save_diffs SET created_at = now() - interval '400 days' WHERE save_id = '{save}' AND turn_id <= 4"
        ));
        let r = json("SELECT awf.retention_enforce()");
        assert_eq!(r["turns_pruned"], json!(5), "{r}");
        assert_eq!(r["turns_rebased"], json!(1));
        assert_eq!(
            one::<i64>(&format!(
                "SELECT origin_turn FROM awf.saves WHERE save_id = '{save}'"
            )),
            Some(4)
        );
        assert_eq!(
            one::<String>(&format!(
                "SELECT kind FROM awf.save_diffs WHERE save_id = '{save}' AND turn_id = 5"
            ))
            .as_deref(),
            Some("base")
        );
        assert_eq!(
            json(&format!("SELECT awf.save_verify('{save}')"))["ok"],
            json!(true)
        );
        let bad = one::<i64>(&format!(
            "SELECT count(*) FROM awf.turns t WHERE t.turn_id BETWEEN 5 AND 8
               AND awf.canonical_hash(awf.save_materialize('{save}', t.turn_id)) <> t.state_hash"
        ));
        assert_eq!(bad, Some(0));
        assert_sqlstate(
            &format!("SELECT awf.save_materialize('{save}', 3)"),
            "P0002",
        );
    }

    #[pg_test]
    fn sealed_saves_store_bytes_the_server_cannot_read() {
        let r = json("SELECT awf.save_create_or_attach(NULL, 'u1', '1.0.0', true)");
        let save = r["save_id"].as_str().unwrap().to_owned();
        run(&format!(
            "SELECT awf.save_persist_sealed('{save}', 1, '\\xdeadbeef'::bytea)"
        ));
        run(&format!(
            "SELECT awf.save_persist_sealed('{save}', 2, '\\x0102'::bytea)"
        ));
        assert_eq!(
            one::<Vec<u8>>(&format!("SELECT awf.save_materialize_bytes('{save}', 1)")),
            Some(vec![0xde, 0xad, 0xbe, 0xef])
        );
        assert_sqlstate(&format!("SELECT awf.save_materialize('{save}')"), "22023");
        assert_sqlstate(
            &format!(r#"SELECT awf.save_persist_turn('{save}', 3, '{{}}')"#),
            "22023",
        );
        assert_eq!(
            json(&format!("SELECT awf.save_verify('{save}')"))["ok"],
            json!(true)
        );
        let plain = save_with_turns(1);
        assert_sqlstate(
            &format!("SELECT awf.save_persist_sealed('{plain}', 2, '\\x00'::bytea)"),
            "22023",
        );
    }

    #[pg_test]
    fn a_snapshot_or_any_turn_can_be_marked_as_a_base() {
        run("SET awf.sync_snapshot_every = 100");
        let save = save_with_turns(5);
        let r = json(&format!(
            "SELECT awf.snapshot_create('{SID}', 'checkpoint', true)"
        ));
        assert_eq!(r["save_base_turn"], json!(5));
        assert_eq!(
            one::<String>(&format!(
                "SELECT kind FROM awf.save_diffs WHERE save_id = '{save}' AND turn_id = 5"
            ))
            .as_deref(),
            Some("base")
        );
        let r = json(&format!("SELECT awf.save_mark_base('{save}', 3)"));
        assert_eq!(r["rebased"], json!(true));
        let again = json(&format!("SELECT awf.save_mark_base('{save}', 3)"));
        assert_eq!(again["rebased"], json!(false));
        assert_eq!(
            json(&format!("SELECT awf.save_verify('{save}')"))["ok"],
            json!(true)
        );
        let bad = one::<i64>(&format!(
            "SELECT count(*) FROM awf.turns t
             WHERE awf.canonical_hash(awf.save_materialize('{save}', t.turn_id)) <> t.state_hash"
        ));
        assert_eq!(bad, Some(0));
        assert_sqlstate(&format!("SELECT awf.save_mark_base('{save}', 50)"), "P0002");
    }

    #[pg_test]
    fn an_app_user_sees_only_its_own_blobs() {
        let save = save_with_turns(3);
        run("CREATE ROLE awf_test_app IN ROLE awf_app");
        run("SET awf.user_id_hash = 'u2'");
        run("SET ROLE awf_test_app");
        assert_eq!(one::<i64>("SELECT count(*) FROM awf.save_blobs"), Some(0));
        assert_sqlstate(&format!("SELECT awf.save_materialize('{save}')"), "P0002");
        run("RESET ROLE");
        run("SET awf.user_id_hash = 'u1'");
        run("SET ROLE awf_test_app");
        assert_eq!(
            one::<i64>("SELECT count(*) FROM awf.save_blobs"),
            one::<i64>(&format!(
                "SELECT count(DISTINCT (blob_hash, key_id)) FROM awf.save_diffs WHERE save_id = '{save}'"
            ))
        );
        assert!(
            one::<crate::jsonb::JsonB>(&format!("SELECT awf.save_materialize('{save}')")).is_some()
        );
        run("RESET ROLE");
    }

    #[pg_test]
    fn a_corrupt_blob_header_is_an_integrity_failure() {
        let save = save_with_turns(2);
        run(&format!(
            "UPDATE awf.save_blobs b SET data = set_byte(data, 0, get_byte(data, 0) # 255)
             FROM awf.save_diffs d
             WHERE d.save_id = '{save}' AND d.turn_id = 2 AND b.blob_hash = d.blob_hash AND b.key_id = d.key_id"
        ));
        assert_sqlstate(
            &format!("SELECT awf.save_materialize('{save}', 2)"),
            "XX001",
        );
    }
}
