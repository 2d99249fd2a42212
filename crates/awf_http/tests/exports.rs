//! Save exports over a real socket: the zip format (read back by Python's zipfile, which
//! checks every CRC), and one-use, time-limited download links.

mod common;

use awf_tests::{off_runtime, TempFile, TestDb};
use common::*;
use serde_json::{json, Value};
use std::process::Command;

/// The body of a zip read back by Python's zipfile: `[(name, text)]`, after `testzip()`.
fn unzip(bytes: &[u8]) -> Vec<(String, String)> {
    let file = TempFile::with_contents("");
    std::fs::write(file.path(), bytes).unwrap();
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, zipfile\n\
             z = zipfile.ZipFile(sys.argv[1])\n\
             assert z.testzip() is None, 'a bad CRC'\n\
             print(json.dumps([[i.filename, z.read(i).decode()] for i in z.infolist()]))",
            file.path(),
        ])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<(String, String)>>(&out.stdout).unwrap()
}

/// A raw answer: status, headers, bytes.
async fn raw(
    api: &Api,
    req: reqwest::RequestBuilder,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let res = req.send().await.unwrap();
    let _ = api;
    (
        res.status().as_u16(),
        res.headers().clone(),
        res.bytes().await.unwrap().to_vec(),
    )
}

/// The records of a JSON Lines export, each parsed.
fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn zip_exports_and_one_use_download_links() {
    let db = TestDb::new();
    let (api, _server) = serve(&db).await;
    let (session, save) = session_with_save(&db, "user-exp");
    let token = register(&api, "exp-phone", "user-exp", &session).await;
    let phone = Auth::Device("exp-phone", &token);
    let export = "/api/awf-cloud-sync/save/export";

    let jsonl = api.post(export, phone, json!({"save_id": save})).await;
    let jsonl_records = lines(&jsonl.text);
    assert!(jsonl_records.len() >= 5, "{}", jsonl.text);

    // zip: one entry, the JSON Lines archive.
    let req = api
        .http
        .post(format!("{}{export}", api.base))
        .header("x-device-id", "exp-phone")
        .bearer_auth(&token)
        .json(&json!({"save_id": save, "format": "zip"}));
    let (status, headers, bytes) = raw(&api, req).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/zip");
    assert_eq!(
        headers["content-disposition"],
        format!("attachment; filename=\"save-{save}.zip\"").as_str()
    );
    let entries = unzip(&bytes);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].0, format!("save-{save}.jsonl"));
    let zipped = lines(&entries[0].1);
    assert_eq!(zipped.len(), jsonl_records.len());
    // The same records; only the export time (in the header and manifest) differs.
    let n = zipped.len();
    assert_eq!(zipped[1..n - 1], jsonl_records[1..n - 1]);
    assert_eq!(
        zipped[0]["record"]["save"],
        jsonl_records[0]["record"]["save"]
    );
    println!(
        "zip export: {} bytes for {} bytes of JSON Lines ({} records)",
        bytes.len(),
        entries[0].1.len(),
        zipped.len()
    );

    // A link, spent once, without credentials.
    let link = api
        .post(
            export,
            phone,
            json!({"save_id": save, "format": "zip", "link": true}),
        )
        .await;
    let link = expect(&link, 201).clone();
    let url = link["url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with("/api/awf-cloud-sync/save/download/"),
        "{link}"
    );
    assert_eq!(link["format"], "zip");
    assert!(link["expires_at"].is_string());
    // A HEAD (a link preview) does not spend it.
    let (status, _, _) = raw(&api, api.http.head(format!("{}{url}", api.base))).await;
    assert_eq!(status, 405);
    let (status, headers, bytes) = raw(&api, api.http.get(format!("{}{url}", api.base))).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/zip");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(lines(&unzip(&bytes)[0].1).len(), jsonl_records.len());
    let again = api.get(&url, Auth::None).await;
    assert_eq!(again.status, 401, "a link works once: {}", again.text);
    assert_eq!(again.body["error"]["code"], "28000");

    // An expired link is refused the same way, and stays unused.
    let link = api
        .post(export, phone, json!({"save_id": save, "link": true}))
        .await;
    let url = expect(&link, 201)["url"].as_str().unwrap().to_owned();
    off_runtime(|| {
        db.client()
            .execute(
                "UPDATE awf.export_links SET expires_at = now() - interval '1 second' WHERE save_id = $1::text::uuid AND used_at IS NULL",
                &[&save],
            )
            .unwrap();
    });
    expect(&api.get(&url, Auth::None).await, 401);
    // A fresh JSON Lines link serves the same records as the direct export.
    let link = api
        .post(export, phone, json!({"save_id": save, "link": true}))
        .await;
    let url = expect(&link, 201)["url"].as_str().unwrap().to_owned();
    let got = api.get(&url, Auth::None).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.content_type, "application/x-ndjson");
    assert_eq!(lines(&got.text).len(), jsonl_records.len());
    let used: i64 = off_runtime(|| {
        db.client()
            .query_one(
                "SELECT count(*) FILTER (WHERE used_at IS NOT NULL) FROM awf.export_links WHERE save_id = $1::text::uuid",
                &[&save],
            )
            .unwrap()
            .get(0)
    });
    assert_eq!(used, 2, "the zip link and the last one");
    // Each spent link is audited with who minted it.
    let minted_by: Vec<String> = off_runtime(|| {
        db.client()
            .query(
                "SELECT details->>'link_created_by' FROM awf.audit_log
                 WHERE action = 'save_export_redeem' AND details->>'save_id' = $1",
                &[&save],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    });
    assert_eq!(minted_by, ["device:exp-phone", "device:exp-phone"]);

    // Refusals: no credential, another user's device, audit rows without an admin key, a bad
    // format, malformed and unknown tokens.
    expect(
        &api.post(export, Auth::None, json!({"save_id": save, "link": true}))
            .await,
        401,
    );
    let (other_session, _) = session_with_save(&db, "user-exp2");
    let other = register(&api, "exp-other", "user-exp2", &other_session).await;
    expect(
        &api.post(
            export,
            Auth::Device("exp-other", &other),
            json!({"save_id": save, "link": true}),
        )
        .await,
        404,
    );
    expect(
        &api.post(
            export,
            phone,
            json!({"save_id": save, "link": true, "include_audit": true}),
        )
        .await,
        403,
    );
    let a = api
        .post(
            export,
            Auth::Admin,
            json!({"save_id": save, "link": true, "include_audit": true}),
        )
        .await;
    expect(&a, 201);
    for format in ["xml", ""] {
        expect(
            &api.post(
                export,
                phone,
                json!({"save_id": save, "format": format, "link": true}),
            )
            .await,
            422,
        );
        expect(
            &api.post(export, phone, json!({"save_id": save, "format": format}))
                .await,
            422,
        );
    }
    for bad in ["nope", &"g".repeat(64), &"0".repeat(64)] {
        let a = api
            .get(
                &format!("/api/awf-cloud-sync/save/download/{bad}"),
                Auth::None,
            )
            .await;
        assert_eq!(a.status, 401, "{bad}: {}", a.text);
    }

    // At most 10 unused links per save (the admin key's one is live; spent and expired ones do not count).
    for _ in 0..9 {
        let a = api
            .post(export, phone, json!({"save_id": save, "link": true}))
            .await;
        expect(&a, 201);
    }
    let a = api
        .post(export, phone, json!({"save_id": save, "link": true}))
        .await;
    assert_eq!(a.status, 413, "{}", a.text);
    assert_eq!(a.body["error"]["code"], "54000");
}
