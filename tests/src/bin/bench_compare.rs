//! The cloud save against what a user would write by hand, side by side in one run: each client
//! plays its own session of a ~15 KB game state, each turn changing the player's gold and hp
//! and rewriting one episodic memory.
//!
//! - **plain**: `UPDATE` the state jsonb and `INSERT` the full new state into a history table,
//!   in one transaction (the client sends the new state);
//! - **turn_submit**: `awf.turn_submit` with the turn's acts, on a session with a cloud save
//!   (the state is computed, logged, applied and persisted in the database);
//! - **save_persist_turn**: the client sends the new state to `awf.save_persist_turn`.
//!
//! For each, at 1 and 8 clients: turns per second, database growth per turn (after VACUUM,
//! marginal: measured after a warm-up; and its live part, without the space VACUUM freed for
//! reuse), WAL written per turn, and the latency of reading a
//! random past turn (a history lookup, `awf.save_materialize`). Numbers only, never pass/fail.
//!
//!   AWF_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:54818/postgres \
//!     cargo run --release -p awf_tests --bin bench_compare [-- TURNS_PER_CLIENT [STATE_BYTES]]
//!
//! Each mode runs in its own throwaway database on that cluster (dropped afterwards).
//! `AWF_COMPARE_CLIENTS=8` and `AWF_COMPARE_MODES=turn_submit` (of `plain`, `turn_submit`,
//! `persist`) narrow a run, for a profiler; ratios need `plain` in the run.

use awf_sample::game_state;
use awf_tests::{percentile_ms, TestDb};
use postgres::Client;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// What one mode does per turn.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Plain,
    TurnSubmit,
    PersistTurn,
}

impl Mode {
    fn key(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::TurnSubmit => "turn_submit",
            Mode::PersistTurn => "persist",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mode::Plain => "plain (UPDATE + INSERT history)",
            Mode::TurnSubmit => "awf.turn_submit + cloud save",
            Mode::PersistTurn => "awf.save_persist_turn",
        }
    }
}

/// One mode's numbers.
struct Measured {
    tps: f64,
    growth_per_turn: f64,
    live_per_turn: f64,
    wal_per_turn: f64,
    read_p50_ms: f64,
    read_p95_ms: f64,
}

/// The acts of turn `turn` (gold, hp, one episodic memory rewritten) and the same change made
/// to `state` here, for the modes that send the whole state.
fn play(state: &mut Value, turn: i64) -> Value {
    let gold = state["player"]["gold"].as_i64().unwrap_or(0);
    let hp = 1 + (turn * 37) % 100;
    let n = state["memory"]["episodic"].as_array().map_or(0, Vec::len);
    let k = (turn as usize) % n.max(1);
    let text = format!("Turn {turn}: the party argued about the map by the old well, again.");
    state["player"]["gold"] = json!(gold + 3);
    state["player"]["hp"] = json!(hp);
    let mut acts = vec![
        json!({"op": "increment", "path": "/player/gold", "by": 3}),
        json!({"op": "replace", "path": "/player/hp", "value": hp}),
    ];
    if n > 0 {
        state["memory"]["episodic"][k]["text"] = json!(text);
        acts.push(
            json!({"op": "replace", "path": format!("/memory/episodic/{k}/text"), "value": text}),
        );
    }
    json!({"acts": acts})
}

fn session_id(client: usize) -> String {
    format!("00000000-0000-4000-8000-{client:012}")
}

/// A client's session, set up for `mode`; returns (state, turn it is at, save id).
fn setup(c: &mut Client, mode: Mode, client: usize, size: usize) -> (Value, i64, String) {
    let sid = session_id(client);
    let state = game_state(size, client as u64 + 1);
    let mut save = String::new();
    match mode {
        Mode::Plain => {
            c.execute(
                "INSERT INTO plain_state (session_id, turn_id, state) VALUES ($1::text::uuid, 0, $2)",
                &[&sid, &state],
            )
            .unwrap();
        }
        Mode::TurnSubmit | Mode::PersistTurn => {
            let user = format!("bench-{client}");
            c.execute(
                "SELECT awf.session_upsert($1::text::uuid, $2, $3)",
                &[&sid, &user, &state],
            )
            .unwrap();
            save = c
                .query_one(
                    "SELECT awf.save_create_or_attach($1::text::uuid, $2) ->> 'save_id'",
                    &[&sid, &user],
                )
                .unwrap()
                .get(0);
        }
    }
    let turn: i64 = match mode {
        Mode::Plain => 0,
        _ => c
            .query_one(
                "SELECT turn_id FROM awf.sessions WHERE session_id = $1::text::uuid",
                &[&sid],
            )
            .unwrap()
            .get(0),
    };
    (state, turn, save)
}

/// Plays `turns` turns of client `client`'s session.
struct Player {
    c: Client,
    mode: Mode,
    sid: String,
    save: String,
    state: Value,
    turn: i64,
}

impl Player {
    fn turn(&mut self) {
        self.turn += 1;
        let t = self.turn;
        let acts = play(&mut self.state, t);
        match self.mode {
            Mode::Plain => {
                let mut tx = self.c.transaction().unwrap();
                tx.execute(
                    "UPDATE plain_state SET state = $2, turn_id = $3 WHERE session_id = $1::text::uuid",
                    &[&self.sid, &self.state, &t],
                )
                .unwrap();
                tx.execute(
                    "INSERT INTO plain_history (session_id, turn_id, state) VALUES ($1::text::uuid, $2, $3)",
                    &[&self.sid, &t, &self.state],
                )
                .unwrap();
                tx.commit().unwrap();
            }
            Mode::TurnSubmit => {
                self.c
                    .execute(
                        "SELECT awf.turn_submit($1::text::uuid, $2, $3)",
                        &[&self.sid, &t, &acts],
                    )
                    .unwrap();
            }
            Mode::PersistTurn => {
                self.c
                    .execute(
                        "SELECT awf.save_persist_turn($1::text::uuid, $2, $3)",
                        &[&self.save, &t, &self.state],
                    )
                    .unwrap();
            }
        }
    }

    /// Reads turn `t` back: the history row, or the save materialized at it.
    fn read(&mut self, t: i64) {
        match self.mode {
            Mode::Plain => {
                self.c
                    .query_one(
                        "SELECT state FROM plain_history WHERE session_id = $1::text::uuid AND turn_id = $2",
                        &[&self.sid, &t],
                    )
                    .unwrap();
            }
            _ => {
                self.c
                    .query_one(
                        "SELECT awf.save_materialize($1::text::uuid, $2)",
                        &[&self.save, &t],
                    )
                    .unwrap();
            }
        }
    }
}

fn one_i64(c: &mut Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).unwrap().get(0)
}

/// The database's size minus the free space VACUUM recorded in its relations' free space maps:
/// the bytes later turns cannot reuse. Dead row versions of a row updated every turn (the live
/// state, in both plain and the cloud save) are freed by VACUUM and their space is reused, so
/// in steady state (autovacuum running) only these bytes grow the database.
fn live_bytes(c: &mut Client) -> i64 {
    one_i64(
        c,
        "SELECT pg_database_size(current_database())
                - coalesce((SELECT sum(f.avail) FROM pg_class r, LATERAL pg_freespace(r.oid) f
                            WHERE r.relkind IN ('r', 't', 'm', 'i')), 0)::bigint",
    )
}

fn run(mode: Mode, clients: usize, turns: i64, size: usize) -> Measured {
    let db = TestDb::new();
    let mut admin = db.client();
    admin
        .batch_execute(
            "CREATE TABLE plain_state (session_id uuid PRIMARY KEY, turn_id bigint NOT NULL,
                                       state jsonb NOT NULL);
             CREATE TABLE plain_history (session_id uuid, turn_id bigint, state jsonb NOT NULL,
                                         PRIMARY KEY (session_id, turn_id));
             CREATE EXTENSION pg_freespacemap;",
        )
        .unwrap();
    let mut players: Vec<Player> = (0..clients)
        .map(|i| {
            let mut c = db.client();
            let (state, turn, save) = setup(&mut c, mode, i, size);
            Player {
                c,
                mode,
                sid: session_id(i),
                save,
                state,
                turn,
            }
        })
        .collect();
    // Warm-up: tables, indexes and TOAST past their first pages, the save past its first base.
    let warm = 30;
    for p in &mut players {
        let from = p.turn;
        while p.turn < from + warm {
            p.turn();
        }
    }
    let first_measured: Vec<i64> = players.iter().map(|p| p.turn + 1).collect();
    admin.batch_execute("VACUUM").unwrap();
    admin.batch_execute("CHECKPOINT").unwrap();
    let size0 = one_i64(&mut admin, "SELECT pg_database_size(current_database())");
    let live0 = live_bytes(&mut admin);
    let lsn0: String = admin
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .unwrap()
        .get(0);
    let t0 = Instant::now();
    let players: Vec<Player> = std::thread::scope(|s| {
        let handles: Vec<_> = players
            .into_iter()
            .map(|mut p| {
                s.spawn(move || {
                    for _ in 0..turns {
                        p.turn();
                    }
                    p
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let elapsed = t0.elapsed();
    let wal: i64 = admin
        .query_one(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::text::pg_lsn)::bigint",
            &[&lsn0],
        )
        .unwrap()
        .get(0);
    admin.batch_execute("VACUUM").unwrap();
    let size1 = one_i64(&mut admin, "SELECT pg_database_size(current_database())");
    let live1 = live_bytes(&mut admin);
    let total = turns * clients as i64;
    // Reads: each client reads random turns of its own session's measured range.
    let reads = 100;
    let mut latencies: Vec<Duration> = std::thread::scope(|s| {
        let handles: Vec<_> = players
            .into_iter()
            .zip(first_measured)
            .enumerate()
            .map(|(i, (mut p, first))| {
                s.spawn(move || {
                    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ i as u64;
                    let span = (p.turn - first + 1) as u64;
                    (0..reads)
                        .map(|_| {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            let t = first + (x % span) as i64;
                            let t0 = Instant::now();
                            p.read(t);
                            t0.elapsed()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    Measured {
        tps: total as f64 / elapsed.as_secs_f64(),
        growth_per_turn: (size1 - size0) as f64 / total as f64,
        live_per_turn: (live1 - live0) as f64 / total as f64,
        wal_per_turn: wal as f64 / total as f64,
        read_p50_ms: percentile_ms(&mut latencies, 0.50),
        read_p95_ms: percentile_ms(&mut latencies, 0.95),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let turns: i64 = args
        .next()
        .map(|a| a.parse().expect("TURNS_PER_CLIENT"))
        .unwrap_or(200);
    let size: usize = args
        .next()
        .map(|a| a.parse().expect("STATE_BYTES"))
        .unwrap_or(15_000);
    println!(
        "compare: {turns} measured turns per client of a ~{size}-byte state (after 30 warm-up turns)"
    );
    let listed = |var: &str| std::env::var(var).ok().filter(|v| !v.is_empty());
    let clients: Vec<usize> = listed("AWF_COMPARE_CLIENTS").map_or(vec![1, 8], |v| {
        v.split(',')
            .map(|c| c.trim().parse().expect("AWF_COMPARE_CLIENTS"))
            .collect()
    });
    let modes: Vec<Mode> = [Mode::Plain, Mode::TurnSubmit, Mode::PersistTurn]
        .into_iter()
        .filter(|m| {
            listed("AWF_COMPARE_MODES").is_none_or(|v| v.split(',').any(|k| k.trim() == m.key()))
        })
        .collect();
    for clients in clients {
        let m: Vec<Measured> = modes
            .iter()
            .map(|&mode| run(mode, clients, turns, size))
            .collect();
        // Ratios against plain; against itself (1×) when plain is not in the run.
        let plain = modes
            .iter()
            .position(|m| *m == Mode::Plain)
            .map_or(&m[0], |i| &m[i]);
        println!();
        println!("{clients} client(s):");
        println!();
        println!(
            "| per turn | turns/s | growth KB | live growth KB | WAL KB | read p50 ms | read p95 ms |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for (mode, x) in modes.iter().zip(&m) {
            println!(
                "| {} | {:.0} ({:.2}×) | {:.2} ({:.2}×) | {:.2} ({:.2}×) | {:.2} ({:.2}×) | {:.2} | {:.2} ({:.1}×) |",
                mode.name(),
                x.tps,
                x.tps / plain.tps,
                x.growth_per_turn / 1024.0,
                x.growth_per_turn / plain.growth_per_turn,
                x.live_per_turn / 1024.0,
                x.live_per_turn / plain.live_per_turn,
                x.wal_per_turn / 1024.0,
                x.wal_per_turn / plain.wal_per_turn,
                x.read_p50_ms,
                x.read_p95_ms,
                x.read_p95_ms / plain.read_p95_ms,
            );
        }
    }
}
