//! Fixtures for client-side integration tests: a fresh database per test on a real cluster.
//!
//! The README's test command starts a throwaway PostgreSQL 15 cluster with the extension
//! installed and exports `AWF_TEST_DATABASE_URL` (a superuser connection to its `postgres`
//! database). Each [`TestDb`] creates its own database with the extension and drops it when
//! the test ends, so tests can COMMIT, open several connections and run in parallel.

use postgres::{Client, NoTls};
use std::path::PathBuf;

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
        let admin_url = admin_url();
        let name = format!("awf_test_{:016x}", rand::random::<u64>());
        let db = TestDb { name, admin_url };
        off_runtime(|| {
            let mut admin =
                Client::connect(&db.admin_url, NoTls).expect("connect to the test cluster");
            admin
                .batch_execute(&format!("CREATE DATABASE {}", db.name))
                .expect("create test database");
            db.client()
                .batch_execute("CREATE EXTENSION awf_lifecycle")
                .expect("create extension");
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

/// The third-party conformance suites beside the checkout (`../shared/suites`).
pub fn suites() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/suites")
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
