//! This backend's copies of the saves' head states it last wrote or read, so a client that
//! sends states straight to a save (`awf.save_persist_turn`, sync up) does not rebuild the
//! head from blobs for every turn.
//!
//! A copy is keyed by the save and its head's chain hash, which commits to the head state's
//! content hash: a copy is used only while the locked save row still names that chain hash, so
//! a rolled-back turn, another backend's turn or a restore can never hand out a stale state.
//! Bounded: at most [`ENTRIES`] saves, the least recently used dropped first.

use pgrx::Uuid;
use serde_json::Value;
use std::cell::RefCell;

/// How many saves' heads one backend keeps (a backend usually serves one session at a time).
const ENTRIES: usize = 4;

struct Entry {
    save_id: Uuid,
    head_chain: String,
    state: Value,
}

thread_local! {
    static HEADS: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

/// Takes the head state of `save_id` out of this backend's copies if it is kept for exactly
/// `head_chain` (taken, not cloned: the caller moves the head on and puts the new one back).
pub fn take(save_id: Uuid, head_chain: &str) -> Option<Value> {
    HEADS.with_borrow_mut(|heads| {
        let i = heads
            .iter()
            .position(|e| e.save_id == save_id && e.head_chain == head_chain)?;
        Some(heads.remove(i).state)
    })
}

/// Keeps `state` as the head of `save_id` at `head_chain` (the chain hash computed from it).
pub fn put(save_id: Uuid, head_chain: &str, state: Value) {
    HEADS.with_borrow_mut(|heads| {
        heads.retain(|e| e.save_id != save_id);
        if heads.len() >= ENTRIES {
            heads.remove(0);
        }
        heads.push(Entry {
            save_id,
            head_chain: head_chain.to_owned(),
            state,
        });
    });
}
