//! The conflict resolver: given the branches that grew from a common ancestor, pick the one
//! that stays and the ones to archive. Pure and deterministic: the same branches and strategy
//! always give the same resolution, whichever database or device asks.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How a conflict is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The server's branch stays.
    ServerWins,
    /// The client's branch stays.
    ClientWins,
    /// The branch with more turns since the ancestor stays; ties go to the higher integrity
    /// score, then to the server (the default for devices).
    LongestChain,
    /// Both branches' changes are merged from the ancestor (awf_core's three-way merge); the
    /// merge becomes a new turn on the server branch and the client branch is archived.
    ThreeWayMerge,
}

impl Strategy {
    /// Every strategy, in the order error messages list them.
    pub const ALL: [Strategy; 4] = [
        Strategy::ServerWins,
        Strategy::ClientWins,
        Strategy::LongestChain,
        Strategy::ThreeWayMerge,
    ];

    /// The strategy's name as requests spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::ServerWins => "server_wins",
            Strategy::ClientWins => "client_wins",
            Strategy::LongestChain => "longest_chain",
            Strategy::ThreeWayMerge => "three_way_merge",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Strategy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Strategy::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown conflict strategy {s:?}: expected one of server_wins, client_wins, longest_chain, three_way_merge"
                ))
            })
    }
}

/// One branch of a conflict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Branch {
    /// A stable name for the branch (e.g. `server-<chain prefix>`).
    pub branch_id: String,
    /// The turn at the branch's tip.
    pub turn_id: i64,
    /// The chain hash at the branch's tip.
    pub chain_hash: String,
    /// The device that produced it (none for the server's branch).
    #[serde(default)]
    pub device_id: Option<String>,
    /// How much of the branch checked out, from 0 to 1 (share of verified turns).
    #[serde(default = "one")]
    pub integrity_score: f64,
    /// Turns since the common ancestor.
    #[serde(default)]
    pub length: i64,
    /// Whether this is the server's branch (at most one).
    #[serde(default)]
    pub server: bool,
}

fn one() -> f64 {
    1.0
}

/// The outcome: which branch stays, which are archived, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resolution {
    /// The branch that stays (`merge` for a three-way merge).
    pub chosen_branch: String,
    /// The branches archived whole (never destroyed).
    pub archived_branches: Vec<String>,
    /// Why, for people.
    pub reason: String,
}

/// Resolves a conflict between two or more branches.
///
/// Exactly one branch may be the server's; `server_wins` needs one, `client_wins` needs a
/// client branch (the first one given wins among several). Integrity scores must be within
/// [0, 1]. Errors are `Error::invalid`.
pub fn resolve(branches: &[Branch], strategy: Strategy) -> Result<Resolution> {
    if branches.len() < 2 {
        return Err(Error::invalid(format!(
            "a conflict needs at least two branches, got {}",
            branches.len()
        )));
    }
    if branches.iter().filter(|b| b.server).count() > 1 {
        return Err(Error::invalid("at most one branch can be the server's"));
    }
    for b in branches {
        if !(0.0..=1.0).contains(&b.integrity_score) {
            return Err(Error::invalid(format!(
                "branch {} has integrity_score {}, outside [0, 1]",
                b.branch_id, b.integrity_score
            )));
        }
    }
    let server = branches.iter().position(|b| b.server);
    let (winner, reason) = match strategy {
        Strategy::ServerWins => {
            let i = server.ok_or_else(|| Error::invalid("server_wins needs a server branch"))?;
            (i, "server_wins: the server's branch is kept".to_owned())
        }
        Strategy::ClientWins => {
            let i = branches
                .iter()
                .position(|b| !b.server)
                .ok_or_else(|| Error::invalid("client_wins needs a client branch"))?;
            (i, "client_wins: the client's branch is kept".to_owned())
        }
        Strategy::LongestChain => {
            // Max by length, then integrity, then the server, then the earliest given.
            let mut best = 0;
            for (i, b) in branches.iter().enumerate().skip(1) {
                let cur = &branches[best];
                let better = (b.length, b.integrity_score, b.server).partial_cmp(&(
                    cur.length,
                    cur.integrity_score,
                    cur.server,
                )) == Some(std::cmp::Ordering::Greater);
                if better {
                    best = i;
                }
            }
            let b = &branches[best];
            let tied = branches.iter().filter(|o| o.length == b.length).count() > 1;
            let why = if tied {
                format!(
                    "longest_chain: branches tie at {} turns; {} wins on integrity score, then server priority",
                    b.length, b.branch_id
                )
            } else {
                format!(
                    "longest_chain: {} is longest with {} turns",
                    b.branch_id, b.length
                )
            };
            (best, why)
        }
        Strategy::ThreeWayMerge => {
            let archived = branches
                .iter()
                .filter(|b| !b.server)
                .map(|b| b.branch_id.clone())
                .collect();
            return Ok(Resolution {
                chosen_branch: "merge".to_owned(),
                archived_branches: archived,
                reason: "three_way_merge: both branches merged from the common ancestor; the client branch is archived as sent".to_owned(),
            });
        }
    };
    Ok(Resolution {
        chosen_branch: branches[winner].branch_id.clone(),
        archived_branches: branches
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != winner)
            .map(|(_, b)| b.branch_id.clone())
            .collect(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(id: &str, len: i64, score: f64, server: bool) -> Branch {
        Branch {
            branch_id: id.into(),
            turn_id: 10 + len,
            chain_hash: "0".repeat(64),
            device_id: (!server).then(|| "dev".into()),
            integrity_score: score,
            length: len,
            server,
        }
    }

    #[test]
    fn strategies_pick_the_documented_branch() {
        let br = [b("s", 3, 1.0, true), b("c", 5, 1.0, false)];
        assert_eq!(
            resolve(&br, Strategy::ServerWins).unwrap().chosen_branch,
            "s"
        );
        assert_eq!(
            resolve(&br, Strategy::ClientWins).unwrap().chosen_branch,
            "c"
        );
        let r = resolve(&br, Strategy::LongestChain).unwrap();
        assert_eq!(
            (r.chosen_branch.as_str(), r.archived_branches.clone()),
            ("c", vec!["s".to_owned()])
        );
        let r = resolve(&br, Strategy::ThreeWayMerge).unwrap();
        assert_eq!(r.chosen_branch, "merge");
        assert_eq!(r.archived_branches, vec!["c".to_owned()]);
    }

    #[test]
    fn longest_chain_ties_go_to_integrity_then_server() {
        let r = resolve(
            &[b("s", 4, 1.0, true), b("c", 4, 1.0, false)],
            Strategy::LongestChain,
        )
        .unwrap();
        assert_eq!(r.chosen_branch, "s");
        let r = resolve(
            &[b("s", 4, 0.5, true), b("c", 4, 1.0, false)],
            Strategy::LongestChain,
        )
        .unwrap();
        assert_eq!(r.chosen_branch, "c");
        // Deterministic whatever the order given.
        let r = resolve(
            &[b("c", 4, 1.0, false), b("s", 4, 1.0, true)],
            Strategy::LongestChain,
        )
        .unwrap();
        assert_eq!(r.chosen_branch, "s");
    }

    #[test]
    fn bad_input_is_refused() {
        assert!(resolve(&[b("s", 1, 1.0, true)], Strategy::ServerWins).is_err());
        assert!(resolve(
            &[b("a", 1, 1.0, false), b("b", 1, 1.0, false)],
            Strategy::ServerWins
        )
        .is_err());
        assert!(resolve(
            &[b("a", 1, 1.0, true), b("b", 1, 1.0, true)],
            Strategy::LongestChain
        )
        .is_err());
        assert!(resolve(
            &[b("a", 1, 1.5, true), b("b", 1, 1.0, false)],
            Strategy::LongestChain
        )
        .is_err());
        assert!("coin".parse::<Strategy>().is_err());
        assert_eq!(
            "Longest_Chain".parse::<Strategy>().unwrap(),
            Strategy::LongestChain
        );
    }
}
