use super::request::{ClientTurn, Content};
use crate::budget::Budget;
use crate::error::{Error, ErrorKind, Result};
use crate::save::{self, Planned};
use serde_json::Value;

/// Where a save puts its bases: every `snapshot_every` turns after `origin_turn`.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub origin_turn: i64,
    pub snapshot_every: i64,
}

/// Plans the device's branch from the ancestor (its state, None for a sealed save, and its
/// chain hash): each turn's base or diff, content and chain hash. These plans are what the
/// save writes; nothing plans the turns again.
pub fn plan(
    layout: Layout,
    ancestor: Option<&Value>,
    ancestor_chain: &str,
    turns: &[ClientTurn],
    budget: &mut Budget,
) -> Result<Vec<Planned>> {
    let mut prev_state = ancestor;
    let mut prev_chain = ancestor_chain;
    let mut plans: Vec<Planned> = Vec::with_capacity(turns.len());
    for t in turns {
        let p = match &t.content {
            Content::State(state) => {
                let base = save::base_every(t.turn_id, layout.origin_turn, layout.snapshot_every);
                let p = save::plan(prev_state, prev_chain, t.turn_id, state, base, budget)?;
                prev_state = Some(state);
                p
            }
            Content::Sealed(bytes) => save::plan_sealed(prev_chain, t.turn_id, bytes),
        };
        plans.push(p);
        prev_chain = &plans.last().expect("just pushed").chain_hash;
    }
    Ok(plans)
}

/// On a fast-forward, every chain hash the device claims must be the server's (40001 "chain
/// mismatch on upload" names the first that is not).
pub fn check_claims(turns: &[ClientTurn], plans: &[Planned]) -> Result<()> {
    match turns
        .iter()
        .zip(plans)
        .find(|(t, p)| t.claimed_chain.as_ref().is_some_and(|c| c != &p.chain_hash))
    {
        None => Ok(()),
        Some((t, p)) => Err(Error::new(
            ErrorKind::Conflict,
            format!(
                "chain mismatch on upload at turn {}: the device computed {}, the server {}",
                t.turn_id,
                t.claimed_chain.as_deref().unwrap_or(""),
                p.chain_hash
            ),
        )),
    }
}

/// Share of the device's claimed chain hashes that match what the server computes (1 when
/// it claimed none).
pub fn integrity_score(turns: &[ClientTurn], plans: &[Planned]) -> f64 {
    let (mut claimed, mut matched) = (0usize, 0usize);
    for (t, p) in turns.iter().zip(plans) {
        if let Some(c) = &t.claimed_chain {
            claimed += 1;
            matched += usize::from(c == &p.chain_hash);
        }
    }
    if claimed == 0 {
        1.0
    } else {
        matched as f64 / claimed as f64
    }
}

/// How many of the device's planned turns the save already holds, in order from the base:
/// `server_chains[k]` is the chain hash of the save's turn `base + 1 + k` (as many as the save
/// has, up to the number of plans). Those turns are shared history; the common ancestor is
/// the last of them.
pub fn shared_prefix(server_chains: &[String], plans: &[Planned]) -> usize {
    server_chains
        .iter()
        .zip(plans)
        .take_while(|(server, p)| **server == p.chain_hash)
        .count()
}
