//! `awf.recap`: a short, deterministic summary of a session from its memory and last turns.

use crate::audit;
use crate::errors::{raise, OrRaise};
use crate::gucs;
use crate::jsonb::JsonB;
use crate::sessions::store;
use awf_core::recap::{compose, RecapInput, RecapLimits};
use awf_core::Error;
use pgrx::prelude::*;
use pgrx::Uuid;

/// Most turns one recap reads lines from.
const MAX_TURNS: i32 = 1000;
/// Newest lines read per sentence the recap may hold: room for blank and repeated lines,
/// which take no sentence, without reading every line of a thousand turns.
const LINES_PER_SENTENCE: i64 = 16;
/// Characters of a line read: a sentence keeps its first few dozen words.
const LINE_CHARS: i32 = 16_384;

/// Composes the recap of a session from its warm pins, episodic memories, objectives and the
/// narrative lines of its last `last_turns` turns (0 to 1000), within
/// `awf.recap_max_sentences` and `awf.recap_max_words_per_sentence`. Of those turns it reads
/// the newest 16 lines per sentence, the first 16,384 characters of each. Returns
/// `{text, sentences, objectives}`; the same state and turns always give the same bytes.
#[pg_extern(volatile, parallel_unsafe)]
fn recap(session_id: Uuid, last_turns: default!(i32, 3)) -> JsonB {
    const F: &str = "recap";
    if !(0..=MAX_TURNS).contains(&last_turns) {
        raise(
            Error::invalid(format!("last_turns must be between 0 and {MAX_TURNS}")),
            F,
        );
    }
    crate::locks::connect_mut(|c| {
        let session = store::session(c, session_id, false);
        let max_sentences = gucs::recap_max_sentences();
        let mut lines: Vec<String> = crate::spi::run(
            c,
            "SELECT left(line, $3) FROM (
                   SELECT turn_id, lines FROM awf.turns WHERE session_id = $1
                   ORDER BY turn_id DESC LIMIT $2) t,
                 unnest(t.lines) WITH ORDINALITY AS l(line, n)
                 ORDER BY t.turn_id DESC, l.n DESC LIMIT $4",
            None,
            &[
                session_id.into(),
                i64::from(last_turns).into(),
                LINE_CHARS.into(),
                (LINES_PER_SENTENCE * max_sentences as i64).into(),
            ],
        )
        .expect("select recent turn lines")
        .filter_map(|row| row.get::<String>(1).ok().flatten())
        .collect();
        lines.reverse(); // story order
        let input = RecapInput::from_state(&session.state, lines).or_raise(F);
        let limits = RecapLimits {
            max_sentences,
            max_words_per_sentence: gucs::recap_max_words_per_sentence(),
            ..RecapLimits::default()
        };
        let recap = compose(&input, &limits, &mut gucs::budget()).or_raise(F);
        audit::bump(c, "awf.recap.generated", 1);
        JsonB(serde_json::to_value(recap).expect("recap serializes"))
    })
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::testing::{assert_sqlstate, json, new_session, run, submit, SID};
    use pgrx::prelude::*;
    use serde_json::json;

    #[pg_test]
    fn recap_orders_pins_memories_and_lines_deterministically() {
        new_session();
        submit(
            1,
            r#"[{"op": "pin", "text": "The vow"}, {"op": "remember", "text": "Low", "salience": 0.1}]"#,
        );
        submit(
            2,
            r#"[{"op": "remember", "text": "High", "salience": 0.9}, {"op": "objective", "id": "a", "text": "Win", "priority": 1}]"#,
        );
        let r = json(&format!("SELECT awf.recap('{SID}', 1)"));
        assert_eq!(
            r["sentences"],
            json!(["The vow.", "High.", "Low.", "Turn 2."])
        );
        assert_eq!(r["objectives"][0]["id"], json!("a"));
        let again = json(&format!("SELECT awf.recap('{SID}', 1)"));
        assert_eq!(r.to_string(), again.to_string());
        run("SET awf.recap_max_sentences = 2");
        assert_eq!(
            json(&format!("SELECT awf.recap('{SID}')"))["sentences"],
            json!(["The vow.", "High."])
        );
    }

    #[pg_test]
    fn recap_error_paths() {
        new_session();
        assert_sqlstate(&format!("SELECT awf.recap('{SID}', -1)"), "22023");
        assert_sqlstate(&format!("SELECT awf.recap('{SID}', 1001)"), "22023");
        assert_sqlstate(
            "SELECT awf.recap('00000000-0000-0000-0000-000000000000')",
            "P0002",
        );
    }

    #[pg_test]
    fn recap_uses_what_it_can_read_and_reports_the_rest() {
        new_session();
        // The seed's objectives have no id; a malformed memory section is skipped, not fatal.
        run(&format!(
            r#"SELECT awf.session_upsert('{SID}', 'u1', '{{"memory": {{"episodic": 5}},
                 "hot": {{"objectives": [{{"text": "Find the key", "priority": 2}}]}}}}')"#
        ));
        let r = json(&format!("SELECT awf.recap('{SID}')"));
        assert_eq!(
            r["objectives"][0]["text"],
            serde_json::json!("Find the key")
        );
        assert_eq!(r["skipped_count"], serde_json::json!(1));
        assert_eq!(
            r["skipped"][0]["pointer"],
            serde_json::json!("/memory/episodic")
        );
        assert!(r["sentences"][0].as_str().unwrap().contains("Find the key"));
    }
}
