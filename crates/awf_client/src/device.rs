//! A device playing one cloud save: turns are recorded locally (durably, online or not) and
//! `sync` reconciles them with the server: it pulls the server's new turns and verifies every
//! link from the device's own last chain hash before applying any, recognizes its own turns
//! that already reached the server (a lost answer), pushes the rest, and reports a conflict the
//! server resolved instead of forking silently.

use crate::backoff::Backoff;
use crate::error::{Error, Result};
use crate::store::{Confirmed, Identity, Queued, Store};
use crate::transport::{As, Transport};
use awf_core::client_seal::{self, SealKey};
use awf_core::{canonical, chain, patch, Budget, ErrorKind};
use serde_json::{json, Value};
use std::path::Path;

const DEVICES: &str = "/api/awf-cloud-sync/devices";
const TOKEN: &str = "/api/awf-cloud-sync/devices/token";
const DOWN: &str = "/api/awf-cloud-sync/sync/down";
const UP: &str = "/api/awf-cloud-sync/sync/up";

/// What one sync-down answer gave.
enum Pull {
    /// The verified turns after the device's turn (or the whole save from its base).
    Turns(Vec<Pulled>),
    /// The server's history no longer continues the device's, and why.
    Diverged(String),
}

/// What one `sync` did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncReport {
    /// Other devices' turns applied.
    pub pulled: usize,
    /// This device's turns the server confirmed.
    pub pushed: usize,
    /// Turns of this device found already on the server (sent before, answer lost).
    pub already_there: usize,
    /// The server's conflict report when another device had moved the save: both branches,
    /// the strategy's choice and the archive holding the losing branch. The device now holds
    /// the server's result; its own turns, when they lost, are in that archive.
    pub conflict: Option<Value>,
    /// The server's history no longer continues this device's (another device's branch won a
    /// conflict over turns this device had confirmed, the save was restored behind it, or
    /// retention removed its turn): the device now holds the server's history, verified from
    /// the save's oldest kept base under the save's signature.
    pub history_replaced: bool,
    /// The turns this device had queued on the old history: they cannot be uploaded any more
    /// and are kept in the store's orphaned turns (`Device::orphaned`) for the game to replay
    /// or drop. Never silently lost.
    pub orphaned: Vec<Queued>,
    /// The confirmed head after the sync.
    pub head_turn: i64,
    pub head_chain: String,
}

/// Who registers: the device's id, its user, the session it plays and that session's save;
/// for a client-sealed save, the seal key the user's devices share.
#[derive(Debug, Clone, Copy)]
pub struct Registration<'a> {
    pub device_id: &'a str,
    pub user: &'a str,
    pub session: &'a str,
    pub save_id: &'a str,
    pub seal_key: Option<&'a SealKey>,
}

/// One device on one save.
pub struct Device {
    store: Store,
    net: Transport,
    id: Identity,
    /// The key this device seals and opens a client-sealed save's states with (never sent).
    seal: Option<SealKey>,
    /// The conflict strategy sent with uploads (the server's default when `None`).
    pub strategy: Option<String>,
    /// `sync` first rotates the token when it expires within this long.
    pub refresh_before: std::time::Duration,
}

/// Default of [`Device::refresh_before`]: tokens live 30 days unless the server says otherwise.
pub const REFRESH_BEFORE: std::time::Duration = std::time::Duration::from_secs(3 * 24 * 3600);

/// A turn pulled from the server and verified.
struct Pulled {
    turn_id: i64,
    chain_hash: String,
    state: Value,
}

impl Device {
    /// Registers this device through the backend's admin key, for `user` playing `session`
    /// whose save is `save_id`, and pulls the save's current state; the store at `path` keeps
    /// everything from then on.
    pub async fn register(
        path: &Path,
        base_url: &str,
        admin_key: &str,
        who: &Registration<'_>,
        backoff: Backoff,
    ) -> Result<Device> {
        let Registration {
            device_id,
            user,
            session,
            save_id,
            seal_key,
        } = *who;
        // The store first: registering again issues a new token, which would strand the
        // device already in this store.
        let store = Store::open(path)?;
        if let Some(old) = store.identity()? {
            return Err(Error::NotReady(format!(
                "{} already holds device {} (of save {}): use another store",
                path.display(),
                old.device_id,
                old.save_id
            )));
        }
        let net = Transport::new(base_url, backoff);
        let reg = net
            .call(
                reqwest::Method::POST,
                DEVICES,
                As::Admin(admin_key),
                Some(&json!({"device_id": device_id, "user_id_hash": user, "session_id": session})),
            )
            .await?;
        let key = &reg["signing_key"];
        if key.is_object() && key["save_id"] != save_id {
            return Err(Error::Untrusted(format!(
                "registration returned the key of save {}, not {save_id}",
                key["save_id"]
            )));
        }
        let save_id = save_id.to_ascii_lowercase();
        let save_id = save_id.as_str();
        let id = Identity {
            device_id: device_id.to_owned(),
            token: str_of(&reg, "sync_token")?,
            token_expires_at: reg["expires_at"].as_str().unwrap_or("").to_owned(),
            token_expires_unix: expires_unix(&reg),
            save_id: save_id.to_owned(),
            signing_key: key["key"].as_str().map(str::to_owned),
            sealed: false,
        };
        check_key(&id)?;
        let mut device = Device {
            store,
            net,
            id,
            seal: seal_key.cloned(),
            strategy: None,
            refresh_before: REFRESH_BEFORE,
        };
        // The whole save from its newest base; the answer says whether the save is sealed,
        // which every later answer must then agree with.
        let v = device.fetch(None).await?;
        device.id.sealed = v["sealed"] == json!(true);
        // A device given a seal key means to seal: a save the server says is not sealed would
        // take its states in the clear, so it is refused rather than joined.
        if seal_key.is_some() && !device.id.sealed {
            return Err(Error::Sealed(format!(
                "a seal key was given, but save {save_id} is not client-sealed: its states would be uploaded readable; register without the key, or use a sealed save"
            )));
        }
        let pulled = match device.parse_pull(&v, None, true)? {
            Pull::Turns(t) => t,
            Pull::Diverged(why) => return Err(Error::Untrusted(why)),
        };
        device.store.set_identity(&device.id)?;
        let head = pulled
            .last()
            .ok_or_else(|| Error::NotReady("the save holds no turn yet".into()))?;
        device.store.confirm(
            &Confirmed {
                turn_id: head.turn_id,
                chain_hash: head.chain_hash.clone(),
                state: head.state.clone(),
            },
            None,
            true,
        )?;
        Ok(device)
    }

    /// Reopens a registered device from its store (after a restart, or a crash).
    pub fn open(path: &Path, base_url: &str, backoff: Backoff) -> Result<Device> {
        let store = Store::open(path)?;
        let id = store.identity()?.ok_or_else(|| {
            Error::NotReady(format!("{} holds no registered device", path.display()))
        })?;
        check_key(&id)?;
        Ok(Device {
            store,
            net: Transport::new(base_url, backoff),
            id,
            seal: None,
            strategy: None,
            refresh_before: REFRESH_BEFORE,
        })
    }

    /// Gives the device the seal key of its client-sealed save (it is never stored: the game
    /// passes it at every start, from wherever it keeps secrets). A key for a save that is not
    /// sealed is refused: the game meant to seal, and this save would take states in the clear.
    pub fn set_seal_key(&mut self, key: Option<SealKey>) -> Result<()> {
        if key.is_some() && !self.id.sealed {
            return Err(Error::Sealed(format!(
                "save {} is not client-sealed: a seal key would not be used, and its states go up readable",
                self.id.save_id
            )));
        }
        self.seal = key;
        Ok(())
    }

    /// The save this device plays.
    pub fn save_id(&self) -> &str {
        &self.id.save_id
    }

    /// Whether the save is client-sealed.
    pub fn sealed(&self) -> bool {
        self.id.sealed
    }

    /// The seal key, which a sealed save needs for `what`.
    fn seal_key(&self, what: &str) -> Result<&SealKey> {
        self.seal.as_ref().ok_or_else(|| {
            Error::Sealed(format!(
                "save {} is client-sealed: this device needs the seal key its user's devices share to {what}",
                self.id.save_id
            ))
        })
    }

    /// The device's current state: its newest queued turn's, or the confirmed one.
    pub fn state(&self) -> Result<Value> {
        if let Some(q) = self.store.queue()?.pop() {
            return Ok(q.state);
        }
        Ok(self.confirmed()?.state)
    }

    /// The newest turn the server confirmed.
    pub fn confirmed(&self) -> Result<Confirmed> {
        self.store
            .confirmed()?
            .ok_or_else(|| Error::NotReady("the device has not synced yet".into()))
    }

    /// The turns recorded and not yet confirmed.
    pub fn queued(&self) -> Result<Vec<Queued>> {
        self.store.queue()
    }

    /// Records the next turn's state locally (durable when this returns; no network).
    pub fn record_turn(&mut self, state: Value) -> Result<i64> {
        if !state.is_object() {
            return Err(Error::NotReady(
                "a turn's state must be a JSON object (the server refuses anything else)".into(),
            ));
        }
        let (prev_turn, prev_chain) = match self.store.queue()?.pop() {
            Some(q) => (q.turn_id, q.chain_hash),
            None => {
                let c = self.confirmed()?;
                (c.turn_id, c.chain_hash)
            }
        };
        let turn_id = prev_turn + 1;
        let not_hashed = |e: awf_core::Error| {
            Error::NotReady(format!("the state cannot be hashed: {}", e.message))
        };
        // A sealed turn is sealed once, here: its hashes cover these bytes, so a retried
        // upload must send the same ones.
        let (content_hash, sealed) = if self.id.sealed {
            let key = self.seal_key("record turns")?;
            let at = client_seal::Place {
                save_id: &self.id.save_id,
                turn_id,
                prev_chain: &prev_chain,
            };
            let bytes = client_seal::seal(key, at, &state).map_err(not_hashed)?;
            (canonical::sha256_hex(&bytes), Some(bytes))
        } else {
            (canonical::content_hash(&state).map_err(not_hashed)?, None)
        };
        let chain_hash = chain::link(&prev_chain, turn_id, &content_hash);
        self.store.enqueue(&Queued {
            turn_id,
            state,
            content_hash,
            chain_hash,
            sealed,
        })?;
        Ok(turn_id)
    }

    /// Replaces the device's sync token (the old one stops working).
    pub async fn rotate_token(&mut self) -> Result<()> {
        let v = self
            .net
            .call(reqwest::Method::POST, TOKEN, self.auth_unsigned(), None)
            .await?;
        self.id.token = str_of(&v, "sync_token")?;
        self.id.token_expires_at = v["expires_at"].as_str().unwrap_or("").to_owned();
        self.id.token_expires_unix = expires_unix(&v);
        self.store.set_identity(&self.id)
    }

    /// The device's identity as stored (its token included).
    pub fn identity(&self) -> &Identity {
        &self.id
    }

    /// Syncs now and then every `every`, `rounds` times in all; a round that finds the server
    /// offline keeps the queue and waits for the next. Returns the last round's report.
    pub async fn auto_sync(
        &mut self,
        every: std::time::Duration,
        rounds: u32,
    ) -> Result<SyncReport> {
        let mut last = Err(Error::NotReady("no round ran".into()));
        for i in 0..rounds {
            if i > 0 {
                tokio::time::sleep(every).await;
            }
            last = self.sync().await;
            match &last {
                Err(Error::Offline(_)) => continue,
                Err(_) => return last,
                Ok(_) => {}
            }
        }
        last
    }

    /// Reconciles with the server; see the module documentation.
    pub async fn sync(&mut self) -> Result<SyncReport> {
        let refresh_at = self.id.token_expires_unix - self.refresh_before.as_secs() as i64;
        let now = crate::transport::unix_now();
        if now >= refresh_at {
            // A failed rotation does not block the sync while the old token still works.
            if let Err(e) = self.rotate_token().await {
                if now >= self.id.token_expires_unix {
                    return Err(e);
                }
            }
        }
        let mut report = SyncReport::default();
        let start = self.confirmed()?;
        let (pulled, replaced) = self.pull(Some(&start)).await?;
        if replaced {
            return self.adopt(pulled, report);
        }
        let queue = self.store.queue()?;
        // Our own turns the server already holds: the same chain hashes, in order.
        let ours = pulled
            .iter()
            .zip(&queue)
            .take_while(|(p, q)| p.turn_id == q.turn_id && p.chain_hash == q.chain_hash)
            .count();
        report.already_there = ours;
        let mut base = start;
        if ours > 0 {
            let p = &pulled[ours - 1];
            base = Confirmed {
                turn_id: p.turn_id,
                chain_hash: p.chain_hash.clone(),
                state: p.state.clone(),
            };
            self.store
                .confirm(&base, Some(queue[ours - 1].turn_id), false)?;
        }
        let others = &pulled[ours..];
        let mine = &queue[ours..];
        if mine.is_empty() {
            if let Some(p) = others.last() {
                base = Confirmed {
                    turn_id: p.turn_id,
                    chain_hash: p.chain_hash.clone(),
                    state: p.state.clone(),
                };
                self.store.confirm(&base, None, false)?;
                report.pulled = others.len();
            }
            report.head_turn = base.turn_id;
            report.head_chain = base.chain_hash;
            return Ok(report);
        }
        // Push on the base this device built on, in uploads that fit the server's limits: when
        // others moved the save meanwhile, the server sees the stale base and resolves the
        // conflict by strategy.
        let mut rest = mine;
        loop {
            let n = upload_len(rest);
            let (chunk, after) = rest.split_at(n);
            match self
                .push(&mut report, &mut base, chunk, !after.is_empty())
                .await?
            {
                Pushed::Continue => rest = after,
                Pushed::Done => return Ok(report),
            }
        }
    }

    /// Uploads `mine` on `base`: `Continue` when it fast-forwarded (and `base` is now its last
    /// turn), `Done` when the sync is over (everything pushed, or a conflict was resolved).
    async fn push(
        &mut self,
        report: &mut SyncReport,
        base: &mut Confirmed,
        mine: &[Queued],
        more: bool,
    ) -> Result<Pushed> {
        let turns = mine
            .iter()
            .map(|q| match (&q.sealed, self.id.sealed) {
                (Some(b), true) => Ok(json!({"turn_id": q.turn_id, "sealed_hex": hex::encode(b),
                                             "chain_hash": q.chain_hash})),
                (None, false) => Ok(json!({"turn_id": q.turn_id, "state": q.state,
                                           "chain_hash": q.chain_hash})),
                // Never a readable state on a sealed save (nor sealed bytes on another).
                _ => Err(Error::Store(format!(
                    "queued turn {} does not match the save's sealing",
                    q.turn_id
                ))),
            })
            .collect::<Result<Vec<Value>>>()?;
        let mut body = json!({"save_id": self.id.save_id, "base_turn": base.turn_id,
                              "base_chain": base.chain_hash, "turns": turns});
        if let Some(s) = &self.strategy {
            body["strategy"] = json!(s);
        }
        let up = self
            .net
            .call(reqwest::Method::POST, UP, self.auth(), Some(&body))
            .await?;
        let last = mine.last().expect("mine is not empty");
        if up["status"] == "fast_forward" {
            if up["head_chain"] != json!(last.chain_hash) {
                return Err(Error::Untrusted(format!(
                    "the server's head {} after our upload is not our turn {}",
                    up["head_chain"], last.chain_hash
                )));
            }
            let head = Confirmed {
                turn_id: last.turn_id,
                chain_hash: last.chain_hash.clone(),
                state: last.state.clone(),
            };
            self.store.confirm(&head, Some(last.turn_id), false)?;
            report.pushed += mine.len();
            report.head_turn = head.turn_id;
            report.head_chain = head.chain_hash.clone();
            *base = head;
            return Ok(if more { Pushed::Continue } else { Pushed::Done });
        }
        // Otherwise the server's head is not simply ours: a conflict (the server chose a branch
        // and archived the other), or `up_to_date` (it held all of these turns already: an
        // earlier try's answer was lost). Take its result from the base we pushed on,
        // verifying every link again.
        if up["status"] == "conflict" {
            report.conflict = Some(up["conflict"].clone());
        } else if up["status"] != "up_to_date" {
            return Err(Error::Untrusted(format!(
                "unknown sync_up status {}",
                up["status"]
            )));
        }
        let (resolved, replaced) = self.pull(Some(base)).await?;
        if replaced {
            *report = self.adopt(resolved, std::mem::take(report))?;
            return Ok(Pushed::Done);
        }
        let head = match resolved.last() {
            Some(p) => Confirmed {
                turn_id: p.turn_id,
                chain_hash: p.chain_hash.clone(),
                state: p.state.clone(),
            },
            None => base.clone(),
        };
        // Our turns are on the server when its chain holds our last one (its branch won, or it
        // had them already); otherwise they lost and are in the archive the report names.
        let won = resolved
            .iter()
            .any(|p| p.turn_id == last.turn_id && p.chain_hash == last.chain_hash);
        if up["status"] == "up_to_date" && !won {
            return Err(Error::Untrusted(
                "the server says it holds our turns, but its chain does not".into(),
            ));
        }
        if won {
            report.pushed += mine.len();
        }
        report.pulled = resolved.len() - if won { mine.len() } else { 0 };
        report.head_turn = head.turn_id;
        report.head_chain = head.chain_hash.clone();
        if !won && more {
            // The turns queued after the losing upload were built on it: orphaned, not lost.
            report.orphaned = self
                .store
                .orphan_queue(&head, crate::transport::unix_now())?;
        } else {
            // The rest, if any, continues on our winning turns at the next sync.
            self.store.confirm(&head, Some(last.turn_id), false)?;
        }
        Ok(Pushed::Done)
    }

    /// The server's turns after `from` (the whole save from its oldest base for `None`),
    /// each verified: a diff applies to the state before it, the result hashes to the turn's
    /// content hash, and the chain links from `from`'s chain hash. Nothing is returned (or
    /// applied) unless every turn verifies.
    /// Takes the server's (re-pulled) history as the device's: confirms its head and moves the
    /// queue, built on the old history, to the orphaned turns.
    fn adopt(&mut self, pulled: Vec<Pulled>, mut report: SyncReport) -> Result<SyncReport> {
        let head = pulled
            .last()
            .ok_or_else(|| Error::NotReady("the save holds no turn".into()))?;
        let head = Confirmed {
            turn_id: head.turn_id,
            chain_hash: head.chain_hash.clone(),
            state: head.state.clone(),
        };
        report.orphaned = self
            .store
            .orphan_queue(&head, crate::transport::unix_now())?;
        report.history_replaced = true;
        report.head_turn = head.turn_id;
        report.head_chain = head.chain_hash;
        Ok(report)
    }

    /// The turns that were queued on a history the server replaced, oldest first.
    pub fn orphaned(&self) -> Result<Vec<(i64, Value)>> {
        self.store.orphaned()
    }

    /// Forgets the orphaned turns.
    pub fn clear_orphaned(&mut self) -> Result<()> {
        self.store.clear_orphaned()
    }

    /// [`Device::pull_from`], and when the server's history no longer continues the device's
    /// (it is behind the device, its chain does not extend the device's turn, or it answers
    /// with a base past the device's turn): the whole save again from its oldest kept base,
    /// with `true`. Only a signed deployment may replace a device's history: unsigned, that
    /// answer is refused as untrusted.
    async fn pull(&self, from: Option<&Confirmed>) -> Result<(Vec<Pulled>, bool)> {
        match self.pull_from(from).await? {
            Pull::Turns(t) => Ok((t, false)),
            Pull::Diverged(why) if self.key().is_none() => Err(Error::Untrusted(format!(
                "the server's history has moved away from this device's: {why}; an unsigned answer cannot replace it"
            ))),
            Pull::Diverged(_) => match self.pull_from(None).await? {
                Pull::Turns(t) => Ok((t, true)),
                Pull::Diverged(why) => Err(Error::Untrusted(why)),
            },
        }
    }

    async fn pull_from(&self, from: Option<&Confirmed>) -> Result<Pull> {
        let v = self.fetch(from).await?;
        // (A server that predates sealed saves sends no flag: not sealed.)
        if v["sealed"].as_bool().unwrap_or(false) != self.id.sealed {
            return Err(Error::Untrusted(format!(
                "the answer says the save's sealed flag is {}, but it was {} at registration",
                v["sealed"], self.id.sealed
            )));
        }
        self.parse_pull(&v, from, false)
    }

    /// One sync-down answer: the turns after `from` (from the newest base for `None`).
    async fn fetch(&self, from: Option<&Confirmed>) -> Result<Value> {
        let path = match from {
            Some(c) => format!(
                "{DOWN}?save_id={}&since_turn={}",
                self.id.save_id, c.turn_id
            ),
            None => format!("{DOWN}?save_id={}", self.id.save_id),
        };
        self.net
            .call(reqwest::Method::GET, &path, self.auth(), None)
            .await
    }

    /// `registering`: the device holds nothing yet, so an empty sealed save is a start (later,
    /// an answer with nothing in it would be the server replacing the device's history with
    /// a state of its own making, and is refused).
    fn parse_pull(&self, v: &Value, from: Option<&Confirmed>, registering: bool) -> Result<Pull> {
        let since = from.map_or(i64::MIN, |c| c.turn_id);
        if v["save_id"] != json!(self.id.save_id) {
            return Err(Error::Untrusted(format!(
                "an answer for save {}",
                v["save_id"]
            )));
        }
        if v["ahead"] == json!(true) {
            return Ok(Pull::Diverged(format!(
                "the server's save is at turn {}, behind this device's {since}",
                v["head_turn"]
            )));
        }
        let (state, prev) = match (&v["base"], from) {
            (Value::Object(_), Some(_)) => {
                return Ok(Pull::Diverged(format!(
                    "the server no longer holds this device's turn {since}"
                )));
            }
            (Value::Object(_), None) => {
                let b = &v["base"];
                let turn_id = b["turn_id"]
                    .as_i64()
                    .ok_or_else(|| Error::Untrusted("a base without a turn id".into()))?;
                let st = if self.id.sealed {
                    // Nothing before it to check its previous chain hash against.
                    self.open_sealed(b, turn_id, "")?
                } else {
                    let st = b["state"].clone();
                    check_hash(&st, &b["content_hash"], turn_id)?;
                    st
                };
                let chain = str_of(b, "chain_hash")?;
                let mut out = vec![Pulled {
                    turn_id,
                    chain_hash: chain.clone(),
                    state: st.clone(),
                }];
                out.extend(self.verify_turns(v, st, chain)?);
                return Ok(Pull::Turns(out));
            }
            (_, Some(c)) => {
                if v["prev_chain"] != json!(c.chain_hash) {
                    return Ok(Pull::Diverged(format!(
                        "the server's chain does not continue this device's turn {since}: prev_chain {} is not {}",
                        v["prev_chain"], c.chain_hash
                    )));
                }
                (c.state.clone(), c.chain_hash.clone())
            }
            (_, None) if registering && self.id.sealed && v["turns"] == json!([]) => {
                // A sealed save that holds no turn yet: its first device starts at the
                // origin, with an empty state, and uploads the first turn itself.
                let turn_id = v["head_turn"]
                    .as_i64()
                    .ok_or_else(|| Error::Untrusted("an answer without a head turn".into()))?;
                return Ok(Pull::Turns(vec![Pulled {
                    turn_id,
                    chain_hash: str_of(v, "head_chain")?,
                    state: json!({}),
                }]));
            }
            (_, None) => {
                return Err(Error::NotReady(
                    "the save holds no base to start from".into(),
                ))
            }
        };
        Ok(Pull::Turns(self.verify_turns(v, state, prev)?))
    }

    /// Opens the sealed state of `t` (a turn or base of a sealed save): its content hash must
    /// be the SHA-256 of its bytes, and the bytes must open under the device's seal key as
    /// this turn of this save, after `prev_chain` (unchecked when empty).
    fn open_sealed(&self, t: &Value, turn_id: i64, prev_chain: &str) -> Result<Value> {
        let bytes = t["sealed_hex"]
            .as_str()
            .and_then(|h| hex::decode(h).ok())
            .ok_or_else(|| {
                Error::Untrusted(format!(
                    "turn {turn_id} of a sealed save carries no sealed bytes"
                ))
            })?;
        let hash = canonical::sha256_hex(&bytes);
        if t["content_hash"] != json!(hash) {
            return Err(Error::Untrusted(format!(
                "turn {turn_id}'s sealed bytes hash to {hash}, not the claimed {}",
                t["content_hash"]
            )));
        }
        let key = self.seal_key("open its turns")?;
        let at = client_seal::Place {
            save_id: &self.id.save_id,
            turn_id,
            prev_chain,
        };
        client_seal::open(key, at, &bytes, MAX_SEALED_STATE).map_err(|e| match e.kind {
            ErrorKind::NotFound => Error::Sealed(e.message),
            _ => Error::Untrusted(e.message),
        })
    }

    fn verify_turns(&self, v: &Value, mut state: Value, mut prev: String) -> Result<Vec<Pulled>> {
        let mut out = Vec::new();
        for t in v["turns"].as_array().into_iter().flatten() {
            let turn_id = t["turn_id"]
                .as_i64()
                .ok_or_else(|| Error::Untrusted("a turn without an id".into()))?;
            let kind = t["kind"].as_str();
            // On a sealed save every turn is one a device sealed: the server cannot author a
            // state there, and a turn it did not seal is refused, never applied.
            if self.id.sealed != (kind == Some("sealed")) {
                return Err(Error::Untrusted(format!(
                    "turn {turn_id} has kind {kind:?} on a save that is{} client-sealed",
                    if self.id.sealed { "" } else { " not" }
                )));
            }
            // A sealed turn's content hash is that of its bytes (checked as it opens).
            let content_hash = if self.id.sealed {
                state = self.open_sealed(t, turn_id, &prev)?;
                t["content_hash"].as_str().unwrap_or("").to_owned()
            } else {
                state = match kind {
                    Some("diff") => patch::apply(&state, &t["patch"], &mut Budget::default())
                        .map_err(|e| {
                            Error::Untrusted(format!(
                                "turn {turn_id}'s patch does not apply: {}",
                                e.message
                            ))
                        })?,
                    Some("base") => t["state"].clone(),
                    other => {
                        return Err(Error::Untrusted(format!(
                            "turn {turn_id} has kind {other:?}"
                        )))
                    }
                };
                check_hash(&state, &t["content_hash"], turn_id)?
            };
            let link = chain::link(&prev, turn_id, &content_hash);
            if t["chain_hash"] != json!(link) {
                return Err(Error::Untrusted(format!(
                    "turn {turn_id}'s chain hash {} is not the link {link} from the turn before",
                    t["chain_hash"]
                )));
            }
            prev = link;
            out.push(Pulled {
                turn_id,
                chain_hash: prev.clone(),
                state: state.clone(),
            });
        }
        Ok(out)
    }

    fn key(&self) -> Option<Vec<u8>> {
        // Checked when the identity is made or loaded (`check_key`), so a bad key never
        // quietly turns signing off.
        self.id
            .signing_key
            .as_deref()
            .map(|k| awf_core::signing::key_from_hex(k).expect("checked at load"))
    }

    fn auth(&self) -> As<'_> {
        As::Device {
            id: &self.id.device_id,
            token: &self.id.token,
            key: self.key(),
        }
    }

    fn auth_unsigned(&self) -> As<'_> {
        As::Device {
            id: &self.id.device_id,
            token: &self.id.token,
            key: None,
        }
    }
}

/// The content hash of `state`, which must be `want` (the turn's claimed hash).
fn check_hash(state: &Value, want: &Value, turn_id: i64) -> Result<String> {
    let h = canonical::content_hash(state).map_err(|e| {
        Error::Untrusted(format!(
            "turn {turn_id}'s state cannot be hashed: {}",
            e.message
        ))
    })?;
    if *want != json!(h) {
        return Err(Error::Untrusted(format!(
            "turn {turn_id}'s state hashes to {h}, not the claimed {want}"
        )));
    }
    Ok(h)
}

/// How a [`Device::push`] left the sync.
enum Pushed {
    Continue,
    Done,
}

/// Most turns, and most bytes of states, one upload carries: well inside the server's
/// defaults (5,000 turns, 4 MiB bodies), so a long offline queue goes up in parts.
const UPLOAD_TURNS: usize = 256;
const UPLOAD_BYTES: usize = 1 << 20;

/// Largest state a sealed turn may open to (a device's own key sealed it, so this bounds only
/// a key holder's mistake).
const MAX_SEALED_STATE: u64 = 256 << 20;

/// How many of `queue`'s first turns fit one upload (at least one).
fn upload_len(queue: &[Queued]) -> usize {
    let mut bytes = 0;
    for (i, q) in queue.iter().enumerate().take(UPLOAD_TURNS) {
        bytes += match &q.sealed {
            Some(b) => 2 * b.len(),
            None => q.state.to_string().len(),
        };
        if bytes > UPLOAD_BYTES && i > 0 {
            return i;
        }
    }
    queue.len().min(UPLOAD_TURNS)
}

/// A signing key must be 32 bytes of hex.
fn check_key(id: &Identity) -> Result<()> {
    match id
        .signing_key
        .as_deref()
        .map(awf_core::signing::key_from_hex)
    {
        None => Ok(()),
        Some(Ok(k)) if k.len() == 32 => Ok(()),
        _ => Err(Error::Store(
            "the signing key is not 64 hex characters".into(),
        )),
    }
}

/// When a token the server just issued expires, on this device's clock.
fn expires_unix(v: &Value) -> i64 {
    crate::transport::unix_now() + v["expires_in_seconds"].as_i64().unwrap_or(0)
}

fn str_of(v: &Value, key: &str) -> Result<String> {
    v[key]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| Error::Untrusted(format!("the answer has no {key}: {v}")))
}
