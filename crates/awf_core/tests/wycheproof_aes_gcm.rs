//! Wycheproof AES-GCM vectors against `codec::aead`: every test of the 256-bit key, 96-bit IV
//! groups (the only shape the codec uses).

mod common;

use awf_core::codec::aead;
use awf_core::ErrorKind;
use serde_json::Value;

fn hex_field(t: &Value, name: &str) -> Vec<u8> {
    hex::decode(t[name].as_str().unwrap_or_else(|| panic!("{name} missing"))).unwrap()
}

#[test]
fn aes_gcm_256_96() {
    let doc = common::read_json("wycheproof/aes_gcm_test.json");
    let (mut valid, mut invalid, mut acceptable) = (0, 0, 0);
    for group in doc["testGroups"].as_array().unwrap() {
        if group["keySize"] != 256 || group["ivSize"] != 96 {
            continue;
        }
        assert_eq!(group["tagSize"], 128, "the codec only uses 128-bit tags");
        for t in group["tests"].as_array().unwrap() {
            let id = &t["tcId"];
            let key: [u8; 32] = hex_field(t, "key").try_into().unwrap();
            let nonce: [u8; 12] = hex_field(t, "iv").try_into().unwrap();
            let aad = hex_field(t, "aad");
            let msg = hex_field(t, "msg");
            let mut ct_tag = hex_field(t, "ct");
            ct_tag.extend(hex_field(t, "tag"));
            let opened = aead::open(&key, &nonce, &aad, &ct_tag);
            match t["result"].as_str().unwrap() {
                "valid" => {
                    valid += 1;
                    assert_eq!(opened.as_deref(), Ok(&msg[..]), "tcId {id}: open");
                    assert_eq!(
                        aead::seal(&key, &nonce, &aad, &msg),
                        ct_tag,
                        "tcId {id}: seal"
                    );
                }
                "invalid" => {
                    invalid += 1;
                    let err = opened.expect_err(&format!("tcId {id}: invalid test accepted"));
                    assert_eq!(err.kind, ErrorKind::Integrity, "tcId {id}");
                }
                "acceptable" => {
                    // Either outcome is allowed; reaching here means it did not panic.
                    acceptable += 1;
                }
                other => panic!("tcId {id}: unknown result {other}"),
            }
        }
    }
    println!(
        "wycheproof aes-gcm 256/96: {valid} valid, {invalid} invalid, {acceptable} acceptable, {} total",
        valid + invalid + acceptable
    );
    assert_eq!(
        valid + invalid + acceptable,
        66,
        "expected the 66 cases of the 256/96 group"
    );
    assert!(valid > 0 && invalid > 0);
}
