//! Cloud-save benchmark: persists a 500-turn realistic game state (about 20 KB, changing a
//! little each turn) through `awf.save_persist_turn`, then materializes it at several turn
//! positions, and prints latency percentiles and storage per turn.
//!
//!   AWF_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:54816/postgres \
//!     cargo run --release -p awf_tests --bin bench_saves [-- TURNS [STATE_BYTES]]
//!
//! It creates a throwaway database on that cluster and drops it afterwards. Numbers are
//! client-observed (one connection on 127.0.0.1), so they include the protocol round trip.

use awf_sample::{game_state, next_turn, turn_of};
use awf_tests::{percentile_ms, TestDb};
use std::time::{Duration, Instant};

fn percentiles(mut xs: Vec<Duration>) -> (f64, f64, f64, f64) {
    let mut at = |p: f64| percentile_ms(&mut xs, p);
    (at(0.50), at(0.95), at(0.99), at(1.0))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let turns: i64 = args
        .next()
        .map(|a| a.parse().expect("TURNS"))
        .unwrap_or(500);
    let size: usize = args
        .next()
        .map(|a| a.parse().expect("STATE_BYTES"))
        .unwrap_or(20_000);
    let seed = 7;
    let db = TestDb::new();
    let mut c = db.client();
    let mut state = game_state(size, seed);
    let start_turn = turn_of(&state);
    let sid = "22222222-2222-2222-2222-222222222222";
    c.execute(
        "SELECT awf.session_upsert($1::text::uuid, 'bench-user', $2)",
        &[&sid, &state],
    )
    .unwrap();
    let save: String = c
        .query_one(
            "SELECT awf.save_create_or_attach($1::text::uuid, 'bench-user') ->> 'save_id'",
            &[&sid],
        )
        .unwrap()
        .get(0);
    let persist = c
        .prepare("SELECT awf.save_persist_turn($1::text::uuid, $2, $3)")
        .unwrap();
    let mut persist_times = Vec::with_capacity(turns as usize);
    for t in 1..=turns {
        next_turn(&mut state, start_turn + t, seed);
        let t0 = Instant::now();
        c.execute(&persist, &[&save, &t, &state]).unwrap();
        persist_times.push(t0.elapsed());
    }
    let (p50, p95, p99, max) = percentiles(persist_times);
    println!("cloud-save benchmark: {turns} turns of a ~{size}-byte state, base every awf.sync_snapshot_every turns");
    println!();
    println!("| operation | p50 ms | p95 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|");
    println!("| persist turn | {p50:.2} | {p95:.2} | {p99:.2} | {max:.2} |");
    let materialize = c
        .prepare("SELECT awf.save_materialize_bytes($1::text::uuid, $2)")
        .unwrap();
    let reps = 40;
    for target in [1, 24, 25, 26, turns / 2, turns - 1, turns] {
        let mut times = Vec::with_capacity(reps);
        for _ in 0..reps {
            let t0 = Instant::now();
            c.query_one(&materialize, &[&save, &target]).unwrap();
            times.push(t0.elapsed());
        }
        let (p50, p95, p99, max) = percentiles(times);
        println!("| materialize turn {target} | {p50:.2} | {p95:.2} | {p99:.2} | {max:.2} |");
    }
    // The head state as a stored jsonb (TOAST-compressed), to compare with.
    c.execute(
        "CREATE TEMP TABLE head AS SELECT awf.save_materialize($1::text::uuid) AS state",
        &[&save],
    )
    .unwrap();
    let row = c
        .query_one(
            "SELECT (SELECT sum(stored_bytes) FROM awf.save_diffs WHERE save_id = $1::text::uuid)::bigint,
                    (SELECT count(*) FROM awf.save_diffs WHERE save_id = $1::text::uuid),
                    (SELECT sum(stored_bytes) FROM awf.save_diffs WHERE save_id = $1::text::uuid AND kind = 'base')::bigint,
                    (SELECT count(*) FROM awf.save_diffs WHERE save_id = $1::text::uuid AND kind = 'base'),
                    pg_column_size(state), octet_length(awf.canonical_json(state))
             FROM head",
            &[&save],
        )
        .unwrap();
    let (stored, rows, base_bytes, bases): (i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let (jsonb_size, canonical_size): (i32, i32) = (row.get(4), row.get(5));
    let diffs = rows - bases;
    println!();
    println!("| storage | bytes |");
    println!("|---|---:|");
    println!("| state, canonical JSON | {canonical_size} |");
    println!("| state as jsonb (pg_column_size, TOAST-compressed) | {jsonb_size} |");
    println!(
        "| stored per turn, average over {rows} turns | {} |",
        stored / rows
    );
    println!(
        "| stored per base, average over {bases} bases | {} |",
        base_bytes / bases.max(1)
    );
    println!(
        "| stored per diff, average over {diffs} diffs | {} |",
        (stored - base_bytes) / diffs.max(1)
    );
    println!(
        "| full state as jsonb per turn instead | {jsonb_size} (x{:.1}) |",
        jsonb_size as f64 / (stored as f64 / rows as f64)
    );
}
