//! `awf.recap`: a short, deterministic summary of a session from its memory and last turns.

use crate::audit;
use crate::errors::{raise, OrRaise};
use crate::gucs;
use crate::jsonb::JsonB;
use crate::store;
use awf_core::recap::{compose, RecapInput, RecapLimits};
use awf_core::Error;
use pgrx::prelude::*;
use pgrx::Uuid;

/// Composes the recap of a session from its warm pins, episodic memories, objectives and the
/// narrative lines of its last `last_turns` turns, within `awf.recap_max_sentences` and
/// `awf.recap_max_words_per_sentence`. Returns `{text, sentences, objectives}`; the same state
/// and turns always give the same bytes.
#[pg_extern(volatile, parallel_unsafe)]
fn recap(session_id: Uuid, last_turns: default!(i32, 3)) -> JsonB {
    const F: &str = "recap";
    if last_turns < 0 {
        raise(Error::invalid("last_turns must be zero or more"), F);
    }
    crate::locks::connect_mut(|c| {
        let session = store::session(c, session_id, false);
        let lines: Vec<String> = c
            .update(
                "SELECT line FROM (
                   SELECT turn_id, lines FROM awf.turns WHERE session_id = $1
                   ORDER BY turn_id DESC LIMIT $2) t,
                 unnest(t.lines) WITH ORDINALITY AS l(line, n)
                 ORDER BY t.turn_id, l.n",
                None,
                &[session_id.into(), (last_turns as i64).into()],
            )
            .expect("select recent turn lines")
            .filter_map(|row| row.get::<String>(1).ok().flatten())
            .collect();
        let input = RecapInput::from_state(&session.state, lines).or_raise(F);
        let limits = RecapLimits {
            max_sentences: gucs::recap_max_sentences(),
            max_words_per_sentence: gucs::recap_max_words_per_sentence(),
            ..RecapLimits::default()
        };
        let recap = compose(&input, &limits).or_raise(F);
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
        assert_sqlstate(
            "SELECT awf.recap('00000000-0000-0000-0000-000000000000')",
            "P0002",
        );
        run(&format!(
            r#"SELECT awf.session_upsert('{SID}', 'u1', '{{"memory": {{"episodic": 5}}}}')"#
        ));
        assert_sqlstate(&format!("SELECT awf.recap('{SID}')"), "22023");
    }
}
