//! Sync benchmark (numbers, never pass/fail): N devices (8 by default) each loop "sync down
//! since my head, then sync up one new turn on it", concurrently, first over HTTP against a
//! running awf-http server, then with the same calls made directly in SQL on N connections,
//! and prints client-observed latency percentiles per route and path, and throughput.
//!
//!   scripts/bench http [ROUNDS]
//!
//! or by hand, against the cluster and server `scripts/run` starts:
//!
//!   AWF_BENCH_HTTP=http://127.0.0.1:8787 \
//!   AWF_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:54815/awf \
//!   AWF_BENCH_ADMIN_KEY_FILE=.awf/http-admin-token \
//!     cargo run --release -p awf_http --example bench_sync [-- ROUNDS]
//!
//! Settings (environment): `AWF_BENCH_ROUNDS` (200; the argument wins), `AWF_BENCH_WARMUP`
//! (10 rounds per device, not measured), `AWF_BENCH_DEVICES` (8), `AWF_BENCH_STATE_BYTES`
//! (20000), `AWF_BENCH_UPLOAD` (`state`: each turn carries the full state; `patch`: an RFC 6902
//! patch from the previous head), `AWF_BENCH_SQL_ROLE` (`awf_http`, the login the server uses,
//! so row-level security is in force on the SQL path too; empty: stay the superuser),
//! `AWF_BENCH_KEEP=1` keeps the bench users (by default they are erased with `awf.user_delete`).
//!
//! Each device has its own session and save (seeded by SQL as the superuser, fresh ids every
//! run), so every answer should be a fast-forward: conflicts and errors are counted and
//! reported, and more than 1% of them stops the run with exit status 1. When the server
//! serves `GET /api/awf-cloud-sync/save/signing-key`, every sync request is signed (header
//! `X-AWF-Signature`, see `awf_core::signing`) and signed answers are verified; on 404 the
//! run is unsigned. Traffic goes to loopback addresses only.

use awf_core::{canonical, diff, signing, Budget};
use awf_sample::{game_state, next_turn, turn_of};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const DOWN_PATH: &str = "/api/awf-cloud-sync/sync/down";
const UP_PATH: &str = "/api/awf-cloud-sync/sync/up";
const DEVICES_PATH: &str = "/api/awf-cloud-sync/devices";
const SIGNING_KEY_PATH: &str = "/api/awf-cloud-sync/save/signing-key";
/// More errors than this share of the planned calls stops the run.
const MAX_ERROR_PERCENT: u64 = 1;
/// Error messages kept for the report.
const KEEP_ERRORS: usize = 8;

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("bench_sync: {msg}");
    std::process::exit(1)
}

fn env_str(name: &str, default: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().to_owned(),
        _ => default.to_owned(),
    }
}

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .unwrap_or_else(|_| fail(format!("{name}={v:?} is not a number"))),
        _ => default,
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Upload {
    State,
    Patch,
}

struct Config {
    http: reqwest::Url,
    database_url: String,
    admin_key: String,
    devices: usize,
    rounds: usize,
    warmup: usize,
    state_bytes: usize,
    upload: Upload,
    sql_role: Option<String>,
    keep: bool,
}

impl Config {
    fn from_env() -> Config {
        let rounds = match std::env::args().nth(1) {
            Some(a) => a
                .parse()
                .unwrap_or_else(|_| fail(format!("ROUNDS {a:?} is not a number"))),
            None => env_num("AWF_BENCH_ROUNDS", 200usize),
        };
        let http_text = env_str("AWF_BENCH_HTTP", "http://127.0.0.1:8787");
        let http = reqwest::Url::parse(&http_text)
            .unwrap_or_else(|e| fail(format!("AWF_BENCH_HTTP {http_text:?}: {e}")));
        let loopback = http.host_str().is_some_and(|h| {
            h == "localhost"
                || h.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|a| a.is_loopback())
        });
        if http.scheme() != "http" || !loopback {
            fail(format!(
                "AWF_BENCH_HTTP must be http:// on a loopback address, not {http_text:?}"
            ));
        }
        let database_url = env_str(
            "AWF_BENCH_DATABASE_URL",
            "postgres://postgres@127.0.0.1:54815/awf",
        );
        let pg: tokio_postgres::Config = database_url
            .parse()
            .unwrap_or_else(|e| fail(format!("AWF_BENCH_DATABASE_URL: {e}")));
        for h in pg.get_hosts() {
            if let tokio_postgres::config::Host::Tcp(h) = h {
                let ok = h == "localhost"
                    || h.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback());
                if !ok {
                    fail(format!(
                        "AWF_BENCH_DATABASE_URL must name a loopback host, not {h:?}"
                    ));
                }
            }
        }
        let key_file = env_str(
            "AWF_BENCH_ADMIN_KEY_FILE",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../.awf/http-admin-token"),
        );
        let admin_key = std::fs::read_to_string(&key_file)
            .map(|k| k.trim().to_owned())
            .unwrap_or_else(|e| {
                fail(format!(
                    "cannot read the admin key {key_file}: {e} (scripts/run writes it)"
                ))
            });
        if admin_key.is_empty() {
            fail(format!("the admin key file {key_file} is empty"));
        }
        let upload = match env_str("AWF_BENCH_UPLOAD", "state").as_str() {
            "state" => Upload::State,
            "patch" => Upload::Patch,
            other => fail(format!(
                "AWF_BENCH_UPLOAD must be state or patch, not {other:?}"
            )),
        };
        // Unset: the server's login; set but empty: the URL's own user.
        let sql_role = match std::env::var("AWF_BENCH_SQL_ROLE") {
            Ok(v) => Some(v.trim().to_owned()).filter(|r| !r.is_empty()),
            Err(_) => Some("awf_http".to_owned()),
        };
        if let Some(r) = &sql_role {
            if !r
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                fail(format!("AWF_BENCH_SQL_ROLE {r:?}: use [a-z0-9_] only"));
            }
        }
        let devices = env_num("AWF_BENCH_DEVICES", 8usize);
        if devices == 0 || rounds == 0 {
            fail("AWF_BENCH_DEVICES and ROUNDS must be at least 1");
        }
        Config {
            http,
            database_url,
            admin_key,
            devices,
            rounds,
            warmup: env_num("AWF_BENCH_WARMUP", 10usize),
            state_bytes: env_num("AWF_BENCH_STATE_BYTES", 20_000usize),
            upload,
            sql_role,
            keep: env_str("AWF_BENCH_KEEP", "0") == "1",
        }
    }

    /// The database URL without its password, for the report.
    fn database_shown(&self) -> String {
        match self.database_url.split_once('@') {
            Some((_, rest)) => rest.to_owned(),
            None => self.database_url.clone(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP: every request goes through `HttpDevice::call` (or `http_call`), where signing lives.

/// How a request authenticates.
#[derive(Clone)]
enum Auth {
    Admin(String),
    Device { id: String, token: String },
}

/// One answer, read whole.
struct Answer {
    status: u16,
    body: Vec<u8>,
    signature: Option<String>,
    /// The nonce the request was signed with, when it was.
    nonce: Option<String>,
}

impl Answer {
    /// The body as JSON, or why the call failed.
    fn json(&self, want: u16) -> Result<Value, String> {
        let v: Value = serde_json::from_slice(&self.body).map_err(|e| {
            format!(
                "HTTP {}: not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body[..self.body.len().min(200)])
            )
        })?;
        if self.status != want {
            return Err(format!(
                "HTTP {} {}: {}",
                self.status,
                v["error"]["code"].as_str().unwrap_or("?"),
                v["error"]["message"].as_str().unwrap_or(&v.to_string())
            ));
        }
        Ok(v)
    }
}

/// Sends one request: `path_and_query` is exactly what goes on the request line; with `key`,
/// the request is signed over that, the method and the body bytes as sent.
async fn http_call(
    client: &reqwest::Client,
    base: &reqwest::Url,
    auth: &Auth,
    key: Option<&[u8; 32]>,
    method: reqwest::Method,
    path_and_query: &str,
    body: Option<&Value>,
) -> Result<Answer, String> {
    let url = base
        .join(path_and_query)
        .map_err(|e| format!("bad URL {path_and_query:?}: {e}"))?;
    let signed_path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let bytes = match body {
        Some(b) => serde_json::to_vec(b).map_err(|e| format!("cannot serialize: {e}"))?,
        None => Vec::new(),
    };
    let mut req = client.request(method.clone(), url);
    req = match auth {
        Auth::Admin(k) => req.header("authorization", format!("Bearer {k}")),
        Auth::Device { id, token } => req
            .header("x-device-id", id)
            .header("authorization", format!("Bearer {token}")),
    };
    let mut nonce = None;
    if let Some(key) = key {
        let n = signing::new_nonce();
        let header =
            signing::sign_request(key, method.as_str(), &signed_path, &bytes, unix_now(), &n);
        req = req.header(signing::HEADER, header);
        nonce = Some(n);
    }
    if body.is_some() {
        req = req.header("content-type", "application/json").body(bytes);
    }
    let res = req.send().await.map_err(|e| format!("transport: {e}"))?;
    let status = res.status().as_u16();
    let signature = res
        .headers()
        .get(signing::HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = res
        .bytes()
        .await
        .map_err(|e| format!("transport (body): {e}"))?
        .to_vec();
    Ok(Answer {
        status,
        body,
        signature,
        nonce,
    })
}

struct HttpDevice {
    client: reqwest::Client,
    base: reqwest::Url,
    auth: Auth,
    key: Option<[u8; 32]>,
    /// Signed answers whose signature verified.
    verified: u64,
    /// Answers to signed requests that came without a signature.
    unsigned_answers: u64,
}

impl HttpDevice {
    /// One timed device call; the answer's signature is checked after the clock stops.
    async fn call(
        &mut self,
        method: reqwest::Method,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> (Duration, Result<Value, String>) {
        let t0 = Instant::now();
        let answer = http_call(
            &self.client,
            &self.base,
            &self.auth,
            self.key.as_ref(),
            method,
            path_and_query,
            body,
        )
        .await;
        let dt = t0.elapsed();
        let answer = match answer {
            Ok(a) => a,
            Err(e) => return (dt, Err(e)),
        };
        if let (Some(key), Some(nonce)) = (&self.key, &answer.nonce) {
            match &answer.signature {
                Some(sig) => {
                    if !signing::verify_response(key, answer.status, nonce, &answer.body, sig) {
                        return (
                            dt,
                            Err(format!(
                                "HTTP {}: the answer's signature does not verify",
                                answer.status
                            )),
                        );
                    }
                    self.verified += 1;
                }
                None => self.unsigned_answers += 1,
            }
        }
        (dt, answer.json(200))
    }
}

// ---------------------------------------------------------------------------------------------
// SQL: the same calls on a connection of their own per device.

struct SqlDevice {
    client: tokio_postgres::Client,
    device_id: String,
    token: String,
    down: tokio_postgres::Statement,
    up: tokio_postgres::Statement,
}

fn sql_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("SQL {}: {}", d.code().code(), d.message()),
        None => format!("SQL: {e}"),
    }
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, String> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("cannot connect to the database: {e}"))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("bench_sync: database connection: {e}");
        }
    });
    Ok(client)
}

// ---------------------------------------------------------------------------------------------
// The device loop, the same for both paths.

enum Link {
    Http(HttpDevice),
    Sql(SqlDevice),
}

impl Link {
    async fn down(&mut self, save: &str, since: i64) -> (Duration, Result<Value, String>) {
        match self {
            Link::Http(h) => {
                let pq = format!("{DOWN_PATH}?save_id={save}&since_turn={since}");
                h.call(reqwest::Method::GET, &pq, None).await
            }
            Link::Sql(s) => {
                let t0 = Instant::now();
                let r = s
                    .client
                    .query_one(&s.down, &[&s.device_id, &s.token, &save, &since])
                    .await;
                let dt = t0.elapsed();
                (dt, r.map(|row| row.get(0)).map_err(|e| sql_error(&e)))
            }
        }
    }

    async fn up(&mut self, request: &Value) -> (Duration, Result<Value, String>) {
        match self {
            Link::Http(h) => h.call(reqwest::Method::POST, UP_PATH, Some(request)).await,
            Link::Sql(s) => {
                let t0 = Instant::now();
                let r = s
                    .client
                    .query_one(&s.up, &[&s.device_id, &s.token, request])
                    .await;
                let dt = t0.elapsed();
                (dt, r.map(|row| row.get(0)).map_err(|e| sql_error(&e)))
            }
        }
    }
}

/// What a device knows of its save, and its local play.
struct DeviceState {
    save_id: String,
    head_turn: i64,
    head_chain: Option<String>,
    /// The state of the save's head as the device last had it acknowledged (patch base).
    acked: Value,
    /// The device's current state.
    local: Value,
    seed: u64,
}

#[derive(Clone, Copy)]
enum Route {
    Down,
    Up,
}

#[derive(Default)]
struct Stats {
    down: Vec<Duration>,
    up: Vec<Duration>,
    down_errors: u64,
    up_errors: u64,
    conflicts: u64,
    errors: Vec<String>,
}

impl Stats {
    fn error(&mut self, route: Route, msg: String, guard: &Guard) {
        guard.errors.fetch_add(1, Ordering::Relaxed);
        let name = match route {
            Route::Down => {
                self.down_errors += 1;
                "sync/down"
            }
            Route::Up => {
                self.up_errors += 1;
                "sync/up"
            }
        };
        if self.errors.len() < KEEP_ERRORS {
            self.errors.push(format!("{name}: {msg}"));
        }
    }

    fn merge(&mut self, o: Stats) {
        self.down.extend(o.down);
        self.up.extend(o.up);
        self.down_errors += o.down_errors;
        self.up_errors += o.up_errors;
        self.conflicts += o.conflicts;
        for e in o.errors {
            if self.errors.len() < KEEP_ERRORS {
                self.errors.push(e);
            }
        }
    }

    fn calls(&self) -> u64 {
        (self.down.len() + self.up.len()) as u64 + self.errors()
    }

    fn errors(&self) -> u64 {
        self.down_errors + self.up_errors
    }
}

/// Stops every device of a phase once errors pass the limit.
struct Guard {
    errors: AtomicU64,
    limit: u64,
}

impl Guard {
    fn new(planned_calls: u64) -> Guard {
        Guard {
            errors: AtomicU64::new(0),
            limit: planned_calls * MAX_ERROR_PERCENT / 100,
        }
    }

    fn tripped(&self) -> bool {
        self.errors.load(Ordering::Relaxed) > self.limit
    }
}

async fn device_loop(
    mut link: Link,
    mut dev: DeviceState,
    rounds: usize,
    upload: Upload,
    guard: Arc<Guard>,
) -> (Link, DeviceState, Stats) {
    let mut st = Stats::default();
    for _ in 0..rounds {
        if guard.tripped() {
            break;
        }
        let (dt, r) = link.down(&dev.save_id, dev.head_turn).await;
        match r {
            Ok(v) => {
                let head = v["head_turn"].as_i64();
                let chain = v["head_chain"].as_str().map(str::to_owned);
                let news = v["turns"].as_array().map_or(0, Vec::len);
                match (head, chain) {
                    (Some(h), Some(c)) if h == dev.head_turn && news == 0 => {
                        st.down.push(dt);
                        dev.head_chain = Some(c);
                    }
                    (Some(h), Some(c)) => {
                        st.error(
                            Route::Down,
                            format!(
                                "the head moved under the device: turn {} expected, {h} with {news} new turns",
                                dev.head_turn
                            ),
                            &guard,
                        );
                        dev.head_turn = h;
                        dev.head_chain = Some(c);
                        continue;
                    }
                    _ => {
                        st.error(Route::Down, format!("unexpected answer: {v}"), &guard);
                        continue;
                    }
                }
            }
            Err(e) => {
                st.error(Route::Down, e, &guard);
                continue;
            }
        }
        let game_turn = turn_of(&dev.local) + 1;
        next_turn(&mut dev.local, game_turn, dev.seed);
        let turn_id = dev.head_turn + 1;
        let turn = match upload {
            Upload::State => json!({"turn_id": turn_id, "state": dev.local}),
            Upload::Patch => {
                match diff::diff_value(&dev.acked, &dev.local, &mut Budget::default()) {
                    Ok(patch) => json!({"turn_id": turn_id, "patch": patch}),
                    Err(e) => {
                        st.error(Route::Up, format!("diff on the device: {e}"), &guard);
                        continue;
                    }
                }
            }
        };
        let request = json!({
            "save_id": dev.save_id,
            "base_turn": dev.head_turn,
            "base_chain": dev.head_chain,
            "turns": [turn],
        });
        let (dt, r) = link.up(&request).await;
        match r {
            Ok(v) => {
                let status = v["status"].as_str().unwrap_or("");
                let head = v["head_turn"].as_i64();
                let chain = v["head_chain"].as_str().map(str::to_owned);
                if status == "fast_forward" && head == Some(turn_id) && chain.is_some() {
                    st.up.push(dt);
                    dev.head_turn = turn_id;
                    dev.head_chain = chain;
                    if upload == Upload::Patch {
                        dev.acked = dev.local.clone();
                    }
                } else {
                    if status == "conflict" {
                        st.conflicts += 1;
                    }
                    st.error(
                        Route::Up,
                        format!("expected a fast-forward to turn {turn_id}, got: {v}"),
                        &guard,
                    );
                    if let Some(h) = head {
                        dev.head_turn = h;
                    }
                }
            }
            Err(e) => st.error(Route::Up, e, &guard),
        }
    }
    (link, dev, st)
}

/// Runs every device's loop concurrently; the stats and the wall time of the whole phase.
async fn run_phase(
    devices: Vec<(Link, DeviceState)>,
    rounds: usize,
    upload: Upload,
) -> (Vec<(Link, DeviceState)>, Stats, Duration, bool) {
    let guard = Arc::new(Guard::new((devices.len() * rounds * 2) as u64));
    let t0 = Instant::now();
    let tasks: Vec<_> = devices
        .into_iter()
        .map(|(link, dev)| tokio::spawn(device_loop(link, dev, rounds, upload, guard.clone())))
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    let mut stats = Stats::default();
    for t in tasks {
        let (link, dev, st) = t
            .await
            .unwrap_or_else(|e| fail(format!("a device task failed: {e}")));
        stats.merge(st);
        out.push((link, dev));
    }
    let wall = t0.elapsed();
    (out, stats, wall, guard.tripped())
}

// ---------------------------------------------------------------------------------------------
// Seeding and registration.

struct Seeded {
    user: String,
    session: String,
    dev: DeviceState,
}

async fn seed(
    db: &tokio_postgres::Client,
    user: &str,
    state: &Value,
    seed: u64,
) -> Result<Seeded, String> {
    let session = awf_tests::random_uuid();
    db.execute(
        "SELECT awf.session_upsert($1::text::uuid, $2, $3::jsonb)",
        &[&session, &user, state],
    )
    .await
    .map_err(|e| format!("session_upsert: {}", sql_error(&e)))?;
    let save: Value = db
        .query_one(
            "SELECT awf.save_create_or_attach($1::text::uuid, $2)",
            &[&session, &user],
        )
        .await
        .map_err(|e| format!("save_create_or_attach: {}", sql_error(&e)))?
        .get(0);
    let save_id = save["save_id"]
        .as_str()
        .ok_or_else(|| format!("save_create_or_attach answered {save}"))?
        .to_owned();
    let head_turn = save["head_turn"].as_i64().unwrap_or(0);
    Ok(Seeded {
        user: user.to_owned(),
        session,
        dev: DeviceState {
            save_id,
            head_turn,
            head_chain: None,
            acked: state.clone(),
            local: state.clone(),
            seed,
        },
    })
}

/// How the signing-key route answered one device.
enum Signing {
    Key([u8; 32]),
    NoRoute(String),
}

async fn http_device(
    cfg: &Config,
    s: &Seeded,
    device_id: &str,
) -> Result<(HttpDevice, Signing), String> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let body = json!({"device_id": device_id, "user_id_hash": s.user, "session_id": s.session});
    let a = http_call(
        &client,
        &cfg.http,
        &Auth::Admin(cfg.admin_key.clone()),
        None,
        reqwest::Method::POST,
        DEVICES_PATH,
        Some(&body),
    )
    .await
    .map_err(|e| format!("device registration over HTTP: {e}"))?;
    let reg = a
        .json(201)
        .map_err(|e| format!("device registration over HTTP: {e}"))?;
    let token = reg["sync_token"]
        .as_str()
        .ok_or_else(|| format!("device registration answered {reg}"))?
        .to_owned();
    let auth = Auth::Device {
        id: device_id.to_owned(),
        token,
    };
    let pq = format!("{SIGNING_KEY_PATH}?save_id={}", s.dev.save_id);
    let a = http_call(
        &client,
        &cfg.http,
        &auth,
        None,
        reqwest::Method::GET,
        &pq,
        None,
    )
    .await
    .map_err(|e| format!("GET {SIGNING_KEY_PATH}: {e}"))?;
    let signing = match a.status {
        404 => Signing::NoRoute(
            a.json(404)
                .map(|v| v["error"]["message"].as_str().unwrap_or("").to_owned())
                .unwrap_or_else(|e| e),
        ),
        _ => {
            let v = a
                .json(200)
                .map_err(|e| format!("GET {SIGNING_KEY_PATH}: {e}"))?;
            let key = v["key"]
                .as_str()
                .and_then(hex32)
                .ok_or_else(|| format!("GET {SIGNING_KEY_PATH} answered {v}"))?;
            Signing::Key(key)
        }
    };
    let key = match &signing {
        Signing::Key(k) => Some(*k),
        Signing::NoRoute(_) => None,
    };
    Ok((
        HttpDevice {
            client,
            base: cfg.http.clone(),
            auth,
            key,
            verified: 0,
            unsigned_answers: 0,
        },
        signing,
    ))
}

async fn sql_device(
    cfg: &Config,
    db: &tokio_postgres::Client,
    s: &Seeded,
    id: &str,
) -> Result<SqlDevice, String> {
    let reg: Value = db
        .query_one(
            "SELECT awf.device_register($1, $2, $3::text::uuid)",
            &[&id, &s.user, &s.session],
        )
        .await
        .map_err(|e| format!("device_register: {}", sql_error(&e)))?
        .get(0);
    let token = reg["sync_token"]
        .as_str()
        .ok_or_else(|| format!("device_register answered {reg}"))?
        .to_owned();
    let client = connect(&cfg.database_url).await?;
    if let Some(role) = &cfg.sql_role {
        client
            .batch_execute(&format!("SET ROLE {role}"))
            .await
            .map_err(|e| format!("SET ROLE {role}: {}", sql_error(&e)))?;
    }
    let down = client
        .prepare("SELECT awf.sync_down($1, $2, $3::text::uuid, $4)")
        .await
        .map_err(|e| format!("prepare sync_down: {}", sql_error(&e)))?;
    let up = client
        .prepare("SELECT awf.sync_up($1, $2, $3::jsonb)")
        .await
        .map_err(|e| format!("prepare sync_up: {}", sql_error(&e)))?;
    Ok(SqlDevice {
        client,
        device_id: id.to_owned(),
        token,
        down,
        up,
    })
}

// ---------------------------------------------------------------------------------------------
// The report.

/// p50, p95, p99 and max in milliseconds (nearest rank); `None` without samples.
fn percentiles(xs: &[Duration]) -> Option<[f64; 4]> {
    if xs.is_empty() {
        return None;
    }
    let mut xs = xs.to_vec();
    xs.sort();
    let at = |p: f64| {
        let i = ((xs.len() as f64 * p).ceil() as usize).clamp(1, xs.len()) - 1;
        xs[i].as_secs_f64() * 1e3
    };
    Some([
        at(0.50),
        at(0.95),
        at(0.99),
        xs[xs.len() - 1].as_secs_f64() * 1e3,
    ])
}

fn row(route: &str, path: &str, lat: &[Duration], errors: u64) {
    let calls = lat.len() as u64 + errors;
    match percentiles(lat) {
        Some([p50, p95, p99, max]) => println!(
            "{route:<16} {path:<5} {calls:>6} {errors:>7} {p50:>7.2} {p95:>7.2} {p99:>7.2} {max:>7.2}"
        ),
        None => println!(
            "{route:<16} {path:<5} {calls:>6} {errors:>7} {:>7} {:>7} {:>7} {:>7}",
            "-", "-", "-", "-"
        ),
    }
}

struct Phase {
    name: &'static str,
    stats: Stats,
    wall: Duration,
    warmup: Stats,
    tripped: bool,
    /// Whether it was stopped already in its warm-up.
    in_warmup: bool,
}

async fn phase(
    name: &'static str,
    devices: Vec<(Link, DeviceState)>,
    cfg: &Config,
) -> (Phase, Vec<(Link, DeviceState)>) {
    eprintln!(
        "bench_sync: {name}: warm-up, {} rounds per device",
        cfg.warmup
    );
    let (devices, warmup, _, warm_tripped) = run_phase(devices, cfg.warmup, cfg.upload).await;
    if warm_tripped {
        let p = Phase {
            name,
            stats: Stats::default(),
            wall: Duration::ZERO,
            warmup,
            tripped: true,
            in_warmup: true,
        };
        return (p, devices);
    }
    eprintln!(
        "bench_sync: {name}: {} devices x {} rounds",
        devices.len(),
        cfg.rounds
    );
    let (devices, stats, wall, tripped) = run_phase(devices, cfg.rounds, cfg.upload).await;
    (
        Phase {
            name,
            stats,
            wall,
            warmup,
            tripped,
            in_warmup: false,
        },
        devices,
    )
}

/// What the run needs once seeded: the devices of both paths and what the report says.
struct Setup {
    http_devices: Vec<(Link, DeviceState)>,
    sql_devices: Vec<(Link, DeviceState)>,
    /// HTTP devices that got a signing key.
    signed: usize,
    /// Why the run is unsigned, when the signing-key route answered 404.
    unsigned_why: Option<String>,
    state_bytes: usize,
}

/// Seeds per device a user, a session and save for each path, and registers the devices
/// (over HTTP with the admin key, in SQL as the superuser). `users` collects every user seeded,
/// so a failure half-way can still erase them.
async fn setup(
    cfg: &Config,
    db: &tokio_postgres::Client,
    run: &str,
    users: &mut Vec<String>,
) -> Result<Setup, String> {
    let mut out = Setup {
        http_devices: Vec::new(),
        sql_devices: Vec::new(),
        signed: 0,
        unsigned_why: None,
        state_bytes: 0,
    };
    for k in 0..cfg.devices {
        let user = format!("bench-{run}-user-{k}");
        users.push(user.clone());
        let seed_k = 1_000 + k as u64;
        let state = game_state(cfg.state_bytes, seed_k);
        if k == 0 {
            out.state_bytes = canonical::canonical_bytes(&state).map_or(0, |b| b.len());
        }
        // The same user, state and seed on both paths, each with a session and save of its own.
        let h = seed(db, &user, &state, seed_k).await?;
        let s = seed(db, &user, &state, seed_k).await?;
        let (hd, signing) = http_device(cfg, &h, &format!("bench-{run}-http-{k}")).await?;
        match signing {
            Signing::Key(_) => out.signed += 1,
            Signing::NoRoute(why) => out.unsigned_why = Some(why),
        }
        out.http_devices.push((Link::Http(hd), h.dev));
        let sd = sql_device(cfg, db, &s, &format!("bench-{run}-sql-{k}")).await?;
        out.sql_devices.push((Link::Sql(sd), s.dev));
    }
    Ok(out)
}

/// Erases the bench users (their sessions, saves and devices) unless asked to keep them.
async fn cleanup(db: &tokio_postgres::Client, users: &[String], keep: bool) {
    if keep || users.is_empty() {
        return;
    }
    let mut erased = 0;
    for u in users {
        match db
            .execute("SELECT awf.user_delete($1, 'bench_sync cleanup')", &[u])
            .await
        {
            Ok(_) => erased += 1,
            // Nothing of that user was created yet.
            Err(e) if e.code().is_some_and(|c| c.code() == "P0002") => {}
            Err(e) => eprintln!("bench_sync: user_delete {u}: {}", sql_error(&e)),
        }
    }
    eprintln!("bench_sync: erased {erased} bench users (AWF_BENCH_KEEP=1 keeps them)");
}

/// A hint for failures whose cause is the deployment rather than the benchmark.
fn hint(e: &str) -> &'static str {
    if e.contains("42883") {
        " (42883: a SQL function the server calls is missing in the database, so the extension \
         there is older than the server; note that ALTER EXTENSION UPDATE does nothing within \
         one version)"
    } else {
        ""
    }
}

// ---------------------------------------------------------------------------------------------
// Wake latency: how soon a second device's long poll answers after the first device uploads.

/// Rounds of the wake phase.
const WAKE_ROUNDS: usize = 50;

/// Two devices of one new user on one save: the tablet long-polls `sync/down?...&wait=30`
/// while the phone uploads a turn; returns the tablet's answer times measured from when the
/// upload was sent and from when its answer arrived.
async fn wake_phase(
    cfg: &Config,
    db: &tokio_postgres::Client,
    run: &str,
    users: &mut Vec<String>,
) -> Result<(Vec<Duration>, Vec<Duration>), String> {
    let user = format!("bench-wake-{run}");
    users.push(user.clone());
    let s = seed(db, &user, &json!({"player": {"gold": 0}}), 1).await?;
    let (phone, _) = http_device(cfg, &s, &format!("bench-{run}-wake-phone")).await?;
    let (tablet, _) = http_device(cfg, &s, &format!("bench-{run}-wake-tablet")).await?;
    let save = s.dev.save_id.clone();
    let down = |since: i64, wait: u64| {
        format!("{DOWN_PATH}?save_id={save}&since_turn={since}&wait={wait}")
    };
    let first = http_call(
        &phone.client,
        &phone.base,
        &phone.auth,
        phone.key.as_ref(),
        reqwest::Method::GET,
        &down(0, 0),
        None,
    )
    .await?
    .json(200)?;
    let mut head = first["head_turn"].as_i64().unwrap_or(0);
    let mut chain = first["head_chain"].clone();
    let (mut from_sent, mut from_answered) = (Vec::new(), Vec::new());
    for i in 0..WAKE_ROUNDS {
        let poll = {
            let (client, base, auth, key) = (
                tablet.client.clone(),
                tablet.base.clone(),
                match &tablet.auth {
                    Auth::Device { id, token } => Auth::Device {
                        id: id.clone(),
                        token: token.clone(),
                    },
                    Auth::Admin(k) => Auth::Admin(k.clone()),
                },
                tablet.key,
            );
            let path = down(head, 30);
            tokio::spawn(async move {
                let a = http_call(
                    &client,
                    &base,
                    &auth,
                    key.as_ref(),
                    reqwest::Method::GET,
                    &path,
                    None,
                )
                .await;
                (a, Instant::now())
            })
        };
        // Let the poll reach the server and start waiting.
        tokio::time::sleep(Duration::from_millis(30)).await;
        let body = json!({"save_id": save, "base_turn": head, "base_chain": chain,
                          "turns": [{"turn_id": head + 1, "state": {"player": {"gold": i}}}]});
        let sent = Instant::now();
        let up = http_call(
            &phone.client,
            &phone.base,
            &phone.auth,
            phone.key.as_ref(),
            reqwest::Method::POST,
            UP_PATH,
            Some(&body),
        )
        .await?
        .json(200)?;
        let answered = Instant::now();
        if up["status"] != "fast_forward" {
            return Err(format!("wake upload answered {up}"));
        }
        head = up["head_turn"].as_i64().unwrap_or(head + 1);
        chain = up["head_chain"].clone();
        let (a, woke) = poll.await.map_err(|e| format!("poll task: {e}"))?;
        let v = a?.json(200)?;
        if v["turns"].as_array().is_none_or(|t| t.is_empty()) {
            return Err(format!("the long poll answered without the new turn: {v}"));
        }
        from_sent.push(woke.duration_since(sent));
        from_answered.push(woke.saturating_duration_since(answered));
    }
    Ok((from_sent, from_answered))
}

#[tokio::main]
async fn main() {
    let cfg = Config::from_env();
    let db = connect(&cfg.database_url).await.unwrap_or_else(|e| fail(e));
    let sql_role = match &cfg.sql_role {
        Some(r) => {
            let exists = db
                .query_opt("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1", &[r])
                .await
                .unwrap_or_else(|e| fail(sql_error(&e)))
                .is_some();
            if exists {
                Some(r.clone())
            } else {
                eprintln!(
                    "bench_sync: role {r} does not exist; the SQL path runs as the connecting user"
                );
                None
            }
        }
        None => None,
    };
    let cfg = Config { sql_role, ..cfg };

    // One tag per run: users, sessions, saves and devices never collide with an earlier run.
    let run = awf_tests::random_uuid()[..8].to_owned();
    let mut users = Vec::new();
    eprintln!(
        "bench_sync: seeding {} users, 2 x {} sessions and saves (run {run})",
        cfg.devices, cfg.devices
    );
    let Setup {
        http_devices,
        sql_devices,
        signed,
        unsigned_why,
        state_bytes,
    } = match setup(&cfg, &db, &run, &mut users).await {
        Ok(s) => s,
        Err(e) => {
            cleanup(&db, &users, cfg.keep).await;
            fail(format!("setup: {e}{}", hint(&e)))
        }
    };

    let (http, http_devices) = phase("HTTP", http_devices, &cfg).await;
    let sql = if http.tripped {
        None
    } else {
        Some(phase("SQL", sql_devices, &cfg).await.0)
    };

    let (mut verified, mut unsigned_answers) = (0u64, 0u64);
    for (link, _) in &http_devices {
        if let Link::Http(h) = link {
            verified += h.verified;
            unsigned_answers += h.unsigned_answers;
        }
    }

    // The report.
    let upload = match cfg.upload {
        Upload::State => "full state per turn",
        Upload::Patch => "RFC 6902 patch per turn",
    };
    println!();
    println!(
        "bench_sync: {} devices x {} rounds (sync down since head, then sync up 1 turn), {} warm-up rounds not measured",
        cfg.devices, cfg.rounds, cfg.warmup
    );
    println!(
        "state: {state_bytes} bytes canonical JSON (awf_sample::game_state({}, seed)); upload: {upload}",
        cfg.state_bytes
    );
    println!(
        "HTTP:  {} ({} client connections), signed: {}",
        cfg.http.as_str().trim_end_matches('/'),
        cfg.devices,
        if signed == cfg.devices {
            format!(
                "yes (X-AWF-Signature on every sync request; {verified} signed answers verified, {unsigned_answers} answers unsigned)"
            )
        } else if signed == 0 {
            format!(
                "no (GET {SIGNING_KEY_PATH} answered 404: {})",
                unsigned_why.unwrap_or_default()
            )
        } else {
            format!("partly: {signed} of {} devices got a key", cfg.devices)
        }
    );
    println!(
        "SQL:   {} ({} connections, role {}), unsigned (signatures are an HTTP header)",
        cfg.database_shown(),
        cfg.devices,
        cfg.sql_role.as_deref().unwrap_or("of the URL")
    );
    println!("latencies are client-observed, of answered calls, in ms; errors include conflicts");
    println!();
    println!(
        "{:<16} {:<5} {:>6} {:>7} {:>7} {:>7} {:>7} {:>7}",
        "route", "path", "calls", "errors", "p50 ms", "p95 ms", "p99 ms", "max ms"
    );
    let empty = Stats::default();
    let sql_stats = sql.as_ref().map_or(&empty, |p| &p.stats);
    row(
        "sync/down",
        "HTTP",
        &http.stats.down,
        http.stats.down_errors,
    );
    row("sync/down", "SQL", &sql_stats.down, sql_stats.down_errors);
    row("sync/up", "HTTP", &http.stats.up, http.stats.up_errors);
    row("sync/up", "SQL", &sql_stats.up, sql_stats.up_errors);
    println!();
    println!(
        "{:<6} {:>7} {:>8} {:>9} {:>7} {:>9} {:>14}",
        "phase", "calls", "wall s", "calls/s", "errors", "conflicts", "warm-up errors"
    );
    let mut failed = Vec::new();
    for p in std::iter::once(&http).chain(sql.as_ref()) {
        let s = &p.stats;
        let secs = p.wall.as_secs_f64();
        let rate = if secs > 0.0 {
            s.calls() as f64 / secs
        } else {
            0.0
        };
        println!(
            "{:<6} {:>7} {:>8.2} {:>9.1} {:>7} {:>9} {:>14}",
            p.name,
            s.calls(),
            secs,
            rate,
            s.errors(),
            s.conflicts + p.warmup.conflicts,
            p.warmup.errors()
        );
        if p.tripped {
            failed.push(p);
        }
    }
    // Wake latency: a second device's long poll, woken by the first device's upload.
    if !http.tripped {
        match wake_phase(&cfg, &db, &run, &mut users).await {
            Ok((from_sent, from_answered)) => {
                println!();
                println!(
                    "wake: a device's long poll (sync/down?wait=30) answered after another device's upload, {WAKE_ROUNDS} rounds, ms"
                );
                println!(
                    "{:<24} {:>7} {:>7} {:>7} {:>7}",
                    "measured from", "p50 ms", "p95 ms", "p99 ms", "max ms"
                );
                for (what, xs) in [
                    ("the upload was sent", &from_sent),
                    ("the upload's answer", &from_answered),
                ] {
                    if let Some([p50, p95, p99, max]) = percentiles(xs) {
                        println!("{what:<24} {p50:>7.2} {p95:>7.2} {p99:>7.2} {max:>7.2}");
                    }
                }
            }
            Err(e) => println!("wake: failed: {e}"),
        }
    }

    let mut all_errors: Vec<&String> = Vec::new();
    for p in std::iter::once(&http).chain(sql.as_ref()) {
        all_errors.extend(p.warmup.errors.iter().chain(&p.stats.errors));
    }
    if !all_errors.is_empty() {
        println!();
        println!("first errors:");
        for e in all_errors.iter().take(KEEP_ERRORS) {
            println!("  {e}");
        }
    }

    cleanup(&db, &users, cfg.keep).await;
    if !failed.is_empty() {
        let names: Vec<_> = failed
            .iter()
            .map(|p| {
                if p.in_warmup {
                    format!("{} warm-up", p.name)
                } else {
                    p.name.to_owned()
                }
            })
            .collect();
        fail(format!(
            "stopped: more than {MAX_ERROR_PERCENT}% of the calls failed in the {} phase (see the errors above)",
            names.join(", ")
        ));
    }
}
