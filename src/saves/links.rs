//! One-use, time-limited download links for save exports: `awf.save_export_link` mints one
//! for a save the caller may export (the same checks as `awf.save_export`), and
//! `awf.save_export_redeem` (the HTTP gateway's, for `GET .../save/download/<token>`) spends
//! it and builds the archive. Only the token's SHA-256 is stored; a link lasts
//! `awf.export_link_minutes` and works once. A redeem that fails (an export over its size
//! limit, say) rolls back and leaves the link unused.

use crate::audit;
use crate::errors::raise;
use crate::jsonb::JsonB;
use crate::saves::{privacy, store};
use crate::spi::col;
use awf_core::{token, Error};
use pgrx::prelude::*;
use pgrx::Uuid;
use serde_json::json;

/// The formats a link may name; `zip` is the `jsonl` archive, zipped by the caller.
const FORMATS: [&str; 3] = ["jsonl", "json", "zip"];

/// Most links of one save that are neither used nor expired; past it 54000.
const MAX_LIVE_PER_SAVE: i64 = 10;

/// Mints a download link for `save_id`: `{token, expires_at, format}`. The token is shown only
/// here. 22023 for an unknown format, P0002 for a save the caller cannot see, 42501 for
/// `include_audit` without admin rights.
#[pg_extern(volatile, parallel_unsafe)]
fn save_export_link(
    save_id: Uuid,
    format: default!(&str, "'jsonl'"),
    include_audit: default!(bool, false),
) -> JsonB {
    const F: &str = "save_export_link";
    if !FORMATS.contains(&format) {
        raise(
            Error::invalid(format!(
                "unknown export format {format:?}: use 'jsonl', 'json' or 'zip'"
            )),
            F,
        );
    }
    crate::locks::connect_mut(|c| {
        let s = store::save(c, save_id, false);
        if include_audit && !privacy::may_read_audit(c) {
            raise(
                Error::not_allowed("include_audit needs admin rights (awf_admin, or an admin key)"),
                F,
            );
        }
        let tok = token::new_token();
        let hash = token::token_hash(&tok).expect("a new token is well formed");
        let actor = crate::identity::actor();
        let expires = crate::audit::as_owner(c, |c| {
            // Forget up to 64 spent or expired links (kept an hour, for operators to see),
            // skipping rows another call is deleting; then count the save's live ones.
            crate::spi::run(
                c,
                "DELETE FROM awf.export_links WHERE ctid = ANY (ARRAY(
                   SELECT ctid FROM awf.export_links
                   WHERE coalesce(used_at, expires_at) < now() - interval '1 hour'
                   LIMIT 64 FOR UPDATE SKIP LOCKED))",
                None,
                &[],
            )
            .expect("forget old links");
            let live = crate::spi::run(
                c,
                "SELECT count(*) FROM awf.export_links
                     WHERE save_id = $1 AND used_at IS NULL AND expires_at > now()",
                Some(1),
                &[save_id.into()],
            )
            .expect("count live links");
            if col::<i64>(&live.first(), 1) >= MAX_LIVE_PER_SAVE {
                raise(
                    Error::limit(format!(
                        "save {save_id} has {MAX_LIVE_PER_SAVE} unused download links already; use one or let them expire"
                    )),
                    F,
                );
            }
            let t = crate::spi::run(c,

                    "INSERT INTO awf.export_links (token_hash, save_id, format, include_audit, created_by, expires_at)
                     VALUES ($1, $2, $3, $4, $5, now() + make_interval(mins => $6))
                     RETURNING to_jsonb(expires_at)",
                    Some(1),
                    &[
                        hash.into(),
                        save_id.into(),
                        format.into(),
                        include_audit.into(),
                        actor.into(),
                        crate::gucs::export_link_minutes().into(),
                    ],
                )
                .expect("insert into awf.export_links");
            col::<JsonB>(&t.first(), 1).0
        });
        audit::record(
            c,
            "save_export_link",
            s.session_id,
            json!({"save_id": save_id.to_string(), "format": format,
                   "include_audit": include_audit, "expires_at": expires}),
        );
        JsonB(json!({"token": tok, "expires_at": expires, "format": format}))
    })
}

/// Spends a download link and builds its archive: one row `(save_id, format, archive)`, the
/// archive as `awf.save_export` makes it (`jsonl` text for `zip`). An unknown, used or
/// expired token is 28000, all with one message. Granted to the HTTP gateway only.
#[pg_extern(volatile, parallel_unsafe)]
fn save_export_redeem(
    token: &str,
) -> TableIterator<
    'static,
    (
        name!(save_id, Uuid),
        name!(format, String),
        name!(archive, String),
    ),
> {
    const F: &str = "save_export_redeem";
    let refused = || -> ! {
        raise(
            Error::not_authenticated("this download link is unknown, used or expired"),
            F,
        )
    };
    let Ok(hash) = token::token_hash(token) else {
        refused()
    };
    let row = crate::locks::connect_mut(|c| {
        let link = crate::audit::as_owner(c, |c| {
            let t = crate::spi::run(
                c,
                "UPDATE awf.export_links SET used_at = now()
                     WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()
                     RETURNING save_id, format, include_audit, created_by",
                Some(1),
                &[hash.into()],
            )
            .expect("update awf.export_links");
            (!t.is_empty()).then(|| {
                let r = t.first();
                (
                    col::<Uuid>(&r, 1),
                    col::<String>(&r, 2),
                    col::<bool>(&r, 3),
                    col::<String>(&r, 4),
                )
            })
        });
        let Some((save_id, format, include_audit, created_by)) = link else {
            refused()
        };
        // The link's creator was checked when it was minted; the archive is built as the
        // owner, since the bearer of the link acts for nobody.
        let archive = crate::audit::as_owner(c, |c| {
            let s = store::save(c, save_id, false);
            let archive = privacy::export_text(c, &s, format == "json", include_audit, F);
            // The export's own row names the gateway; this one names who minted the link.
            audit::record(
                c,
                "save_export_redeem",
                s.session_id,
                json!({"save_id": save_id.to_string(), "format": format,
                       "include_audit": include_audit, "link_created_by": created_by}),
            );
            archive
        });
        (save_id, format, archive)
    });
    TableIterator::new(std::iter::once(row))
}
