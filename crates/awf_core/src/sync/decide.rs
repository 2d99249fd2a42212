use super::branch::integrity_score;
use super::request::ClientTurn;
use crate::conflict::{self, Branch, Resolution, Strategy};
use crate::error::{Error, Result};
use crate::save::Planned;
use serde_json::{json, Value};

/// Which side a resolved conflict keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Winner {
    /// The save's head stays; the device's branch is archived.
    Server,
    /// The device's branch becomes the head; the server's tail is archived.
    Client,
    /// Both merged from the ancestor into a new turn on the server's branch; the device's
    /// branch is archived.
    Merge,
}

impl Winner {
    /// As conflict records and audit rows spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Winner::Server => "server",
            Winner::Client => "client",
            Winner::Merge => "merge",
        }
    }
}

/// A conflict between the save's head and the device's branch, both grown from a common
/// ancestor, and how it is resolved.
#[derive(Debug, Clone)]
pub struct Decision {
    pub ancestor_turn: i64,
    pub ancestor_chain: String,
    pub strategy: Strategy,
    pub server: Branch,
    pub client: Branch,
    pub resolution: Resolution,
    pub winner: Winner,
}

/// The save's head, as a conflict sees it.
#[derive(Debug, Clone, Copy)]
pub struct Head<'a> {
    pub turn_id: i64,
    pub chain_hash: &'a str,
}

/// Builds the two branches from the ancestor (`plans` are the device's turns after it, not
/// empty) and resolves them by `strategy`.
pub fn decide(
    head: Head<'_>,
    ancestor_turn: i64,
    ancestor_chain: &str,
    turns: &[ClientTurn],
    plans: &[Planned],
    device: Option<&str>,
    strategy: Strategy,
) -> Result<Decision> {
    let tip = plans
        .last()
        .ok_or_else(|| Error::invalid("a conflict needs at least one uploaded turn"))?;
    let short = |h: &str| h.get(..16).unwrap_or(h).to_owned();
    let server = Branch {
        branch_id: format!("server-{}", short(head.chain_hash)),
        turn_id: head.turn_id,
        chain_hash: head.chain_hash.to_owned(),
        device_id: None,
        integrity_score: 1.0,
        length: head.turn_id.saturating_sub(ancestor_turn),
        server: true,
    };
    let length = i64::try_from(plans.len()).unwrap_or(i64::MAX);
    let client = Branch {
        branch_id: format!("client-{}", short(&tip.chain_hash)),
        turn_id: ancestor_turn.saturating_add(length),
        chain_hash: tip.chain_hash.clone(),
        device_id: device.map(str::to_owned),
        integrity_score: integrity_score(turns, plans),
        length,
        server: false,
    };
    let resolution = conflict::resolve(&[server.clone(), client.clone()], strategy)?;
    let winner = if resolution.chosen_branch == server.branch_id {
        Winner::Server
    } else if resolution.chosen_branch == client.branch_id {
        Winner::Client
    } else {
        Winner::Merge
    };
    Ok(Decision {
        ancestor_turn,
        ancestor_chain: ancestor_chain.to_owned(),
        strategy,
        server,
        client,
        resolution,
        winner,
    })
}

impl Decision {
    /// The branch that is archived.
    pub fn archived(&self) -> &Branch {
        match self.winner {
            Winner::Client => &self.server,
            Winner::Server | Winner::Merge => &self.client,
        }
    }

    /// The conflict report a device receives and the conflict record keeps; `merge_conflicts`
    /// is the merge's report (for [`Winner::Merge`]).
    pub fn report(&self, save_id: &str, archive_id: i64, merge_conflicts: Option<Value>) -> Value {
        let mut report = json!({
            "save_id": save_id,
            "ancestor": {"turn_id": self.ancestor_turn, "chain_hash": self.ancestor_chain},
            "branches": [self.server, self.client],
            "resolution": {
                "strategy": self.strategy.as_str(),
                "chosen_branch": self.resolution.chosen_branch,
                "archived_branch": self.archived().branch_id,
                "archive_id": archive_id,
                "reason": self.resolution.reason,
            },
        });
        if self.winner == Winner::Merge {
            report["merge_conflicts"] = merge_conflicts.unwrap_or(Value::Null);
        }
        report
    }
}
