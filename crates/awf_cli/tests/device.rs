//! `awf device ...` end to end, and the device client killed at random points: real
//! processes against the real HTTP server (signatures required) and a real cluster.

use awf_http::db::Limits;
use awf_http::{router, AppState};
use awf_tests::{off_runtime, random_uuid, TempDir, TempFile, TestDb};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ADMIN: &str = "awfk_00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn awf(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_awf"));
    c.args(args)
        .env_remove("DATABASE_URL")
        .env_remove("AWF_SERVER");
    c
}

/// Runs to completion: (exit code, stdout, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    let o = awf(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A tiny deterministic generator (the seed is printed, so a failure can be replayed).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// The HTTP server (signatures required) on a loopback port, in front of `db` with a signing
/// secret; keep the runtime and the secret for as long as the server is needed.
fn serve(db: &TestDb) -> (tokio::runtime::Runtime, TempFile, String) {
    let secret = TempFile::with_contents(&"7c".repeat(32));
    db.client()
        .batch_execute(&format!(
            "ALTER DATABASE {} SET awf.signing_secret_file = '{}'",
            db.name(),
            secret.path()
        ))
        .unwrap();
    db.plant_admin_key(ADMIN);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let state = {
        let _in_rt = rt.enter();
        AppState::connect_with(&db.http_url(), 4, Limits::default()).unwrap()
    };
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let server = format!("http://{}", listener.local_addr().unwrap());
    rt.spawn(async move { axum::serve(listener, router(state)).await });
    (rt, secret, server)
}

/// A session of `user` and its save (client-sealed when `sealed`): (session, save).
fn session_with_save(db: &TestDb, user: &str, sealed: bool) -> (String, String) {
    let session = random_uuid();
    let save: String = off_runtime(|| {
        let mut c = db.client();
        c.execute(
            "SELECT awf.session_upsert($1::text::uuid, $2, '{\"player\": {\"gold\": 0}}')",
            &[&session, &user],
        )
        .unwrap();
        c.query_one(
            "SELECT awf.save_create_or_attach($1::text::uuid, $2, sealed => $3) ->> 'save_id'",
            &[&session, &user, &sealed],
        )
        .unwrap()
        .get(0)
    });
    (session, save)
}

/// Where a device registers: the `awf device register` arguments for it.
struct Registering<'a> {
    store: &'a str,
    server: &'a str,
    admin_key_file: &'a str,
    device_id: &'a str,
    user: &'a str,
    session: &'a str,
    save: &'a str,
}

impl<'a> Registering<'a> {
    fn args(&self) -> Vec<&'a str> {
        vec![
            "device",
            "register",
            "--store",
            self.store,
            "--server",
            self.server,
            "--admin-key-file",
            self.admin_key_file,
            "--device-id",
            self.device_id,
            "--user",
            self.user,
            "--session",
            self.session,
            "--save-id",
            self.save,
        ]
    }
}

#[test]
fn a_device_killed_at_random_points_during_sync_loses_no_turn_and_applies_none_twice() {
    let db = TestDb::new();
    let (_rt, _secret, server) = serve(&db);
    let (session, save) = session_with_save(&db, "u-kill", false);
    let dir = TempDir::new();
    let store = dir.file("device.sqlite");
    let key_file = TempFile::with_contents(ADMIN);
    let register = Registering {
        store: &store,
        server: &server,
        admin_key_file: key_file.path(),
        device_id: "killed",
        user: "u-kill",
        session: &session,
        save: &save,
    }
    .args();
    let (code, out, err) = run(&register);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("registered"), "{out}");
    // The store holds a token and a key: this user's only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&store).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // Registering again into the same store is refused, not a silent reset.
    assert_eq!(run(&register).0, 2);
    let head = |db: &TestDb| -> i64 {
        off_runtime(|| {
            db.client()
                .query_one(
                    "SELECT head_turn FROM awf.saves WHERE save_id = $1::text::uuid",
                    &[&save],
                )
                .unwrap()
                .get(0)
        })
    };
    let start = head(&db);

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("device kill test: seed {seed}");
    let mut rng = Lcg(seed);
    let (mut recorded, mut killed, mut finished) = (0i64, 0, 0);
    for i in 1..=40 {
        let patch =
            format!("[{{\"op\": \"replace\", \"path\": \"/player/gold\", \"value\": {i}}}]");
        let (code, _, err) = run(&["device", "record", "--store", &store, "--patch", &patch]);
        assert_eq!(code, 0, "{err}");
        recorded += 1;
        if i % 2 == 0 {
            // A sync killed after a random moment (or left to finish).
            let mut child = awf(&["device", "sync", "--store", &store, "--server", &server])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(rng.next(60)));
            match child.try_wait().unwrap() {
                Some(_) => finished += 1,
                None => {
                    child.kill().unwrap();
                    let _ = child.wait();
                    killed += 1;
                }
            }
        }
    }
    // A clean sync at the end converges.
    let t = Instant::now();
    let (code, _, err) = run(&["device", "sync", "--store", &store, "--server", &server]);
    assert_eq!(code, 0, "{err}");
    let (code, status, _) = run(&["--json", "device", "status", "--store", &store]);
    assert_eq!(code, 0);
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["queued"], 0, "{status}");
    assert_eq!(status["state"]["player"]["gold"], 40);
    let server_head = head(&db);
    assert_eq!(
        server_head - start,
        recorded,
        "every recorded turn reached the server exactly once ({killed} syncs killed, {finished} finished)"
    );
    assert_eq!(status["confirmed_turn"], server_head);
    let ok: bool = off_runtime(|| {
        db.client()
            .query_one(
                "SELECT (awf.save_verify($1::text::uuid)->>'ok')::boolean",
                &[&save],
            )
            .unwrap()
            .get(0)
    });
    assert!(ok);
    println!(
        "device kill test: {recorded} turns, {killed} syncs killed, {finished} finished, final sync {:?}",
        t.elapsed()
    );
    assert!(killed > 0 || finished > 0);
    // Auto-sync: two rounds, each reported.
    let (code, out, err) = run(&[
        "--json", "device", "sync", "--store", &store, "--server", &server, "--every", "0",
        "--rounds", "2",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.matches("\"head_turn\"").count(), 2, "{out}");
    // --rounds needs --every.
    assert_eq!(
        run(&["device", "sync", "--store", &store, "--rounds", "2"]).0,
        2
    );
}

#[test]
fn devices_sharing_a_seal_key_play_a_sealed_save_and_one_without_it_is_told_so() {
    let db = TestDb::new();
    let (_rt, _secret, server) = serve(&db);
    let (session, save) = session_with_save(&db, "u-seal", true);
    let dir = TempDir::new();
    let key = dir.file("seal.key");
    let (code, _, err) = run(&["device", "seal-key", "--output", &key]);
    assert_eq!(code, 0, "{err}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Never overwritten.
    assert_eq!(run(&["device", "seal-key", "--output", &key]).0, 2);
    let admin = TempFile::with_contents(ADMIN);
    let register = |name: &str, seal: Option<&str>| {
        let store = dir.file(name);
        let mut args = Registering {
            store: &store,
            server: &server,
            admin_key_file: admin.path(),
            device_id: name,
            user: "u-seal",
            session: &session,
            save: &save,
        }
        .args();
        if let Some(k) = seal {
            args.extend(["--seal-key-file", k]);
        }
        let r = run(&args);
        (r, store)
    };
    let ((code, _, err), phone) = register("phone", Some(&key));
    assert_eq!(code, 0, "{err}");
    // The key from the environment works as well as from a file.
    let hex = std::fs::read_to_string(&key).unwrap();
    let patch = r#"[{"op": "add", "path": "/gold", "value": 12}]"#;
    let o = awf(&["device", "record", "--store", &phone, "--patch", patch])
        .env("AWF_CLIENT_SEAL_KEY", hex.trim())
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (code, _, err) = run(&[
        "device",
        "sync",
        "--store",
        &phone,
        "--server",
        &server,
        "--seal-key-file",
        &key,
    ]);
    assert_eq!(code, 0, "{err}");
    let ((code, _, err), tablet) = register("tablet", Some(&key));
    assert_eq!(code, 0, "{err}");
    let (code, status, _) = run(&["--json", "device", "status", "--store", &tablet]);
    assert_eq!(code, 0);
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["sealed"], true, "{status}");
    assert_eq!(status["state"], serde_json::json!({"gold": 12}), "{status}");
    // Without the key: a clear error, exit 2, and no store left half-registered to reuse.
    let ((code, _, err), _) = register("nokey", None);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("client-sealed") && err.contains("--seal-key-file"),
        "{err}"
    );
    let (code, _, err) = run(&["device", "record", "--store", &phone, "--patch", patch]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("seal key"), "{err}");
    // A malformed key is a usage error naming where it came from.
    let bad = TempFile::with_contents("not a key");
    let (code, _, err) = run(&[
        "device",
        "record",
        "--store",
        &phone,
        "--patch",
        patch,
        "--seal-key-file",
        bad.path(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("64 hex"), "{err}");
}
