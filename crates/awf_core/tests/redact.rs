//! Redaction: planted secrets are all found and none survive; ordinary game text is untouched;
//! every sample of a public corpus of credential formats is redacted.

use awf_core::redact::{replacement, Finding, Kind, RedactOptions, Redacted};
use awf_core::Budget;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

fn opts(salt: &str) -> RedactOptions {
    RedactOptions::new(salt)
}

/// Redacts within the default budget, which no test document here comes near.
fn redact(doc: &Value, opts: &RedactOptions) -> Redacted {
    awf_core::redact::redact(doc, opts, &mut Budget::default()).unwrap()
}

fn at<'a>(doc: &'a Value, pointer: &str) -> &'a str {
    doc.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer}"))
}

// ---------------------------------------------------------------------------------------------
// Planted secrets

const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
const OPENAI: &str = "sk-proj-4fJk2LmN9pQrStUvWxYz0123AbCdEfGh";
const ANTHROPIC: &str = "sk-ant-api03-AbCdEf0123456789GhIjKlMnOpQrSt";
const STRIPE: &str = "sk_live_51HqLyjWDarjtT1zdp7dc";
const STRIPE_RK: &str = "rk_test_4eC39HqLyjWDarjtT1zdp7dc";
const STRIPE_PK: &str = "pk_live_TYooMQauvdEDq54NiTphI7jx";
const AWS: &str = "AKIAIOSFODNN7EXAMPLE";
const AWS_STS: &str = "ASIAY34FZKBOKMUTVV7A";
const GITHUB: &str = "ghp_1234567890abcdefghijABCDEFGHIJ123456";
const GITHUB_PAT: &str = "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz";
const SLACK: &str = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx";
const GOOGLE: &str = "AIzaSyD-x_1234567890abcdefghijklmnopqrs";
const GITLAB: &str = "glpat-xY12zAbCdEfGhIjKlMnO";
const GENERIC: &str = "Zx81Qw77Lm00Pp";
const BEARER: &str = "9f8e7d6c5b4a3210fedcba98";
const BASIC: &str = "dXNlcjpodW50ZXIy"; // user:hunter2
const EMAIL_A: &str = "alice.smith+game@example.co.uk";
const EMAIL_B: &str = "bob@example.com";
const IPV4_A: &str = "192.168.1.23";
const IPV4_B: &str = "203.0.113.7";
const IPV6_A: &str = "2001:db8:85a3::8a2e:370:7334";
const IPV6_B: &str = "fe80::1ff:fe23:4567:890a";
const IPV6_C: &str = "::ffff:192.0.2.128";
const IPV6_FULL: &str = "2001:0db8:0000:0000:0000:ff00:0042:8329";
const AUTH0: &str = "auth0|5f7c8ec7c33c6c004bbafe82";
const GOOGLE_SUB: &str = "google-oauth2|103456789012345678901";
const GITHUB_SUB: &str = "github|12345";
// Not a real key: the shape of one (a made-up base64 body).
const PEM: &str = "-----BEGIN RSA PRIVATE KEY-----
MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu
KUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQJAIJLixBy2qpFoS4DSmoEm
-----END RSA PRIVATE KEY-----";
const PEM_BODY: &str = "KUpRKfFLfRYC9AIKjbJTWit";
const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"; // AWS's documented example

fn planted_state() -> Value {
    json!({
        "session_id": "550e8400-e29b-41d4-a716-446655440000",
        "user_id_hash": "9b74c9897bac770ffc029102a200c5de",
        "api_key": "plain-looking-value",
        "player": {
            "name": "Mira",
            "email": EMAIL_B,
            "contact": format!("Write to {EMAIL_A} or {EMAIL_B} after the raid."),
            "auth_id": "u-991",
            "firebase_uid": 424242,
            "profile": {"linked": [AUTH0, GOOGLE_SUB]},
            "inventory": [
                {"item": "key", "key": "rusty iron key"},
                {"item": "scroll", "text": format!("The scroll reads: {OPENAI}")}
            ],
            "tokens": 5
        },
        "npcs": [
            {"name": "Oracle", "says": format!("Your token is {JWT}, guard it.")},
            {"name": "Smith", "lines": [
                "Welcome, traveller.",
                format!("My cousin at {IPV4_A} sends word; also {IPV6_A}.")
            ]}
        ],
        "world": {
            "servers": [IPV4_B, format!("[{IPV6_B}]:7777"), IPV6_C, IPV6_FULL],
            "integrations": {
                "openai": ANTHROPIC,
                "stripe": [STRIPE, STRIPE_RK, STRIPE_PK],
                "aws": {"id": AWS, "sts": format!("temp creds {AWS_STS} expire soon")},
                "github": [GITHUB, GITHUB_PAT],
                "chat": SLACK,
                "maps": GOOGLE,
                "ci": GITLAB,
                "deploy": format!("ops pasted the deploy key:\n{PEM}\nplease rotate")
            },
            "config": {
                "password": "hunter2",
                "pin_password": 1234,
                "accessToken": "opaque-access",
                "client_secret": 99887766,
                "credentials": {"username": "bob", "nested": ["x1", 7, true, null]},
                "Authorization": format!("Bearer {BEARER}")
            }
        },
        "memory": {
            "episodic": [
                {"salience": 0.9, "text": format!("Logged in as {GITHUB_SUB} from {IPV4_A}.")},
                {"salience": 0.4, "text": format!("GET /api?api_key={GENERIC}&page=2")},
                {"salience": 0.2, "text": format!("curl -H 'Authorization: Basic {BASIC}' /x")},
                {"salience": 0.1, "text": format!("The AWS secret access key is {AWS_SECRET} (rotate).")}
            ],
            "warm": {"pins": [format!("Raven says: mail {EMAIL_B}")]}
        }
    })
}

/// (pointer, kind, planted value that must not survive; "" when the value is not a string).
const EXPECTED: &[(&str, &str, &str)] = &[
    ("/api_key", "secret_field", "plain-looking-value"),
    ("/memory/episodic/0/text", "auth_id", GITHUB_SUB),
    ("/memory/episodic/0/text", "ipv4", IPV4_A),
    ("/memory/episodic/1/text", "api_key", GENERIC),
    ("/memory/episodic/2/text", "bearer_token", BASIC),
    ("/memory/episodic/3/text", "api_key", AWS_SECRET),
    ("/memory/warm/pins/0", "email", EMAIL_B),
    ("/npcs/0/says", "jwt", JWT),
    ("/npcs/1/lines/1", "ipv4", IPV4_A),
    ("/npcs/1/lines/1", "ipv6", IPV6_A),
    ("/player/auth_id", "auth_id", "u-991"),
    ("/player/contact", "email", EMAIL_A),
    ("/player/contact", "email", EMAIL_B),
    ("/player/email", "email", EMAIL_B),
    ("/player/firebase_uid", "auth_id", ""),
    ("/player/inventory/1/text", "api_key", OPENAI),
    ("/player/profile/linked/0", "auth_id", AUTH0),
    ("/player/profile/linked/1", "auth_id", GOOGLE_SUB),
    ("/world/config/Authorization", "secret_field", BEARER),
    ("/world/config/accessToken", "secret_field", "opaque-access"),
    ("/world/config/client_secret", "secret_field", ""),
    ("/world/config/credentials/nested/0", "secret_field", ""),
    ("/world/config/credentials/nested/1", "secret_field", ""),
    ("/world/config/credentials/username", "secret_field", ""),
    ("/world/config/password", "secret_field", "hunter2"),
    ("/world/config/pin_password", "secret_field", ""),
    ("/world/integrations/aws/id", "api_key", AWS),
    ("/world/integrations/aws/sts", "api_key", AWS_STS),
    ("/world/integrations/chat", "api_key", SLACK),
    ("/world/integrations/ci", "api_key", GITLAB),
    ("/world/integrations/deploy", "private_key", PEM_BODY),
    ("/world/integrations/github/0", "api_key", GITHUB),
    ("/world/integrations/github/1", "api_key", GITHUB_PAT),
    ("/world/integrations/maps", "api_key", GOOGLE),
    ("/world/integrations/openai", "api_key", ANTHROPIC),
    ("/world/integrations/stripe/0", "api_key", STRIPE),
    ("/world/integrations/stripe/1", "api_key", STRIPE_RK),
    ("/world/integrations/stripe/2", "api_key", STRIPE_PK),
    ("/world/servers/0", "ipv4", IPV4_B),
    ("/world/servers/1", "ipv6", IPV6_B),
    ("/world/servers/2", "ipv6", IPV6_C),
    ("/world/servers/3", "ipv6", IPV6_FULL),
];

#[test]
fn planted_secrets_are_all_found_and_none_survive() {
    assert_eq!(GOOGLE.len(), 39, "AIza + 35");
    assert_eq!(GITHUB.len(), 40, "ghp_ + 36");
    let state = planted_state();
    let Redacted { document, report } = redact(&state, &opts("export-42"));

    let expected: Vec<Finding> = EXPECTED
        .iter()
        .map(|&(p, k, _)| Finding {
            pointer: p.to_owned(),
            kind: k.to_owned(),
        })
        .collect();
    // Expected rows are listed in traversal order: keys sorted, then position in the string.
    assert_eq!(report.findings, expected, "findings (in document order)");
    assert_eq!(report.total, EXPECTED.len());
    for kind in Kind::ALL {
        assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        let n = EXPECTED.iter().filter(|e| e.1 == kind.as_str()).count();
        assert_eq!(
            report.counts.get(kind.as_str()).copied().unwrap_or(0),
            n,
            "{kind}"
        );
        assert!(n > 0, "every kind is planted at least once: {kind}");
    }

    let out = serde_json::to_string(&document).unwrap();
    for &(pointer, kind, secret) in EXPECTED {
        let tag = format!("[REDACTED:{kind}:");
        assert!(at(&document, pointer).contains(&tag), "{pointer}: {tag}");
        if !secret.is_empty() {
            assert!(!out.contains(secret), "{secret} survived");
        }
    }
    for gone in ["99887766", "1234,", "424242", "u-991", "bob@", "\"x1\""] {
        assert!(!out.contains(gone), "{gone} survived");
    }

    // Surroundings survive: only the matching substring goes.
    let contact = at(&document, "/player/contact");
    assert!(
        contact.starts_with("Write to [REDACTED:email:"),
        "{contact}"
    );
    assert!(contact.ends_with("] after the raid."), "{contact}");
    let line = at(&document, "/npcs/1/lines/1");
    assert!(line.starts_with("My cousin at [REDACTED:ipv4:"), "{line}");
    assert!(at(&document, "/world/servers/1").ends_with("]:7777"));
    assert!(at(&document, "/memory/episodic/1/text").ends_with("&page=2"));
    let deploy = at(&document, "/world/integrations/deploy");
    assert!(
        deploy.starts_with("ops pasted the deploy key:\n[REDACTED:private_key:"),
        "{deploy}"
    );
    assert!(deploy.ends_with("]\nplease rotate"), "{deploy}");
    assert!(!deploy.contains("PRIVATE KEY"), "{deploy}");
    let aws = at(&document, "/memory/episodic/3/text");
    assert!(aws.starts_with("The AWS secret access key is [REDACTED:api_key:"));
    assert!(aws.ends_with("] (rotate)."), "{aws}");
    let auth = at(&document, "/world/config/Authorization");
    assert!(
        auth.starts_with("[REDACTED:secret_field:"),
        "whole value: {auth}"
    );
    // Booleans, null, the game's own `key`, the token counter and ids are kept.
    assert_eq!(
        document["world"]["config"]["credentials"]["nested"][2],
        true
    );
    assert_eq!(
        document["world"]["config"]["credentials"]["nested"][3],
        Value::Null
    );
    assert_eq!(
        document["player"]["inventory"][0],
        state["player"]["inventory"][0]
    );
    assert_eq!(document["player"]["tokens"], 5);
    assert_eq!(document["session_id"], state["session_id"]);
    assert_eq!(document["user_id_hash"], state["user_id_hash"]);
    println!("planted: {} findings verified", EXPECTED.len());
}

#[test]
fn tags_correlate_within_a_salt_only() {
    let state = planted_state();
    let a = redact(&state, &opts("salt-a")).document;
    let b = redact(&state, &opts("salt-b")).document;
    let email_a = at(&a, "/player/email");
    // The same address in two places gets the same replacement...
    assert_eq!(
        email_a,
        at(&a, "/memory/warm/pins/0").trim_start_matches("Raven says: mail ")
    );
    assert!(at(&a, "/player/contact").contains(email_a));
    assert_eq!(email_a, replacement("salt-a", Kind::Email, EMAIL_B));
    assert_eq!(email_a.len(), "[REDACTED:email:]".len() + 12);
    // ...the same value of another kind does not share a tag...
    assert_ne!(
        replacement("salt-a", Kind::Email, EMAIL_B),
        replacement("salt-a", Kind::SecretField, EMAIL_B).replace("secret_field", "email")
    );
    // ...and another salt gives different tags everywhere.
    let mut differ = 0;
    for &(pointer, _, _) in EXPECTED {
        assert_ne!(at(&a, pointer), at(&b, pointer), "{pointer}");
        differ += 1;
    }
    println!("salts: {differ} replacements differ between salts");
}

#[test]
fn each_kind_in_isolation() {
    // (input, kind, substring that must go, text that must stay)
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "key: sk-abcdefghij0123456789XYZ",
            "api_key",
            "sk-abcdefghij0123456789XYZ",
            "key: ",
        ),
        (
            "use xoxp-1234567890-abcdef now",
            "api_key",
            "xoxp-1234567890-abcdef",
            " now",
        ),
        (
            "token=ghs_abcdefghijklmnopqrstuvwxyz0123456789",
            "api_key",
            "ghs_",
            "token=",
        ),
        (
            "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCY",
            "api_key",
            "wJalrXUtnFEMI",
            "AWS_SECRET_ACCESS_KEY=",
        ),
        (
            "password=swordfish",
            "secret_field",
            "swordfish",
            "password=",
        ),
        (
            "\"client_secret\": \"a8f5f167f44f4964e6c998dee827110c\"",
            "secret_field",
            "a8f5f167",
            "client_secret",
        ),
        (
            "x-auth-token: 7c4a8d09ca3762af61e59520943dc26494f8941b",
            "secret_field",
            "7c4a8d09",
            "x-auth-token: ",
        ),
        (
            "firebase_uid=Xk2LmN9pQrSt0123",
            "auth_id",
            "Xk2LmN9pQrSt0123",
            "firebase_uid=",
        ),
        (
            "authorization: bearer abc.def-123_456",
            "bearer_token",
            "abc.def-123_456",
            "authorization: bearer ",
        ),
        (
            "BEARER 0123456789abcdef",
            "bearer_token",
            "0123456789abcdef",
            "BEARER ",
        ),
        (
            "Authorization: Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.",
            "jwt",
            "eyJzdWIiOiIxIn0",
            "Bearer ",
        ),
        ("ping 8.8.8.8.", "ipv4", "8.8.8.8", "ping "),
        ("range 10.0.0.1-10.0.0.255", "ipv4", "10.0.0.255", "range "),
        ("host=255.255.255.255;", "ipv4", "255.255.255.255", ";"),
        ("peer ::ffff:10.1.2.3 joined", "ipv6", "10.1.2.3", " joined"),
        ("from fe80::1.", "ipv6", "fe80::1", "from "),
        (
            "mail <carol_o'neil@sub.example.org>",
            "email",
            "carol_o'neil@sub.example.org",
            "<",
        ),
        (
            "samlp|acme-corp|dave@acme.example",
            "auth_id",
            "dave@acme",
            "",
        ),
        (
            "email|5f7c8ec7c33c6c004bbafe82 signed in",
            "auth_id",
            "5f7c8ec7",
            " signed in",
        ),
        (
            "apple|001234.abcdef0123456789.1234",
            "auth_id",
            "001234",
            "",
        ),
        // Formats the public corpus has no sample of (made-up values of the documented shape).
        (
            "newsletter via key-9f8e7d6c5b4a39281706f5e4d3c2b1a0 today",
            "api_key",
            "9f8e7d6c5b4a3928",
            " today",
        ),
        (
            "DO=dop_v1_a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90",
            "api_key",
            "a1b2c3d4e5f60718",
            "DO=",
        ),
        (
            "post to https://discord.com/api/webhooks/123456789012345678/Zk3Lm9Qp2Rs8Tv4Wx7Yz1A_b-Cd5Ef6Gh",
            "api_key",
            "Zk3Lm9Qp2Rs8Tv4W",
            "post to ",
        ),
        (
            "square sq0atp-Zk3Lm9Qp2Rs8Tv4Wx7Yz1A ok",
            "api_key",
            "Zk3Lm9Qp2Rs8",
            " ok",
        ),
        (
            "HEROKU=HRKU-AAZq8Lm3Nx7Pv2Rt6Wy1Kb5Jc9Hd4Fg0Se_Ua-Ti3Oq7Mr2Ln6Kp1Jo5Ih9G",
            "api_key",
            "Zq8Lm3Nx7Pv2",
            "HEROKU=",
        ),
        (
            "GET https://api.telegram.org/bot123456789:AAE0x9kLmNoPqRsTuVwXyZ0123456789abc/getMe",
            "api_key",
            "AAE0x9kLmNoPqRsT",
            "/getMe",
        ),
        (
            "-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: GnuPG v2\n\nlQOYBF1xZq8BCADk3Lm9Qp2Rs8\n=Ab3d\n-----END PGP PRIVATE KEY BLOCK----- end",
            "private_key",
            "lQOYBF1xZq8BCADk",
            " end",
        ),
        (
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkq\n-----END ENCRYPTED PRIVATE KEY-----",
            "private_key",
            "MIIFHDBOBgkqhkiG",
            "",
        ),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,5E3B7A\n\nMIIEpAIBAAKCAQEA3Lm9\n-----END RSA PRIVATE KEY-----",
            "private_key",
            "MIIEpAIBAAKCAQEA",
            "",
        ),
        (
            "pasted: -----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oVfZ4T0h! (cut off)",
            "private_key",
            "MHcCAQEEIBkg4LVW",
            "! (cut off)",
        ),
        (
            "cache at redis://:S3cretPw42@cache.internal:6379/0",
            "secret_field",
            "S3cretPw42",
            "@cache.internal:6379/0",
        ),
        (
            "aws configure set aws_secret_access_key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "api_key",
            "wJalrXUtnFEMI",
            "aws configure set aws_secret_access_key ",
        ),
        (
            "the secret access key: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY, id AKIAIOSFODNN7EXAMPLE",
            "api_key",
            "K7MDENG",
            "the secret access key: ",
        ),
        (
            "key: 8sKq2LmZ0pXv7RtY4wNb3Jc6",
            "api_key",
            "8sKq2LmZ0pXv7RtY",
            "key: ",
        ),
        (
            "DefaultEndpointsProtocol=https;AccountName=store7;AccountKey=dGhpcyBpcyBub3QgYSByZWFsIHN0b3JhZ2UgYWNjb3VudCBrZXksIG9ubHkgdGVzdCBkYXRhIG9rISE=;EndpointSuffix=core.windows.net",
            "api_key",
            "dGhpcyBpcyBub3Qg",
            ";EndpointSuffix=core.windows.net",
        ),
        (
            "apiSecret := \"Pz8Lq3Rm7Tn2Vb6Xc1Ws\"",
            "secret_field",
            "Pz8Lq3Rm7Tn2",
            "apiSecret := \"",
        ),
        (
            "//registry.npmjs.org/:_authToken=743b294a-cd03-11ec-9d64-0242ac120002",
            "secret_field",
            "743b294a",
            "//registry.npmjs.org/:_authToken=",
        ),
    ];
    let mut checked = 0;
    for &(input, kind, secret, kept) in cases {
        let r = redact(&json!({ "log": input }), &opts("s"));
        let out = at(&r.document, "/log");
        assert!(
            r.report
                .findings
                .iter()
                .any(|f| f.kind == kind && f.pointer == "/log"),
            "{input:?}: expected {kind}, got {:?} -> {out}",
            r.report.findings
        );
        assert!(
            !out.contains(secret),
            "{input:?}: {secret} survived in {out}"
        );
        assert!(out.contains(kept), "{input:?}: lost {kept:?} in {out}");
        checked += 1;
    }
    println!("isolated kinds: {checked} cases");
}

// ---------------------------------------------------------------------------------------------
// Benign game content

const BENIGN_TEXT: &[&str] = &[
    "Guard: Halt! Who goes there?",
    "Meet me at 12:30 by the well.",
    "The bells ring at 10:00 and again at 23:59:59.",
    "Time 12:30:45, lap 01:02:03.456",
    "The match ended 3:2 after extra time.",
    "Odds are 3:1, screen 16:9, ratio 1:2:3",
    "Chapter 3::2 begins; see also 1::, ::1 and a::b",
    "Chapter 12, verse 4; John 3:16",
    "Price: $4.99 (was $5.49), total $104.50",
    "2024-05-01",
    "Saved on 2024-05-01T12:30:45Z and 2024-05-01T12:30:45+02:00",
    "Coordinates 10.5,20.25 and x=10.5 y=20.25",
    "550e8400-e29b-41d4-a716-446655440000",
    "Versions 1.2.3, v2.10.4, 0.18.1, 15.18, v1.2.3.4, V10.0.0.1 and 2.0.10.1-beta",
    "Dotted runs 1.2.3.4.5 and 256.1.1.1 and 999.999.999.999",
    "Colors #ff8800, #FFF and #1a2b3c",
    "Golden Key",
    "rusty iron key",
    "aGVsbG8=",
    "SGVsbG8gd29ybGQ=",
    "A narrow passage leads to the tokenizer room; the keyboard clicks.",
    "Basic training starts at dawn.",
    "The ring-bearer Frodo walked on; bearer bonds are worthless.",
    "Bearer of bad news, Basic Instinct",
    "apple|pear|plum and a|b|c",
    "Email me @ the tavern, @everyone",
    "The password: swordfish",
    "Say the token: silver, or secret: moonlight",
    "sk-dungeon-level-entrance-hall-north-wing",
    "risk-free-adventure-mode-enabled-forever",
    "ghp_short and AKIA and AIza and xoxb-1",
    "HP 100/100, MP 20/40, score 1,234,567",
    "Press key: K to open the door",
    "room_key=key_red_7 and door=north",
    "http://example/quest?step=3&mode=hard",
    "Ask: what is the time? Answer: 5 o'clock.",
    "",
    "abc",
    // Values next to key-like words that the random-value rule must leave alone.
    "key=SwordOfFlames_Level2 and key: DRAGON_SLAYER_STAGE2_NORTHGATE",
    "door_key=Crypt_Of_The_Lich_King_3, token: silver",
    "key=item_4f9c2a1b8e7d6c5b3a2f and key-7 and key-red",
    "key: 6ba7b810-9dad-11d1-80b4-00c04fd430c8",
    "secret recipe changed in commit 43fc912ef59a83054ea7f6706df4d53a7dea4d80 by the aws team",
    "public_key = 7Hq2Lm9Zx4Pv8Rt1Wn6Yb3Kc5Jd0Sf, primaryKey=orders_2024_q3_region7",
    "tokens_collected=7Hq2Lm9Zx4Pv8Rt1Wn6Yb3, token_type: Bearer, max_tokens=4096",
    "password_changed_at=2024-05-01T12:30:45Z",
    "The Archivist said: the key is under the mat, the token is silver, the secret is moonlight.",
    "Pneumonoultramicroscopicsilicovolcanoconiosis; Supercalifragilisticexpialidocious!",
    "awf_lifecycle 0.1.0 (pg 15.6), build v2.10.4-beta+exp.sha.5114f85, md5=5c94767cedb5d6987c902ac850ded2c6",
    "NotificationServiceHandler.update.handleIncomingMessagesForUser failed",
    "http://localhost:5000/<%= @variable %> and \"https://url:8000\";@something else",
    "see https://example.com:8443/quests?id=7&who=@mira#top",
    "Stage SK-2, the AC-130 and SKELETONKINGsword; ACcumulated 3 keys",
    "Love, Grandma xoxo-hugs-and-kisses-forever",
    "avatar data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
    "The BEGIN PRIVATE KEY ceremony starts at dawn; -----BEGIN CERTIFICATE-----",
];

/// SHA-256 content and chain hashes as exports carry them (sha256 of "a" and of "b").
const HASH_A: &str = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb";
const HASH_B: &str = "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d";
const SESSION: &str = "550e8400-e29b-41d4-a716-446655440000";

fn benign_state() -> Value {
    json!({
        "session_id": "550e8400-e29b-41d4-a716-446655440000",
        "turn_id": 17,
        "player": {
            "name": "Golden Key",
            "hp": 42, "gold": 4.99, "ratio": 0.75,
            "inventory": [
                {"item": "key", "key": "rusty iron key"},
                {"item": "map", "key": "door-7"}
            ],
            "keys": ["brass", "silver"],
            "tokens": 5,
            "cookies": 3,
            "tokens_collected": 12,
            "max_tokens": 4096,
            "token_type": "Bearer",
            "secret_door": "behind the bookcase",
            "secret_passage": "north wall",
            "secrets_found": 3,
            "monkey": "Bubbles",
            "turkey": "roasted",
            "keyboard": "qwerty",
            "hotkey": "F5",
            "door_key": "key_red",
            "passage": "the long one",
            "tokenizer": "bpe",
            "sub": "quest-7",
            "password": "",
            "session_key_hint": null,
            "api_key_enabled": true
        },
        "world": {"version": "v2.10.4", "seed": 123456789, "clock": "12:30"},
        "bundle": {
            "content_hash": HASH_A,
            "row_hash": HASH_B,
            "prev_hash": HASH_A,
            "contract_ref": "awf/contract@3",
            "chain": [HASH_A, HASH_B],
            "note": format!("state_hash={HASH_A}; chain: prev {HASH_A} -> row {HASH_B}; key: {HASH_B}"),
            "snapshots": {"key": HASH_A, "keys": [HASH_B], "cache_key": HASH_A, "ids": [SESSION]},
        },
        "memory": {"episodic": [{"salience": 0.5, "text": "Met the smith at 12:30."}]}
    })
}

#[test]
fn benign_content_is_untouched() {
    let mut checked = 0;
    for &text in BENIGN_TEXT {
        let doc = json!({ "text": text, "list": [text] });
        let r = redact(&doc, &opts("s"));
        assert_eq!(r.document, doc, "{text:?} changed");
        assert!(r.report.is_empty(), "{text:?}: {:?}", r.report.findings);
        checked += 1;
    }
    let state = benign_state();
    let r = redact(&state, &opts("s"));
    assert_eq!(r.document, state, "benign state changed");
    assert!(r.report.is_empty(), "{:?}", r.report.findings);
    assert!(r.report.counts.is_empty());
    checked += 1;
    println!("benign: {checked} documents untouched");
}

// ---------------------------------------------------------------------------------------------
// Properties

#[test]
fn deterministic_ordered_and_idempotent() {
    let doc = json!({
        "b": "x@example.com",
        "a": ["1.2.3.4", "text a@example.co and 10.0.0.1"],
        "c/d": {"~e": "host 10.0.0.2"}
    });
    let first = redact(&doc, &opts("k"));
    let second = redact(&doc, &opts("k"));
    assert_eq!(first, second);
    let order: Vec<(&str, &str)> = first
        .report
        .findings
        .iter()
        .map(|f| (f.pointer.as_str(), f.kind.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            ("/a/0", "ipv4"),
            ("/a/1", "email"),
            ("/a/1", "ipv4"),
            ("/b", "email"),
            ("/c~1d/~0e", "ipv4"),
        ]
    );
    // A second pass finds nothing to do.
    let again = redact(&first.document, &opts("k"));
    assert_eq!(again.document, first.document);
    assert!(again.report.is_empty(), "{:?}", again.report.findings);
    let planted = redact(&planted_state(), &opts("k"));
    let again = redact(&planted.document, &opts("other"));
    assert_eq!(again.document, planted.document);
    assert!(again.report.is_empty(), "{:?}", again.report.findings);

    let report = serde_json::to_value(&first.report).unwrap();
    assert_eq!(report["total"], 5);
    assert_eq!(report["counts"], json!({"email": 2, "ipv4": 3}));
    assert_eq!(
        report["findings"][0],
        json!({"pointer": "/a/0", "kind": "ipv4"})
    );
}

#[test]
fn non_object_roots() {
    let n = redact(&json!(42), &opts("s"));
    assert_eq!(n.document, json!(42));
    assert!(n.report.is_empty());
    let null = redact(&Value::Null, &opts("s"));
    assert_eq!(null.document, Value::Null);

    let s = redact(&json!("bob@example.com"), &opts("s"));
    assert_eq!(
        s.document,
        json!(replacement("s", Kind::Email, "bob@example.com"))
    );
    assert_eq!(s.report.findings[0].pointer, "");

    let arr = redact(
        &json!([1, "mail bob@example.com", [true, "8.8.4.4"]]),
        &opts("s"),
    );
    let pointers: Vec<&str> = arr
        .report
        .findings
        .iter()
        .map(|f| f.pointer.as_str())
        .collect();
    assert_eq!(pointers, ["/1", "/2/1"]);
    assert_eq!(arr.document[0], 1);
}

#[test]
fn numbers_keep_their_text_when_redacted() {
    let doc = awf_core::json::parse_str(r#"{"password": 1.50, "tokens": 1.50}"#).unwrap();
    let r = redact(&doc, &opts("s"));
    assert_eq!(
        r.document["password"],
        json!(replacement("s", Kind::SecretField, "1.50"))
    );
    assert_eq!(r.document["tokens"], doc["tokens"]);
}

#[test]
fn large_document_is_fast_enough() {
    let line = "The smith at 12:30 said: mail bob@example.com, ratio 3:2, v1.2.3, price $4.99. ";
    let entries: Vec<Value> = (0..5_000)
        .map(|i| json!({"turn": i, "text": line.repeat(4), "key": "door"}))
        .collect();
    let doc = json!({ "memory": { "episodic": entries } });
    let start = std::time::Instant::now();
    let r = redact(&doc, &opts("s"));
    let took = start.elapsed();
    assert_eq!(r.report.total, 5_000 * 4);
    println!("large: {} findings in {took:?}", r.report.total);
    assert!(took.as_secs() < 20, "{took:?}");
}

// ---------------------------------------------------------------------------------------------
// Public corpus of credential formats (tests/fixtures/secrets/README.md says where from)

/// The first fragment of `secret` (every window of 8 characters, or all of it when shorter)
/// that still appears in a string of `doc`.
fn leaked_fragment(doc: &Value, secret: &str) -> Option<String> {
    fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::String(s) => out.push(s),
            Value::Array(items) => items.iter().for_each(|i| strings(i, out)),
            Value::Object(map) => map.iter().for_each(|(k, i)| {
                out.push(k);
                strings(i, out);
            }),
            _ => {}
        }
    }
    let mut all = Vec::new();
    strings(doc, &mut all);
    let chars: Vec<char> = secret.chars().collect();
    let w = chars.len().min(8);
    chars
        .windows(w)
        .map(|win| win.iter().collect::<String>())
        .find(|frag| all.iter().any(|s| s.contains(frag.as_str())))
}

#[test]
fn public_corpus_of_credential_formats_is_redacted() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/secrets/corpus.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let corpus: Value = serde_json::from_str(&text).unwrap();
    let samples = corpus["samples"].as_array().expect("samples");
    assert!(samples.len() >= 100, "corpus shrank: {}", samples.len());

    // source -> (samples, redacted); kind name -> findings
    let mut per_source: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    const SAYS: (&str, &str) = (
        "Turn 12: the archivist reads aloud \"",
        "\" and closes the ledger.",
    );
    for sample in samples {
        let source = sample["source"].as_str().expect("source");
        let rule = sample["rule"].as_str().expect("rule");
        let text = sample["text"].as_str().expect("text");
        let secret = sample["secret"].as_str().unwrap_or(text);
        assert!(text.contains(secret), "{rule}: secret not in text");
        // The sample in free text, alone in an ordinary field, and in a multi-line memory,
        // inside a state shaped like a game's.
        let state = json!({
            "turn_id": 12,
            "player": {"name": "Mira", "hp": 42, "inventory": [{"item": "ledger", "note": text}]},
            "npcs": [{"name": "Archivist", "says": format!("{}{text}{}", SAYS.0, SAYS.1)}],
            "memory": {"episodic": [{"salience": 0.7, "text": format!("{text}\n(copied from the ledger)")}]},
        });
        let r = redact(&state, &opts("corpus"));
        let entry = per_source.entry(source).or_default();
        entry.0 += 1;
        let places = [
            "/player/inventory/0/note",
            "/npcs/0/says",
            "/memory/episodic/0/text",
        ];
        let missing: Vec<&str> = places
            .iter()
            .copied()
            .filter(|p| !r.report.findings.iter().any(|f| f.pointer == *p))
            .collect();
        let says = at(&r.document, "/npcs/0/says");
        let leaked = leaked_fragment(&r.document, secret);
        if !missing.is_empty() || leaked.is_some() {
            failures.push(format!(
                "{source}/{rule}: {text:?}: no finding at {missing:?}, leaked {leaked:?}"
            ));
            continue;
        }
        // Only the secret goes: the narrative around it and the rest of the state survive.
        assert!(
            says.starts_with(SAYS.0) && says.ends_with(SAYS.1),
            "{rule}: {says}"
        );
        assert_eq!(r.document["player"]["name"], "Mira");
        assert_eq!(r.document["turn_id"], 12);
        for f in &r.report.findings {
            *kinds.entry(f.kind.clone()).or_default() += 1;
        }
        entry.1 += 1;
    }
    let describe = |id: &str| {
        let s = &corpus["sources"][id];
        format!(
            "{id} {} {}",
            s["version"].as_str().unwrap(),
            s["license"].as_str().unwrap()
        )
    };
    let (total, redacted) = per_source
        .values()
        .fold((0, 0), |(a, b), &(n, ok)| (a + n, b + ok));
    let sources: Vec<String> = per_source.keys().map(|id| describe(id)).collect();
    println!(
        "secret corpus ({}): {total} samples, {redacted} redacted",
        sources.join(", ")
    );
    for (id, (n, ok)) in &per_source {
        println!("  {}: {n} samples, {ok} redacted", describe(id));
    }
    println!("  findings by kind: {kinds:?}");
    assert!(
        failures.is_empty(),
        "{} not redacted:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Bounded work on hostile input

#[test]
fn hostile_strings_stay_linear() {
    // Each string repeats what one detector starts on without ever completing it, or completes
    // it over and over. At 256 KiB a quadratic step would take minutes; linear work takes well
    // under a second per string even unoptimized (doubling the size doubles the time).
    let n = 1 << 18;
    let fill = |unit: &str| unit.repeat(n / unit.len());
    let hostile = [
        fill("-----BEGIN PRIVATE KEY-----!"),
        fill("-----BEGIN RSA PRIVATE KEY-----\nMIIB"),
        fill("key="),
        fill("key=a1B2c3D4e5F6g7H8i9J0k "),
        fill("aws secret "),
        fill("x://u:p@"),
        fill("https://"),
        fill("sk-"),
        fill("123456:A"),
        fill("Mxxxxxxxxxxxxxxxxxxxxxxx.abcdef."),
        fill("a@b."),
        fill("1.2.3."),
        fill("a:b:"),
        fill("eyJ."),
        fill("Bearer "),
        "a".repeat(n),
    ];
    let start = std::time::Instant::now();
    let (mut findings, mut slowest) = (0, (std::time::Duration::ZERO, ""));
    for text in &hostile {
        let one = std::time::Instant::now();
        let r = redact(&json!({ "text": text }), &opts("s"));
        findings += r.report.total;
        let took = one.elapsed();
        if took > slowest.0 {
            slowest = (took, &text[..12]);
        }
        assert!(took.as_secs() < 20, "{:?}...: {took:?}", &text[..20]);
    }
    println!(
        "hostile: {} strings of {} KiB, {findings} findings in {:?} (slowest {:?}: {:?})",
        hostile.len(),
        n >> 10,
        start.elapsed(),
        slowest.1,
        slowest.0
    );
}

/// Each finding carries its pointer: ten levels of 100 KB member names over 2,000 emails
/// would report 2 GB of pointers from a 1 MB document. The budget refuses it as it goes.
#[test]
fn findings_under_long_member_names_are_charged_by_their_pointers() {
    let mut doc = Value::Array(vec![json!("mail ann@example.com"); 2_000]);
    for level in 0..10 {
        let mut m = serde_json::Map::new();
        m.insert(format!("{level}{}", "k".repeat(100_000)), doc);
        doc = Value::Object(m);
    }
    let mut budget = Budget::default();
    let e = awf_core::redact::redact(&doc, &opts("s"), &mut budget).unwrap_err();
    assert_eq!(e.kind, awf_core::ErrorKind::LimitExceeded);
    assert!(e.message.contains("awf.max_built_mb"), "{e}");
    assert!(budget.bytes_built() <= 257 << 20);
    // Short names: the same findings are cheap.
    let flat = json!({"a": vec![json!("mail ann@example.com"); 2_000]});
    assert_eq!(redact(&flat, &opts("s")).report.total, 2_000);
}
