//! `awf.recap`: a short, deterministic summary of a session from its memory and last turns.

use crate::audit;
use crate::errors::{raise, OrRaise};
use crate::gucs;
use crate::store;
use awf_core::recap::{compose, RecapInput, RecapLimits};
use awf_core::Error;
use pgrx::prelude::*;
use pgrx::{JsonB, Uuid};

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
    Spi::connect_mut(|c| {
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
