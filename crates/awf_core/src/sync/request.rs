use crate::budget::Budget;
use crate::conflict::Strategy;
use crate::error::{Error, Result};
use crate::{json, merge, patch};
use serde_json::Value;

/// What one uploaded turn holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// The state, computed on the device's branch (a JSON save).
    State(Value),
    /// The bytes the device sealed (a client-sealed save): stored, hashed and chained as they
    /// are, never read.
    Sealed(Vec<u8>),
}

/// One uploaded turn.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientTurn {
    pub turn_id: i64,
    pub content: Content,
    /// The chain hash the device computed, when it sent one (lowercased).
    pub claimed_chain: Option<String>,
}

impl ClientTurn {
    /// The turn's state, for a JSON save.
    pub fn state(&self) -> Option<&Value> {
        match &self.content {
            Content::State(v) => Some(v),
            Content::Sealed(_) => None,
        }
    }
}

/// A parsed sync request: `{save_id, base_turn, base_chain, turns: [...], strategy?,
/// merge_rule?}`.
#[derive(Debug, Clone)]
pub struct Request {
    /// As sent; the caller parses it as a UUID.
    pub save_id: String,
    pub base_turn: i64,
    /// Lowercase hex.
    pub base_chain: String,
    /// The turns as sent, read by [`Request::client_turns`].
    pub turns: Vec<Value>,
    pub strategy: Strategy,
    pub merge_rule: merge::MergeRule,
}

/// Checks a request's shape. Errors are `Error::invalid`.
pub fn parse(request: &Value) -> Result<Request> {
    let obj = request
        .as_object()
        .ok_or_else(|| Error::invalid("a sync request must be a JSON object"))?;
    let text = |k: &str| obj.get(k).and_then(Value::as_str);
    let save_id = text("save_id")
        .ok_or_else(|| Error::invalid("request.save_id must be a UUID"))?
        .to_owned();
    let base_turn = obj
        .get("base_turn")
        .and_then(Value::as_i64)
        .ok_or_else(|| Error::invalid("request.base_turn must be an integer"))?;
    let base_chain = text("base_chain")
        .filter(|c| c.len() == 64 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| Error::invalid("request.base_chain must be a 64-hex chain hash"))?
        .to_ascii_lowercase();
    let turns = obj
        .get("turns")
        .and_then(Value::as_array)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::invalid("request.turns must be a non-empty array"))?
        .clone();
    let strategy = match text("strategy") {
        Some(s) => s.parse()?,
        None => Strategy::LongestChain,
    };
    let merge_rule = match text("merge_rule") {
        Some(r) => r.parse()?,
        None => merge::MergeRule::Ours,
    };
    Ok(Request {
        save_id,
        base_turn,
        base_chain,
        turns,
        strategy,
        merge_rule,
    })
}

impl Request {
    /// Reads the device's turns, at most `max_turns` of them. For a JSON save (`ancestor` is
    /// the ancestor's state) each turn carries a full `state` or a `patch` (RFC 6902) from the
    /// previous one, and the states are computed turn by turn; for a client-sealed save
    /// (`ancestor` is None) each carries `sealed_hex`, the bytes the device sealed. Every state
    /// is kept until the branch is planned, so each one is charged as built: a thousand empty
    /// patches on a large state would otherwise hold a thousand free copies of it.
    pub fn client_turns(
        &self,
        ancestor: Option<&Value>,
        max_turns: usize,
        budget: &mut Budget,
    ) -> Result<Vec<ClientTurn>> {
        // Each turn costs a blob and a row: past a few thousand, one request outlasts any sane
        // statement timeout while holding the save's lock.
        if self.turns.len() > max_turns {
            return Err(Error::limit(format!(
                "the request carries {} turns, over awf.sync_max_upload_turns = {max_turns}; upload them in parts",
                self.turns.len(),
            )));
        }
        let mut out: Vec<ClientTurn> = Vec::with_capacity(self.turns.len());
        for (i, t) in self.turns.iter().enumerate() {
            let turn_id = t.get("turn_id").and_then(Value::as_i64).ok_or_else(|| {
                Error::invalid(format!("request.turns[{i}].turn_id must be an integer"))
            })?;
            // i128: a base_turn near i64::MAX cannot overflow.
            let expected = i128::from(self.base_turn) + 1 + i as i128;
            if i128::from(turn_id) != expected {
                return Err(Error::invalid(format!(
                    "request.turns[{i}] is turn {turn_id}, expected {expected} (turns follow base_turn {} in order)",
                    self.base_turn
                )));
            }
            let at = |e: Error| {
                Error::new(
                    e.kind,
                    format!("request.turns[{i}] (turn {turn_id}): {}", e.message),
                )
            };
            let content = match ancestor {
                None => Content::Sealed(sealed_bytes(t, budget).map_err(at)?),
                Some(ancestor) => {
                    let prev = out.last().and_then(ClientTurn::state).unwrap_or(ancestor);
                    Content::State(replay(t, prev, budget).map_err(at)?)
                }
            };
            out.push(ClientTurn {
                turn_id,
                content,
                claimed_chain: t
                    .get("chain_hash")
                    .and_then(Value::as_str)
                    .map(str::to_ascii_lowercase),
            });
        }
        Ok(out)
    }
}

/// A JSON turn's state: its full `state`, or its `patch` applied to `prev`.
fn replay(t: &Value, prev: &Value, budget: &mut Budget) -> Result<Value> {
    if t.get("sealed_hex").is_some() {
        return Err(Error::invalid(
            "this save is not client-sealed: send \"state\" or \"patch\", not \"sealed_hex\"",
        ));
    }
    match (t.get("state"), t.get("patch")) {
        (Some(s), None) if s.is_object() => {
            json::check_state_depth(s)?;
            budget.build_copy_of(s)?;
            Ok(s.clone())
        }
        (None, Some(p)) => {
            budget.build_copy_of(prev)?;
            let state = patch::apply(prev, p, budget)?;
            if !state.is_object() {
                return Err(Error::invalid("the patch must leave the state an object"));
            }
            json::check_state_depth(&state)?;
            Ok(state)
        }
        _ => Err(Error::invalid(
            "needs exactly one of \"state\" (an object) or \"patch\"",
        )),
    }
}

/// The bytes of a sealed turn (`sealed_hex`, and nothing that the server would have to read).
fn sealed_bytes(t: &Value, budget: &mut Budget) -> Result<Vec<u8>> {
    if t.get("state").is_some() || t.get("patch").is_some() {
        return Err(Error::invalid(
            "this save is client-sealed: send \"sealed_hex\" (the bytes the device sealed), not \"state\" or \"patch\"",
        ));
    }
    let hex = t
        .get("sealed_hex")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid("\"sealed_hex\" must be a hex string"))?;
    budget.build(1, hex.len() as u64 / 2)?;
    let bytes = hex::decode(hex)
        .map_err(|_| Error::invalid("\"sealed_hex\" must be hex digits, two per byte"))?;
    if bytes.is_empty() {
        return Err(Error::invalid("\"sealed_hex\" must not be empty"));
    }
    Ok(bytes)
}
