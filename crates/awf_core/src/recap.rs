//! Deterministic recap composition from a session's memory.
//!
//! A recap is a few sentences that remind a player (or a model) where the story stands. It is
//! built from the session state alone plus the last turns' narrative lines, with no randomness,
//! no hashing of maps and no locale, so the same input gives the same bytes on every machine.
//!
//! Candidate sentences, in priority order:
//! 1. warm pins, newest first (turn descending, then input order);
//! 2. episodic memories, most salient first, then newest (turn descending), then input order;
//! 3. the recent turn lines: as many of the *last* lines as still fit, kept oldest first, so
//!    the recap ends with what just happened.
//!
//! Each candidate is one sentence of the recap even if its text holds several sentences; it is
//! normalized by [`normalize_sentence`]. A candidate that is empty, or whose normalized form
//! repeats an earlier sentence ignoring case, is skipped. When fewer than `min_sentences` remain,
//! the recap is padded with `Current objective: <text>.` for the active objectives, most
//! important first, then with fixed filler sentences (see [`FILLERS`]).
//!
//! Objectives: a higher `priority` number is more important, the same direction as `salience`,
//! so one reading holds for every "importance" number in the state; ties go by `id` (byte order;
//! objectives without one after those with one), then input order. Only active objectives
//! count: `status` absent, `null`, `"active"` or `"open"` (ASCII case-insensitive); `"done"`,
//! `"failed"` and anything else are finished.
//!
//! Any state shape is accepted: the recap uses what it can read and reports what it skipped
//! (`skipped`, each with its JSON Pointer and why), so malformed memory is visible without
//! stopping the recap.

use crate::budget::Budget;
use crate::error::{Error, Result};
use crate::json::{push_token, type_name};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;

/// Padding used after the objectives, in order; once exhausted the last one repeats, which only
/// a recap with an unusually large `min_sentences` and almost no memory ever reaches.
pub const FILLERS: [&str; 3] = [
    "The story has just begun.",
    "Little has been recorded so far.",
    "What happens next is still unwritten.",
];

/// The mark appended to a sentence cut at `max_words_per_sentence` words.
pub const TRUNCATION_MARK: char = '…';

/// A warm memory the game pinned so it stays in view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pin {
    /// What to remember.
    pub text: String,
    /// The turn that pinned it.
    pub turn: i64,
}

/// An episodic memory with how much it matters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Episode {
    /// What happened.
    pub text: String,
    /// How memorable it is; higher comes first. NaN is rejected.
    pub salience: f64,
    /// The turn it happened in.
    pub turn: i64,
}

/// A goal the player is pursuing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Objective {
    /// Stable identifier, the tie-breaker between equal priorities (a number's text for a
    /// numeric id); optional.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// What to achieve.
    pub text: String,
    /// Importance: a higher number is more important.
    pub priority: i64,
    /// `None`, `"active"` or `"open"` means active; anything else is finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

impl Objective {
    /// True when the objective is still being pursued.
    pub fn is_active(&self) -> bool {
        match self.status.as_deref().map(str::trim) {
            None => true,
            Some(s) => s.eq_ignore_ascii_case("active") || s.eq_ignore_ascii_case("open"),
        }
    }
}

/// Everything a recap is composed from.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RecapInput {
    /// `memory.warm.pins[]`.
    pub pins: Vec<Pin>,
    /// `memory.episodic[]`.
    pub episodic: Vec<Episode>,
    /// The last turns' narrative lines, oldest first.
    pub recent_lines: Vec<String>,
    /// `hot.objectives[]`.
    pub objectives: Vec<Objective>,
    /// What the state held that could not be used (the first [`MAX_SKIPPED_REPORTED`]).
    pub skipped: Vec<Skipped>,
    /// How many parts were skipped in all.
    pub skipped_count: usize,
}

/// A part of the state the recap could not use, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// Its JSON Pointer.
    pub pointer: String,
    /// Why it was skipped.
    pub reason: String,
}

/// At most this many skipped parts are reported in a recap (the count is always whole).
pub const MAX_SKIPPED_REPORTED: usize = 20;

/// Size limits of a recap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecapLimits {
    /// At most this many sentences.
    pub max_sentences: usize,
    /// At least this many sentences, padding when memory is thin.
    pub min_sentences: usize,
    /// Longer sentences are cut to this many words.
    pub max_words_per_sentence: usize,
}

impl Default for RecapLimits {
    fn default() -> Self {
        RecapLimits {
            max_sentences: 6,
            min_sentences: 2,
            max_words_per_sentence: 24,
        }
    }
}

impl RecapLimits {
    /// Checks that the limits admit at least one recap.
    pub fn validate(&self) -> Result<()> {
        if self.min_sentences < 1 {
            return Err(Error::invalid("recap min_sentences must be at least 1"));
        }
        if self.min_sentences > self.max_sentences {
            return Err(Error::invalid(format!(
                "recap min_sentences ({}) must not exceed max_sentences ({})",
                self.min_sentences, self.max_sentences
            )));
        }
        if self.max_words_per_sentence < 1 {
            return Err(Error::invalid(
                "recap max_words_per_sentence must be at least 1",
            ));
        }
        Ok(())
    }
}

/// A composed recap.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recap {
    /// The sentences joined with single spaces.
    pub text: String,
    /// The sentences, between `min_sentences` and `max_sentences` of them.
    pub sentences: Vec<String>,
    /// The active objectives, most important first.
    pub objectives: Vec<Objective>,
    /// How many parts of the state were skipped, and the first [`MAX_SKIPPED_REPORTED`].
    #[serde(skip_serializing_if = "is_zero")]
    pub skipped_count: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl RecapInput {
    /// Reads pins, episodic memories and objectives from a session state.
    ///
    /// A missing or `null` section is empty, and so are missing optional fields: `turn` and
    /// `priority` default to 0, `salience` to 0.0, `status` to active, `id` to none. Whatever
    /// cannot be read is skipped and listed in `skipped`: a section or item of the wrong type, an
    /// item without a `text` string, an objective whose `status` is not a string (its state is
    /// unknown); a wrongly typed optional number falls back to its default.
    pub fn from_state(state: &Value, recent_lines: Vec<String>) -> Result<RecapInput> {
        let mut notes = Notes::default();
        if !state.is_object() {
            notes.skip(
                "",
                format!("the state is {}, not an object", type_name(state)),
            );
            return Ok(RecapInput {
                recent_lines,
                skipped_count: notes.count,
                skipped: notes.kept,
                ..RecapInput::default()
            });
        }
        let mut pins = Vec::new();
        for (ptr, item) in section(state, &["memory", "warm", "pins"], &mut notes) {
            if let Some(text) = text(item, &ptr, &mut notes) {
                let turn = opt_int(item, &ptr, "turn", &mut notes).unwrap_or(0);
                pins.push(Pin { text, turn });
            }
        }
        let mut episodic = Vec::new();
        for (ptr, item) in section(state, &["memory", "episodic"], &mut notes) {
            if let Some(text) = text(item, &ptr, &mut notes) {
                let salience = opt_f64(item, &ptr, "salience", &mut notes).unwrap_or(0.0);
                let turn = opt_int(item, &ptr, "turn", &mut notes).unwrap_or(0);
                episodic.push(Episode {
                    text,
                    salience,
                    turn,
                });
            }
        }
        let mut objectives = Vec::new();
        for (ptr, item) in section(state, &["hot", "objectives"], &mut notes) {
            let Some(text) = text(item, &ptr, &mut notes) else {
                continue;
            };
            let status = match field(item, "status") {
                None => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(other) => {
                    notes.wrong_type(&push_token(&ptr, "status"), "a string", other);
                    continue;
                }
            };
            let id = match field(item, "id") {
                None => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                Some(other) => {
                    notes.wrong_type(&push_token(&ptr, "id"), "a string or a number", other);
                    None
                }
            };
            let priority = opt_int(item, &ptr, "priority", &mut notes).unwrap_or(0);
            objectives.push(Objective {
                id,
                text,
                priority,
                status,
            });
        }
        Ok(RecapInput {
            pins,
            episodic,
            recent_lines,
            objectives,
            skipped_count: notes.count,
            skipped: notes.kept,
        })
    }
}

/// Composes the recap of `input` within `limits`; see the module documentation for the rules.
///
/// Charges `budget` for sorting the memories and for every candidate it reads (its length:
/// only the first `max_words_per_sentence` words of a text are ever kept, but a text of
/// nothing but whitespace is read to its end).
pub fn compose(input: &RecapInput, limits: &RecapLimits, budget: &mut Budget) -> Result<Recap> {
    limits.validate()?;
    let n = (input.pins.len() + input.episodic.len() + input.objectives.len()) as u64;
    budget.work(n.saturating_mul(u64::from(u64::BITS - n.leading_zeros())))?;
    let mut read = |text: &str| budget.work(1 + text.len() as u64 / 64);
    if let Some(i) = input.episodic.iter().position(|e| e.salience.is_nan()) {
        return Err(Error::invalid(format!(
            "episodic memory {i} has a NaN salience"
        )));
    }
    let max_words = limits.max_words_per_sentence;
    let mut picked = Picked::default();

    let mut pins: Vec<&Pin> = input.pins.iter().collect();
    // Stable sorts keep input order among equals, which is the last tie-breaker.
    pins.sort_by_key(|p| std::cmp::Reverse(p.turn));
    let mut episodes: Vec<&Episode> = input.episodic.iter().collect();
    episodes.sort_by(|a, b| b.salience.total_cmp(&a.salience).then(b.turn.cmp(&a.turn)));
    let memories = pins
        .iter()
        .map(|p| p.text.as_str())
        .chain(episodes.iter().map(|e| e.text.as_str()));
    for text in memories {
        if picked.len() >= limits.max_sentences {
            break;
        }
        read(text)?;
        if let Some(s) = normalize_sentence(text, max_words) {
            picked.push(s);
        }
    }

    // The newest lines matter most but read best in story order: collect from the end, then
    // put them back in order. A line repeated within the window keeps its latest occurrence.
    let room = limits.max_sentences - picked.len();
    let mut recent = Vec::new();
    for line in input.recent_lines.iter().rev() {
        if recent.len() >= room {
            break;
        }
        read(line)?;
        if let Some(s) = normalize_sentence(line, max_words) {
            if picked.claim(&s) {
                recent.push(s);
            }
        }
    }
    recent.reverse();
    picked.sentences.extend(recent);

    let mut objectives: Vec<Objective> = input
        .objectives
        .iter()
        .filter(|o| o.is_active())
        .cloned()
        .collect();
    // Objectives with an id before those without, then by id.
    objectives.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then_with(|| a.id.is_none().cmp(&b.id.is_none()))
            .then_with(|| a.id.cmp(&b.id))
    });

    for objective in &objectives {
        if picked.len() >= limits.min_sentences {
            break;
        }
        read(&objective.text)?;
        // A longer text is cut below anyway, so its first words are all that can show.
        let text = first_words(&objective.text, max_words + 1);
        let text = text.trim_end_matches(is_terminal);
        if text.is_empty() {
            continue;
        }
        if let Some(s) = normalize_sentence(&format!("Current objective: {text}"), max_words) {
            picked.push(s);
        }
    }
    for filler in FILLERS {
        if picked.len() >= limits.min_sentences {
            break;
        }
        picked.push(filler.to_owned());
    }
    while picked.len() < limits.min_sentences {
        picked.sentences.push(FILLERS[FILLERS.len() - 1].to_owned());
    }

    Ok(Recap {
        text: picked.sentences.join(" "),
        sentences: picked.sentences,
        objectives,
        skipped_count: input.skipped_count,
        skipped: input.skipped.clone(),
    })
}

/// Normalizes one candidate sentence, or `None` when nothing is left of it.
///
/// Whitespace runs become one space and the ends are trimmed. Text longer than `max_words`
/// whitespace-separated words is cut there: when the cut falls right after a sentence end
/// (`.`, `!`, `?`, `…` or their full-width forms) the text stops there; otherwise trailing `,`,
/// `;`, `:` and dashes are dropped and [`TRUNCATION_MARK`] is appended, so a reader sees that
/// something was left out. Finally a sentence that does not end in terminal punctuation (looking
/// through closing quotes and brackets) gets an ASCII `.`.
pub fn normalize_sentence(text: &str, max_words: usize) -> Option<String> {
    // One word past the limit tells that the text was cut; the rest is never looked at.
    let words: Vec<&str> = text
        .split_whitespace()
        .take(max_words.saturating_add(1))
        .collect();
    if words.is_empty() {
        return None;
    }
    let mut s = words[..words.len().min(max_words)].join(" ");
    if words.len() > max_words && !ends_terminal(&s) {
        let soft = s.trim_end_matches(is_soft_punctuation).trim_end();
        if !soft.is_empty() {
            s.truncate(soft.len());
        }
        s.push(TRUNCATION_MARK);
    }
    if !ends_terminal(&s) {
        s.push('.');
    }
    Some(s)
}

/// The first `n` whitespace-separated words of `text`, joined by single spaces.
fn first_words(text: &str, n: usize) -> String {
    text.split_whitespace()
        .take(n)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Sentence ends, including the full-width forms CJK text uses.
fn is_terminal(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '…' | '。' | '！' | '？')
}

fn is_soft_punctuation(c: char) -> bool {
    matches!(c, ',' | ';' | ':' | '-' | '–' | '—')
}

fn is_closer(c: char) -> bool {
    matches!(
        c,
        '"' | '\'' | ')' | ']' | '}' | '»' | '”' | '’' | '」' | '』'
    )
}

fn ends_terminal(s: &str) -> bool {
    // French typography puts a space inside guillemets: « Partez ! »
    s.trim_end_matches(|c: char| is_closer(c) || c == ' ')
        .chars()
        .next_back()
        .is_some_and(is_terminal)
}

/// The sentences chosen so far and their case-folded forms, for duplicate detection.
#[derive(Default)]
struct Picked {
    sentences: Vec<String>,
    seen: BTreeSet<String>,
}

impl Picked {
    fn len(&self) -> usize {
        self.sentences.len()
    }

    /// Marks `s` as used; false when an earlier sentence already said it.
    fn claim(&mut self, s: &str) -> bool {
        self.seen.insert(s.to_lowercase())
    }

    fn push(&mut self, s: String) {
        if self.claim(&s) {
            self.sentences.push(s);
        }
    }
}

/// What the parser skipped, in the order it met it.
#[derive(Default)]
struct Notes {
    /// The first [`MAX_SKIPPED_REPORTED`] skipped parts.
    kept: Vec<Skipped>,
    /// Section steps already noted (two sections can share one).
    steps: BTreeSet<String>,
    /// Every skipped part, counted.
    count: usize,
}

impl Notes {
    /// Notes a wrong-typed step of a section path once, though two sections share it.
    fn wrong_step(&mut self, ptr: &str, expected: &str, got: &Value) {
        if self.steps.insert(ptr.to_owned()) {
            self.wrong_type(ptr, expected, got);
        }
    }

    fn skip(&mut self, pointer: &str, reason: String) {
        // Only the first few are ever reported; past them only the count grows, so a huge
        // malformed state costs no memory here.
        self.count += 1;
        if self.kept.len() >= MAX_SKIPPED_REPORTED {
            return;
        }
        self.kept.push(Skipped {
            pointer: pointer.to_owned(),
            reason,
        });
    }

    fn wrong_type(&mut self, ptr: &str, expected: &str, got: &Value) {
        // A number's text says why it was refused (1.5 for an integer, 1e400 for a finite number).
        let got = match got {
            Value::Number(n) => format!("{n}"),
            other => type_name(other).to_owned(),
        };
        self.skip(ptr, format!("must be {expected}, got {got}"));
    }
}

/// The object items of the array at `path` with their pointers; empty when any step is
/// missing or null, or (noted) of the wrong type; an item that is not an object is noted.
fn section<'a>(state: &'a Value, path: &[&str], notes: &mut Notes) -> Vec<(String, &'a Value)> {
    let mut ptr = String::new();
    let mut node = state;
    for (depth, key) in path.iter().enumerate() {
        ptr = push_token(&ptr, key);
        let child = match node.get(key) {
            None | Some(Value::Null) => return Vec::new(),
            Some(child) => child,
        };
        let last = depth + 1 == path.len();
        match (last, child) {
            (false, Value::Object(_)) | (true, Value::Array(_)) => node = child,
            (false, _) => {
                notes.wrong_step(&ptr, "an object", child);
                return Vec::new();
            }
            (true, _) => {
                notes.wrong_type(&ptr, "an array", child);
                return Vec::new();
            }
        }
    }
    let items = node.as_array().map(Vec::as_slice).unwrap_or_default();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let item_ptr = push_token(&ptr, &i.to_string());
        if item.is_object() {
            out.push((item_ptr, item));
        } else {
            notes.wrong_type(&item_ptr, "an object", item);
        }
    }
    out
}

fn field<'a>(item: &'a Value, key: &str) -> Option<&'a Value> {
    item.get(key).filter(|v| !v.is_null())
}

/// An item's `text`; without one (or not a string) the item is skipped.
fn text(item: &Value, ptr: &str, notes: &mut Notes) -> Option<String> {
    match field(item, "text") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            notes.wrong_type(&push_token(ptr, "text"), "a string", other);
            None
        }
        None => {
            notes.skip(&push_token(ptr, "text"), "is required".into());
            None
        }
    }
}

/// An integer field; `3.0` is accepted as 3 because it is the same number.
fn opt_int(item: &Value, ptr: &str, key: &str, notes: &mut Notes) -> Option<i64> {
    let v = field(item, key)?;
    let n = v.as_number().and_then(|n| {
        n.as_i64().or_else(|| {
            let f = n.as_f64()?;
            // 2^63 is exactly representable; anything at or above it does not fit i64.
            const TWO_63: f64 = 9_223_372_036_854_775_808.0;
            let fits = f.fract() == 0.0 && (-TWO_63..TWO_63).contains(&f);
            fits.then_some(f as i64)
        })
    });
    if n.is_none() {
        notes.wrong_type(&push_token(ptr, key), "an integer", v);
    }
    n
}

fn opt_f64(item: &Value, ptr: &str, key: &str, notes: &mut Notes) -> Option<f64> {
    let v = field(item, key)?;
    let n = v
        .as_number()
        .and_then(|n| n.as_f64())
        .filter(|f| f.is_finite());
    if n.is_none() {
        notes.wrong_type(&push_token(ptr, key), "a finite number", v);
    }
    n
}
