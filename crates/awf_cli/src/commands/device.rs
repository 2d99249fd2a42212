//! `awf device ...`: a device from the shell, through `awf_client` (the HTTP API, not SQL).

use crate::cli::{DeviceCmd, SealArgs};
use crate::errors::CliError;
use crate::output::Out;
use awf_client::{Backoff, Device, Error, Registration};
use awf_core::client_seal::SealKey;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

pub fn run(out: Out, cmd: DeviceCmd) -> Result<(), CliError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Usage(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(run_async(out, cmd))
}

async fn run_async(out: Out, cmd: DeviceCmd) -> Result<(), CliError> {
    match cmd {
        DeviceCmd::Register {
            at,
            admin_key_file,
            device_id,
            user,
            session,
            save_id,
            seal,
        } => {
            let seal_key = seal_key(&seal)?;
            let admin_key = match admin_key_file {
                Some(f) => std::fs::read_to_string(&f)
                    .map_err(|e| CliError::Usage(format!("cannot read {f}: {e}")))?
                    .trim()
                    .to_owned(),
                None => std::env::var("AWF_ADMIN_KEY").map_err(|_| {
                    CliError::Usage("give --admin-key-file FILE or set AWF_ADMIN_KEY".into())
                })?,
            };
            let d = Device::register(
                Path::new(&at.store),
                &at.server,
                &admin_key,
                &Registration {
                    device_id: &device_id,
                    user: &user,
                    session: &session,
                    save_id: &save_id,
                    seal_key: seal_key.as_ref(),
                },
                Backoff::default(),
            )
            .await
            .map_err(client_error)?;
            let c = d.confirmed().map_err(client_error)?;
            out.object(
                &json!({"device_id": device_id, "save_id": save_id, "turn_id": c.turn_id, "chain_hash": c.chain_hash}),
                |_| format!("device {device_id} registered on save {save_id} at turn {}", c.turn_id),
            );
        }
        DeviceCmd::Record {
            store,
            seal,
            patch,
            state_file,
        } => {
            // Recording needs no server; the URL is never used.
            let mut d = Device::open(Path::new(&store), "http://127.0.0.1:1", Backoff::default())
                .map_err(client_error)?;
            d.set_seal_key(seal_key(&seal)?).map_err(client_error)?;
            let next = match (patch, state_file) {
                (Some(p), None) => {
                    let ops = awf_core::json::parse_str(&p).map_err(|e| {
                        CliError::Usage(format!("--patch is not JSON: {}", e.message))
                    })?;
                    let cur = d.state().map_err(client_error)?;
                    awf_core::patch::apply(&cur, &ops, &mut awf_core::Budget::default()).map_err(
                        |e| CliError::Usage(format!("the patch does not apply: {}", e.message)),
                    )?
                }
                (None, Some(f)) => super::read_json(&f)?,
                _ => return Err(CliError::Usage("give --patch or --state-file".into())),
            };
            let turn = d.record_turn(next).map_err(client_error)?;
            out.object(&json!({"turn_id": turn}), |_| {
                format!("turn {turn} recorded")
            });
        }
        DeviceCmd::Sync {
            at,
            every,
            rounds,
            strategy,
            seal,
        } => {
            let mut d = Device::open(Path::new(&at.store), &at.server, Backoff::default())
                .map_err(client_error)?;
            d.set_seal_key(seal_key(&seal)?).map_err(client_error)?;
            d.strategy = strategy;
            let rounds = match every {
                Some(_) => rounds.unwrap_or(u32::MAX).max(1),
                None => 1,
            };
            for i in 0..rounds {
                if i > 0 {
                    tokio::time::sleep(Duration::from_secs(every.unwrap_or(0))).await;
                }
                match d.sync().await {
                    Ok(r) => out.object(&report_json(&r), |v| {
                        let mut s = format!(
                            "synced: head turn {}, {} pulled, {} pushed",
                            v["head_turn"], v["pulled"], v["pushed"]
                        );
                        if !v["conflict"].is_null() {
                            s.push_str(
                                "\nconflict resolved by the server (see --json for the report)",
                            );
                        }
                        s
                    }),
                    // Offline rounds of an auto-sync keep the queue and try again.
                    Err(Error::Offline(m)) if i + 1 < rounds => eprintln!("awf: offline: {m}"),
                    Err(e) => return Err(client_error(e)),
                }
            }
        }
        DeviceCmd::Status { store } => {
            let d = Device::open(Path::new(&store), "http://127.0.0.1:1", Backoff::default())
                .map_err(client_error)?;
            let c = d.confirmed().map_err(client_error)?;
            let q = d.queued().map_err(client_error)?;
            let v = json!({"save_id": d.save_id(), "sealed": d.sealed(), "confirmed_turn": c.turn_id,
                           "confirmed_chain": c.chain_hash, "queued": q.len(),
                           "state": d.state().map_err(client_error)?});
            out.object(&v, |v| {
                format!(
                    "save {}: confirmed turn {} ({}), {} queued",
                    v["save_id"].as_str().unwrap_or(""),
                    v["confirmed_turn"],
                    v["confirmed_chain"].as_str().unwrap_or(""),
                    v["queued"]
                )
            });
        }
        DeviceCmd::SealKey { output } => {
            write_new_secret(&output, &SealKey::generate_hex())?;
            out.object(&json!({"seal_key_file": output}), |_| {
                format!("seal key written to {output}: give it to every device of the save, and keep a copy (without it the save cannot be read)")
            });
        }
    }
    Ok(())
}

/// The seal key from `--seal-key-file` or AWF_CLIENT_SEAL_KEY, if either is given.
fn seal_key(a: &SealArgs) -> Result<Option<SealKey>, CliError> {
    let (text, from) = match &a.seal_key_file {
        Some(f) => (
            std::fs::read_to_string(f)
                .map_err(|e| CliError::Usage(format!("cannot read {f}: {e}")))?,
            f.as_str(),
        ),
        None => match std::env::var("AWF_CLIENT_SEAL_KEY") {
            Ok(k) => (k, "AWF_CLIENT_SEAL_KEY"),
            Err(_) => return Ok(None),
        },
    };
    SealKey::from_hex(&text)
        .map(Some)
        .map_err(|e| CliError::Usage(format!("{from}: {}", e.message)))
}

/// Creates `path` readable by this user only and writes `text` to it; never overwrites.
fn write_new_secret(path: &str, text: &str) -> Result<(), CliError> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o
        .open(path)
        .map_err(|e| CliError::Usage(format!("cannot create {path}: {e}")))?;
    f.write_all(format!("{text}\n").as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| CliError::Usage(format!("cannot write {path}: {e}")))
}

fn report_json(r: &awf_client::SyncReport) -> Value {
    json!({"pulled": r.pulled, "pushed": r.pushed, "already_there": r.already_there,
           "conflict": r.conflict, "head_turn": r.head_turn, "head_chain": r.head_chain})
}

/// A client failure as a CLI failure: refusals keep their SQLSTATE (and exit code), an
/// answer that does not verify is an integrity failure (4), offline is "cannot connect" (3).
fn client_error(e: Error) -> CliError {
    match e {
        Error::Refused {
            code,
            message,
            status,
        } => CliError::Sql {
            code,
            message: format!("{message} (HTTP {status})"),
        },
        Error::Untrusted(m) => {
            CliError::Failed(format!("the server's answer does not verify: {m}"))
        }
        Error::Offline(m) => CliError::Connect(format!("offline: {m}")),
        Error::Store(m) => CliError::Usage(format!("local store: {m}")),
        Error::NotReady(m) => CliError::Usage(m),
        Error::Sealed(m) => CliError::Usage(format!(
            "{m}\nhint: give the save's seal key with --seal-key-file FILE or AWF_CLIENT_SEAL_KEY"
        )),
    }
}
