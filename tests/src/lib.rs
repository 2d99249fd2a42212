//! Fixtures for client-side integration tests: a fresh database per test on a real cluster.
//!
//! The README's test command starts a throwaway PostgreSQL 15 cluster with the extension
//! installed and exports `AWF_TEST_DATABASE_URL` (a superuser connection to its `postgres`
//! database). Each [`TestDb`] creates its own database with the extension and drops it when
//! the test ends, so tests can COMMIT, open several connections and run in parallel.

use postgres::config::Host;
use postgres::error::DbError;
use postgres::{Client, Config, NoTls};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

/// A database created for one test, dropped on drop.
pub struct TestDb {
    name: String,
    admin_url: String,
}

/// The admin connection string of the test cluster.
pub fn admin_url() -> String {
    std::env::var("AWF_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!("AWF_TEST_DATABASE_URL is not set: run the tests with ./scripts/test, which starts the test cluster")
    })
}

/// Replaces the database name of a `postgres://` URL.
pub fn with_dbname(url: &str, dbname: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let cut = base.rfind('/').expect("URL has a path");
    let mut out = format!("{}/{}", &base[..cut], dbname);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

impl TestDb {
    /// Creates `awf_test_<random>` with the extension installed.
    pub fn new() -> Self {
        Self::on_cluster(&admin_url())
    }

    /// Creates `awf_test_<random>` with the extension installed on the cluster of
    /// `admin_url` (a superuser connection string), e.g. the preload cluster.
    pub fn on_cluster(admin_url: &str) -> Self {
        let db = Self::empty_on(admin_url);
        off_runtime(|| {
            db.client()
                .batch_execute("CREATE EXTENSION awf_lifecycle")
                .expect("create extension");
        });
        db
    }

    /// Creates `awf_test_<random>` on the test cluster without the extension (to create an
    /// older version of it, say).
    pub fn without_extension() -> Self {
        Self::empty_on(&admin_url())
    }

    fn empty_on(admin_url: &str) -> Self {
        let admin_url = admin_url.to_owned();
        let name = format!("awf_test_{:016x}", rand::random::<u64>());
        let db = TestDb { name, admin_url };
        off_runtime(|| {
            let mut admin =
                Client::connect(&db.admin_url, NoTls).expect("connect to the test cluster");
            admin
                .batch_execute(&format!("CREATE DATABASE {}", db.name))
                .expect("create test database");
        });
        db
    }

    /// The connection string of this database.
    pub fn url(&self) -> String {
        with_dbname(&self.admin_url, &self.name)
    }

    /// A new connection to this database.
    pub fn client(&self) -> Client {
        Client::connect(&self.url(), NoTls).expect("connect to test database")
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The connection string the HTTP server uses: the `awf_http` login (a member of
    /// `awf_gateway`, not a superuser), as `scripts/run` sets it up, so row-level security is
    /// in force on the server's path in tests too.
    pub fn http_url(&self) -> String {
        static ROLE: std::sync::Once = std::sync::Once::new();
        ROLE.call_once(|| {
            off_runtime(|| {
                Client::connect(&self.admin_url, NoTls)
                    .expect("connect to the test cluster")
                    .batch_execute(HTTP_ROLE_SQL)
                    .expect("create the awf_http login");
            })
        });
        let mut url = with_dbname(&self.admin_url, &self.name);
        url = url.replacen("://postgres@", "://awf_http@", 1);
        assert!(url.contains("://awf_http@"), "unexpected admin URL {url}");
        url
    }

    /// A new admin key named `name` (replacing one of that name), created by the superuser.
    pub fn admin_key(&self, name: &str) -> String {
        off_runtime(|| {
            let v: serde_json::Value = self
                .client()
                .query_one("SELECT awf.admin_key_create($1, true)", &[&name])
                .expect("create an admin key")
                .get(0);
            v["key"].as_str().expect("the key").to_owned()
        })
    }

    /// Stores `key` as an active admin key named `tests`, hashed by PostgreSQL's own sha256
    /// (so the tests also check the stored form), for tests that need a key known in advance.
    pub fn plant_admin_key(&self, key: &str) {
        off_runtime(|| {
            self.client()
                .execute(
                    "INSERT INTO awf.admin_keys (name, key_hash, created_by)
                     VALUES ('tests', encode(sha256(convert_to(lower($1), 'UTF8')), 'hex'), 'tests')
                     ON CONFLICT (name) DO UPDATE SET key_hash = excluded.key_hash, revoked_at = NULL",
                    &[&key],
                )
                .expect("plant the admin key");
        })
    }

    /// The superuser connection string of the cluster this database lives on.
    pub fn cluster_url(&self) -> &str {
        &self.admin_url
    }

    /// A new connection to this database as `user` (the test clusters trust 127.0.0.1).
    pub fn client_as(&self, user: &str) -> Client {
        let mut config: Config = self.url().parse().expect("parse the database URL");
        config.user(user);
        config
            .connect(NoTls)
            .unwrap_or_else(|e| panic!("connect to {} as {user}: {e}", self.name))
    }

    /// A new connection to this database that records every notice (WARNING, NOTICE...) the
    /// server sends, in arrival order.
    pub fn client_with_notices(&self) -> (Client, Notices) {
        let notices: Notices = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&notices);
        let mut config: Config = self.url().parse().expect("parse the database URL");
        config.notice_callback(move |n| sink.lock().unwrap().push(n));
        let client = config.connect(NoTls).expect("connect to test database");
        (client, notices)
    }
}

/// Creates the HTTP server's login if it is missing (as `scripts/run` does).
pub const HTTP_ROLE_SQL: &str = "DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'awf_http') THEN
    CREATE ROLE awf_http LOGIN NOSUPERUSER;
  END IF;
END $$;
GRANT awf_gateway TO awf_http";

/// The notices a connection received (see [`TestDb::client_with_notices`]).
pub type Notices = Arc<Mutex<Vec<DbError>>>;

/// The superuser connection string of the preload cluster (started with
/// `shared_preload_libraries = 'awf_lifecycle'`).
pub fn preload_url() -> String {
    env_required("AWF_TEST_PRELOAD_URL")
}

/// A required environment variable, with a message saying how to get it.
pub fn env_required(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the tests with ./scripts/test, which starts the test clusters"
        )
    })
}

/// The host and port of a `postgres://` connection string.
pub fn host_port(url: &str) -> (String, u16) {
    let config: Config = url.parse().expect("parse the connection string");
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        other => panic!("expected a TCP host in {url}, got {other:?}"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    (host, port)
}

/// A PostgreSQL program (`pg_ctl`, `pg_dump`, `psql`...) from `AWF_TEST_PG_BIN`, run as the
/// cluster's OS user through the `AWF_TEST_RUN_AS_PG` prefix (empty when not root).
pub fn pg_command(program: &str) -> Command {
    let bin = std::env::var("AWF_TEST_PG_BIN")
        .unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".to_owned());
    let exe = format!("{bin}/{program}");
    let prefix = std::env::var("AWF_TEST_RUN_AS_PG").unwrap_or_default();
    let mut words = prefix.split_whitespace();
    match words.next() {
        None => Command::new(exe),
        Some(first) => {
            let mut cmd = Command::new(first);
            cmd.args(words).arg(exe);
            cmd
        }
    }
}

/// Runs `cmd` to completion; panics with its status, stdout and stderr unless it succeeds.
/// Returns its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("could not run {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        panic!(
            "{cmd:?} failed with {}\n--- stdout\n{stdout}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    stdout
}

/// A LOGIN role with a random name, member of `member_of` (e.g. `awf_app`); dropped on drop
/// (its objects in `db` reassigned and dropped first). Drop connections made as it first.
pub struct TestRole {
    name: String,
    db_url: String,
    admin_url: String,
}

impl TestRole {
    /// Creates `awf_role_<random>` LOGIN IN ROLE `member_of` (no membership when empty).
    pub fn new(db: &TestDb, member_of: &str) -> Self {
        let name = format!("awf_role_{:016x}", rand::random::<u64>());
        let role = TestRole {
            name,
            db_url: db.url(),
            admin_url: db.cluster_url().to_owned(),
        };
        let sql = if member_of.is_empty() {
            format!("CREATE ROLE {} LOGIN", role.name)
        } else {
            format!("CREATE ROLE {} LOGIN IN ROLE {member_of}", role.name)
        };
        off_runtime(|| {
            Client::connect(&role.admin_url, NoTls)
                .expect("connect to the test cluster")
                .batch_execute(&sql)
                .expect("create test role");
        });
        role
    }

    /// The role's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestRole {
    fn drop(&mut self) {
        off_runtime(|| {
            if let Ok(mut c) = Client::connect(&self.db_url, NoTls) {
                let _ = c.batch_execute(&format!(
                    "REASSIGN OWNED BY {0} TO CURRENT_USER; DROP OWNED BY {0}",
                    self.name
                ));
            }
            if let Ok(mut admin) = Client::connect(&self.admin_url, NoTls) {
                let _ = admin.batch_execute(&format!(
                    "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE usename = '{0}';
                     DROP ROLE IF EXISTS {0}",
                    self.name
                ));
            }
        });
    }
}

/// A world-writable temp directory (so the cluster's OS user can write dump files into it),
/// removed with its contents on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates a fresh directory under the temp directory, mode 0777.
    pub fn new() -> Self {
        use std::os::unix::fs::PermissionsExt;
        let p = std::env::temp_dir().join(format!("awf-test-dir-{:016x}", rand::random::<u64>()));
        std::fs::create_dir(&p).expect("create temp dir");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777))
            .expect("chmod temp dir");
        TempDir(p)
    }

    /// A path inside the directory, as UTF-8 for command lines.
    pub fn file(&self, name: &str) -> String {
        self.0
            .join(name)
            .to_str()
            .expect("temp path is UTF-8")
            .to_owned()
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Default for TestDb {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        off_runtime(|| {
            if let Ok(mut admin) = Client::connect(&self.admin_url, NoTls) {
                let _ = admin.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ));
            }
        });
    }
}

/// Runs blocking client code on a thread of its own.
///
/// The synchronous `postgres` client starts (and drops) a tokio runtime of its own, which
/// panics inside another runtime; async tests (the HTTP server's) call fixtures through this.
pub fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().expect("fixture thread panicked"))
}

/// The third-party conformance suites: `$AWF_SUITES_DIR`, else beside the checkout
/// (`../shared/suites`).
pub fn suites() -> PathBuf {
    std::env::var_os("AWF_SUITES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/suites"))
}

/// The SQLSTATE of a failed call, for assertions.
pub fn sqlstate(err: &postgres::Error) -> String {
    err.as_db_error()
        .map(|d| d.code().code().to_owned())
        .unwrap_or_else(|| panic!("not a database error: {err}"))
}

/// A file in the temp directory, removed on drop.
pub struct TempFile(PathBuf);

impl TempFile {
    /// Writes `contents` to a fresh temp file.
    pub fn with_contents(contents: &str) -> Self {
        let p = std::env::temp_dir().join(format!("awf-test-{:016x}", rand::random::<u64>()));
        std::fs::write(&p, contents).expect("write temp file");
        TempFile(p)
    }

    /// The path as UTF-8, for command lines.
    pub fn path(&self) -> &str {
        self.0.to_str().expect("temp path is UTF-8")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A random version-4 UUID as text (bind it as `$1::text::uuid`).
pub fn random_uuid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// What a crashed backend would leave: a changed postmaster start time, or a crash line in the
/// server log (`server.log` in the data directory, read as the superuser). Taken before an
/// attack, checked after it.
pub struct CrashWatch {
    started: String,
    log_from: i64,
}

impl CrashWatch {
    /// Notes the postmaster's start time and the server log's length now.
    pub fn start(c: &mut Client) -> Self {
        let r = c
            .query_one(
                "SELECT pg_postmaster_start_time()::text, (pg_stat_file('server.log')).size",
                &[],
            )
            .expect("postmaster start time and server log size");
        CrashWatch {
            started: r.get(0),
            log_from: r.get(1),
        }
    }

    /// Panics if the postmaster restarted or the log gained a crash line since [`start`].
    pub fn assert_no_crash(&self, c: &mut Client) {
        let r = c
            .query_one(
                "SELECT pg_postmaster_start_time()::text,
                        pg_read_file('server.log', $1, (pg_stat_file('server.log')).size - $1)",
                &[&self.log_from],
            )
            .expect("postmaster start time and server log");
        let (started, log): (String, String) = (r.get(0), r.get(1));
        assert_eq!(started, self.started, "the postmaster restarted");
        for bad in [
            "terminated by signal",
            "PANIC",
            "was terminated",
            "out of memory",
        ] {
            assert!(!log.contains(bad), "the server log shows '{bad}':\n{log}");
        }
    }
}

/// The `p` quantile (0..=1, nearest rank) of `xs` in milliseconds; sorts `xs`. For the
/// benchmarks' latency tables.
pub fn percentile_ms(xs: &mut [std::time::Duration], p: f64) -> f64 {
    xs.sort();
    let i = ((xs.len() as f64 * p).ceil() as usize).clamp(1, xs.len()) - 1;
    xs[i].as_secs_f64() * 1e3
}
