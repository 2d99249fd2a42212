//! Secret and PII redaction for session exports.
//!
//! [`redact`] walks a JSON document and replaces secrets and personal data with
//! `[REDACTED:<kind>:<tag>]`, where the tag is the first 12 hex digits of
//! `sha256(salt || 0x00 || kind || 0x00 || value)`: equal values stay correlatable within one
//! export (the same salt) without the tag being a plain hash anyone can look up.
//!
//! Two mechanisms, because secrets show up in two ways:
//! - **Fields named like a secret** (`password`, `api_key`, `accessToken`, `client_secret`,
//!   `Authorization`, `auth_id`, ...): the whole value is replaced. Under such a field, objects
//!   and arrays are descended into and every leaf is replaced, because a `credentials` object
//!   holds secrets in every field. Strings are always replaced; numbers only under
//!   password/secret-like and auth-id fields, since `"tokens": 5` is an inventory counter in a
//!   game while `"pin_password": 1234` is not. Empty strings, booleans and null are kept: they
//!   carry nothing to hide.
//! - **Patterns inside any other string**: only the matching substring is replaced, so the
//!   narrative around an email survives. The patterns are:
//!   - private key blocks: PEM `-----BEGIN ... PRIVATE KEY-----` through its `END` line (RSA,
//!     EC, DSA, OpenSSH, PKCS#8, encrypted, PGP `PRIVATE KEY BLOCK`), also with the newlines
//!     escaped as `\n` (a key pasted inside JSON text), and a block cut off before its `END`
//!     line up to the first character that cannot be part of one (`private_key`);
//!   - provider credentials by their documented prefixes (`api_key`): OpenAI/Anthropic `sk-`,
//!     Stripe `sk_`/`rk_`/`pk_` `live`/`test` and `whsec_`, AWS key ids (`AKIA`, `ASIA`,
//!     `ABIA`, `ACCA`, `A3T.`), GitHub (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`,
//!     `github_pat_`), GitLab (`glpat-` and the other `gl...-` kinds, runner `GR1348941`),
//!     Slack (`xox?-`, `xapp-`, `hooks.slack.com` webhooks), Discord (bot tokens, webhook
//!     URLs), Telegram bot tokens (`<digits>:A...`), Google `AIza`, Twilio `AC`/`SK` ids,
//!     SendGrid `SG.`, npm `npm_`, PyPI `pypi-AgE`, Shopify `shp..._`, Mailgun `key-`,
//!     Mailchimp `...-us<n>`, DigitalOcean `do._v1_`, Square `sq0atp-`/`sq0csp-`, Heroku
//!     `HRKU-AA`, 1Password `ops_`, Cloudflare, Databricks, Docker, Figma, Grafana, Groq,
//!     HashiCorp Vault, Hugging Face, Linear, Notion, Tailscale and Vercel tokens. A prefixed
//!     token counts only when no letter or digit is glued to either end;
//!   - JWTs; `Bearer`/`Basic` credentials; IPv4, IPv6, emails; identity-provider subject ids;
//!   - the `user:password` of a URL (`postgres://app:pw@db/x`, `https://u:p@host`), as
//!     `secret_field`;
//!   - `name=value` / `name: value` / `name := value` assignments whose name is classified
//!     like a field (`api_key=...`, `password=...`);
//!   - a random-looking value (see `looks_random`) right after a key-like word that the
//!     field rules leave alone (`key: ...`, `AccountKey=...`, `secret_door=...`), and a
//!     40-character AWS secret access key within 40 characters after `aws`, `secret` or
//!     `access key`, so `the aws secret access key is wJalr...` is caught in prose.
//!
//! Game states are full of words that look like secrets, so the rules lean towards fewer false
//! positives where a game word is likely (the individual rules say why):
//! - a bare `key`/`keys` field (a door's key, an inventory item) is not secret; `key` counts
//!   only when qualified (`api_key`, `private_key`, `licenseKey`, ...);
//! - `secret` counts as the last word or before key/token (`client_secret`, `secret_key`), not
//!   in `secret_door`; names with a counter word (`tokens_collected`, `max_tokens`) or ending in
//!   a metadata word (`token_type`, `password_changed_at`) are ordinary fields;
//! - `sub` is not an auth-id field (games use it); `provider|id` values are caught anywhere;
//! - a dotted quad is an IPv4 address unless it is part of a version (`v1.2.3.4`,
//!   `2.0.10.1-beta`) or of a longer dotted run; short compressed IPv6 forms (`3::2`, `::1`)
//!   are left alone;
//! - `Basic <b64>` counts only when it decodes to `user:password`, `Bearer <t>` only when the
//!   token has a digit; `password: swordfish` in prose (no digit) is a puzzle answer, while
//!   `password=swordfish` is a credential;
//! - the random-value rule needs 20+ characters with a digit, enough entropy and mostly
//!   non-word letters, so `key=SwordOfFlames_Level2` and `key: DRAGON_GATE_STAGE2` stay, and
//!   it never takes hex digests, UUIDs or `prefix_<hex>` ids: exports carry SHA-256 content
//!   and chain hashes and UUIDs that must survive. A public/primary/foreign/cache key is not
//!   a secret either.
//!
//! Not caught, on purpose: bare 64-hex strings (a secp256k1 private key looks exactly like the
//! SHA-256 content hashes exports are made of), bare UUIDs (Heroku legacy keys, Azure client
//! ids are indistinguishable from ids), AWS account ids (12 digits), and `EAAA...` Square
//! tokens (too common inside base64 data). Behind a secret-like name all of these are caught.
//!
//! Cost: every detector is one pass of a `regex` automaton (linear time, no backtracking)
//! plus checks that read only the match and a character on either side; no step looks at
//! every substring, so redaction stays linear in the input on hostile strings too.
//!
//! Field names themselves are never redacted.

use crate::budget::Budget;
use crate::canonical::sha256_hex;
use crate::error::Result;
use crate::json::escape_token;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;
use std::sync::LazyLock;

use regex::Regex;

/// What was redacted; [`Kind::as_str`] gives the stable snake_case name used in reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A provider credential found by its format (API keys, access tokens, webhook URLs; see
    /// the module documentation for the list), the value of an `api_key=...` assignment in
    /// text, or a random-looking value after a key-like word.
    ApiKey,
    /// A private key block (PEM, OpenSSH, PGP), armor lines included.
    PrivateKey,
    /// A JSON Web Token.
    Jwt,
    /// The credential after `Bearer` or `Basic`.
    BearerToken,
    /// The value of a field named like a secret, of a `password=...` assignment in text, or
    /// the `user:password` of a URL.
    SecretField,
    /// An IPv4 address.
    Ipv4,
    /// An IPv6 address.
    Ipv6,
    /// An email address.
    Email,
    /// An identity-provider subject id (`auth0|...`) or the value of an auth-id field.
    AuthId,
}

impl Kind {
    /// Every kind, in the order of the enum.
    pub const ALL: [Kind; 9] = [
        Kind::ApiKey,
        Kind::PrivateKey,
        Kind::Jwt,
        Kind::BearerToken,
        Kind::SecretField,
        Kind::Ipv4,
        Kind::Ipv6,
        Kind::Email,
        Kind::AuthId,
    ];

    /// The stable snake_case name used in replacements and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ApiKey => "api_key",
            Kind::PrivateKey => "private_key",
            Kind::Jwt => "jwt",
            Kind::BearerToken => "bearer_token",
            Kind::SecretField => "secret_field",
            Kind::Ipv4 => "ipv4",
            Kind::Ipv6 => "ipv6",
            Kind::Email => "email",
            Kind::AuthId => "auth_id",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How to redact: the salt of the replacement tags.
#[derive(Clone, Default)]
pub struct RedactOptions {
    /// Mixed into every tag so tags correlate within one export but are not plain hashes.
    pub salt: String,
}

impl RedactOptions {
    /// Options with the given salt.
    pub fn new(salt: impl Into<String>) -> Self {
        RedactOptions { salt: salt.into() }
    }
}

// The salt is what keeps tags from being a dictionary lookup, so it stays out of logs.
impl fmt::Debug for RedactOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedactOptions")
            .field("salt", &"<hidden>")
            .finish()
    }
}

/// One redaction: where (JSON Pointer of the string or field value) and what kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// JSON Pointer (RFC 6901) of the value that was changed.
    pub pointer: String,
    /// One of the [`Kind`] names.
    pub kind: String,
}

/// What [`redact`] changed, in document order (object keys sorted, then position in a string).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct RedactionReport {
    /// Number of findings per kind name; kinds with no finding are absent.
    pub counts: BTreeMap<String, usize>,
    /// Every replacement; a string with two emails gives two findings at one pointer.
    pub findings: Vec<Finding>,
    /// `findings.len()`.
    pub total: usize,
}

impl RedactionReport {
    /// True when nothing was redacted.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

/// The redacted document and its report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Redacted {
    /// The input with every finding replaced.
    pub document: Value,
    /// What was replaced, and where.
    pub report: RedactionReport,
}

/// Redacts secrets and PII from `doc`; see the module documentation for the rules.
///
/// Deterministic: the same document and salt give the same output and report. Linear in the
/// size of the document. Already-redacted values are left alone, so redacting twice changes
/// nothing the second time.
///
/// Charges `budget` for every value visited, every string byte scanned, and every finding as
/// a built value: its pointer is built text, so a finding deep under long member names costs
/// their length, and ten thousand findings under megabyte-long names are refused (54000)
/// rather than allocated. (The redacted copy is the size of the input, which is bounded.)
pub fn redact(doc: &Value, opts: &RedactOptions, budget: &mut Budget) -> Result<Redacted> {
    let mut document = doc.clone();
    let mut walker = Walker {
        salt: &opts.salt,
        findings: Vec::new(),
        budget,
    };
    let mut pointer = String::new();
    walker.walk(&mut document, &mut pointer, None)?;
    let mut counts = BTreeMap::new();
    for f in &walker.findings {
        *counts.entry(f.kind.clone()).or_insert(0) += 1;
    }
    let total = walker.findings.len();
    Ok(Redacted {
        document,
        report: RedactionReport {
            counts,
            findings: walker.findings,
            total,
        },
    })
}

/// The replacement text for `value` of `kind` under `salt`.
pub fn replacement(salt: &str, kind: Kind, value: &str) -> String {
    let kind = kind.as_str();
    let mut input = Vec::with_capacity(salt.len() + kind.len() + value.len() + 2);
    input.extend_from_slice(salt.as_bytes());
    input.push(0);
    input.extend_from_slice(kind.as_bytes());
    input.push(0);
    input.extend_from_slice(value.as_bytes());
    let digest = sha256_hex(&input);
    format!("[REDACTED:{kind}:{}]", &digest[..12])
}

// ---------------------------------------------------------------------------------------------
// Traversal

struct Walker<'a> {
    salt: &'a str,
    findings: Vec<Finding>,
    budget: &'a mut Budget,
}

impl Walker<'_> {
    fn walk(
        &mut self,
        v: &mut Value,
        pointer: &mut String,
        class: Option<FieldClass>,
    ) -> Result<()> {
        self.budget.work(1)?;
        match v {
            Value::Object(map) => {
                // Sorted explicitly so the report order does not depend on serde_json's
                // `preserve_order` feature, which any crate in the build could switch on.
                let mut entries: Vec<(&String, &mut Value)> = map.iter_mut().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                for (key, child) in entries {
                    let len = pointer.len();
                    pointer.push('/');
                    pointer.push_str(&escape_token(key));
                    let child_class = FieldClass::nested(classify_field(key), class);
                    self.walk(child, pointer, child_class)?;
                    pointer.truncate(len);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter_mut().enumerate() {
                    let len = pointer.len();
                    pointer.push('/');
                    pointer.push_str(&i.to_string());
                    self.walk(child, pointer, class)?;
                    pointer.truncate(len);
                }
            }
            Value::String(s) => match class {
                Some(c) => {
                    if !s.is_empty() && !is_replacement(s) {
                        *s = self.whole(c.kind(), s, pointer)?;
                    }
                }
                None => {
                    // Every pattern pass reads the string once.
                    self.budget.work(s.len() as u64 / 4)?;
                    if let Some(out) = self.scan(s, pointer)? {
                        *s = out;
                    }
                }
            },
            Value::Number(n) => {
                if let Some(c) = class.filter(|c| c.covers_numbers()) {
                    // With arbitrary_precision this is the number's original text.
                    let text = n.to_string();
                    *v = Value::String(self.whole(c.kind(), &text, pointer)?);
                }
            }
            Value::Bool(_) | Value::Null => {}
        }
        Ok(())
    }

    fn record(&mut self, pointer: &str, kind: Kind) -> Result<()> {
        self.budget.build(1, pointer.len() as u64)?;
        self.findings.push(Finding {
            pointer: pointer.to_owned(),
            kind: kind.as_str().to_owned(),
        });
        Ok(())
    }

    fn whole(&mut self, kind: Kind, value: &str, pointer: &str) -> Result<String> {
        self.record(pointer, kind)?;
        Ok(replacement(self.salt, kind, value))
    }

    fn scan(&mut self, s: &str, pointer: &str) -> Result<Option<String>> {
        let hits = find_hits(s);
        if hits.values().all(|(_, kind)| kind.is_none()) {
            return Ok(None);
        }
        let mut out = String::with_capacity(s.len());
        let mut at = 0;
        for (start, (end, kind)) in hits {
            let Some(kind) = kind else {
                continue; // an earlier replacement, kept verbatim
            };
            out.push_str(&s[at..start]);
            out.push_str(&replacement(self.salt, kind, &s[start..end]));
            self.record(pointer, kind)?;
            at = end;
        }
        out.push_str(&s[at..]);
        Ok(Some(out))
    }
}

static REPLACEMENT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\[REDACTED:[a-z0-9_]+:[0-9a-f]{12}\]").unwrap());

/// True when `s` is exactly one replacement, so a second pass leaves it alone.
fn is_replacement(s: &str) -> bool {
    s.starts_with("[REDACTED:") && REPLACEMENT.find(s).is_some_and(|m| m.len() == s.len())
}

// ---------------------------------------------------------------------------------------------
// Field names

/// How the value of a secret-named field is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldClass {
    /// Passwords, secrets, qualified keys and tokens: strings and numbers are replaced.
    Secret,
    /// Bare `token`/`tokens`/`cookie`: only strings, because games count tokens and cookies.
    StringsOnly,
    /// Auth-id fields: strings and numbers (GitHub ids are numbers), reported as `auth_id`.
    AuthId,
}

impl FieldClass {
    fn kind(self) -> Kind {
        match self {
            FieldClass::Secret | FieldClass::StringsOnly => Kind::SecretField,
            FieldClass::AuthId => Kind::AuthId,
        }
    }

    fn covers_numbers(self) -> bool {
        self != FieldClass::StringsOnly
    }

    /// The class of a field inside a secret field: its own, unless that would weaken the
    /// parent's (`credentials.tokens` keeps numbers redacted).
    fn nested(own: Option<FieldClass>, parent: Option<FieldClass>) -> Option<FieldClass> {
        match (own, parent) {
            (Some(FieldClass::StringsOnly), Some(p)) => Some(p),
            (Some(o), _) => Some(o),
            (None, p) => p,
        }
    }
}

/// Words that make a field a counter or a statistic, never a secret: `tokens_collected`,
/// `max_tokens`, `secrets_found`.
const COUNT_WORDS: &[&str] = &[
    "count",
    "counts",
    "collected",
    "earned",
    "spent",
    "used",
    "remaining",
    "left",
    "total",
    "num",
    "number",
    "max",
    "min",
    "limit",
    "limits",
    "balance",
    "found",
    "reward",
    "rewards",
    "cost",
    "price",
];

/// Last words that make a field metadata about a secret rather than the secret:
/// `token_type`, `password_changed_at`, `cookie_name`, `token_url`.
const META_LAST_WORDS: &[&str] = &[
    "type",
    "types",
    "kind",
    "name",
    "label",
    "at",
    "expires",
    "expiry",
    "expiration",
    "ttl",
    "length",
    "len",
    "size",
    "url",
    "uri",
    "endpoint",
    "path",
    "domain",
    "header",
    "field",
    "policy",
    "enabled",
    "required",
    "changed",
    "updated",
    "created",
    "version",
    "format",
    "algorithm",
    "alg",
    "scheme",
    "scope",
    "scopes",
    "strength",
    "rotation",
];

/// Words before `key`/`keys` that make it a credential; a bare `key` (a door's key id, an
/// inventory item) is a game word.
const KEY_QUALIFIERS: &[&str] = &[
    "api",
    "access",
    "private",
    "secret",
    "signing",
    "sign",
    "encryption",
    "encrypt",
    "enc",
    "decryption",
    "auth",
    "license",
    "licence",
    "client",
    "session",
    "master",
    "ssh",
    "gpg",
    "pgp",
    "hmac",
    "aes",
    "rsa",
    "crypto",
    "cipher",
    "shared",
    "app",
    "service",
    "subscription",
    "product",
    "activation",
    "root",
    "admin",
    "deploy",
    "webhook",
    "jwt",
    "kms",
    "storage",
    "consumer",
    "developer",
    "recovery",
    "openai",
    "anthropic",
    "stripe",
    "aws",
    "github",
    "gitlab",
    "slack",
    "google",
];

/// Words before `token`/`tokens` that make it an auth token (numbers redacted too).
const TOKEN_QUALIFIERS: &[&str] = &[
    "access",
    "refresh",
    "id",
    "session",
    "auth",
    "bearer",
    "api",
    "csrf",
    "xsrf",
    "oauth",
    "sync",
    "device",
    "reset",
    "verification",
    "verify",
    "push",
    "fcm",
    "apns",
    "secret",
    "client",
    "app",
    "personal",
    "github",
    "gitlab",
    "slack",
    "discord",
    "jwt",
    "security",
    "private",
    "magic",
    "login",
    "invite",
    "confirmation",
    "remember",
];

/// First words of auth-id fields (`auth_id`, `firebase_uid`, `auth0_user_id`).
const AUTH_PREFIXES: &[&str] = &[
    "auth", "oauth", "auth0", "firebase", "cognito", "okta", "sso", "idp", "clerk", "supabase",
];

const AUTH_ID_WORDS: &[&str] = &["id", "uid", "sub", "subject"];

/// Suffixes split off single-word names (`apikey`, `accesstoken`, `authid`) when the rest is
/// a known qualifier; `monkey` and `turkey` stay whole because `mon`/`tur` qualify nothing.
const COMPOUND_SUFFIXES: &[&str] = &[
    "tokens", "token", "secrets", "secret", "keys", "key", "uid", "id",
];

fn is_compound_prefix(p: &str) -> bool {
    KEY_QUALIFIERS.contains(&p) || TOKEN_QUALIFIERS.contains(&p) || AUTH_PREFIXES.contains(&p)
}

/// Splits a field name into lowercase words at separators (`_`, `-`, `.`, spaces, ...) and
/// camelCase boundaries (`APIKey` → `api`, `key`), then splits known compounds.
fn split_words(name: &str) -> Vec<String> {
    let chars: Vec<char> = name.chars().collect();
    let mut raw: Vec<String> = Vec::new();
    let mut cur = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                raw.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if c.is_uppercase() && !cur.is_empty() {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_lower) {
                raw.push(std::mem::take(&mut cur));
            }
        }
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        raw.push(cur);
    }
    let mut words = Vec::with_capacity(raw.len() + 1);
    for w in raw {
        match split_compound(&w) {
            Some((p, s)) => {
                words.push(p.to_owned());
                words.push(s.to_owned());
            }
            None => words.push(w),
        }
    }
    words
}

fn split_compound(w: &str) -> Option<(&str, &str)> {
    COMPOUND_SUFFIXES.iter().find_map(|suf| {
        let p = w.strip_suffix(suf)?;
        (!p.is_empty() && is_compound_prefix(p)).then(|| (p, &w[p.len()..]))
    })
}

fn is_password_word(w: &str) -> bool {
    w.contains("passw")
        || w.starts_with("credential")
        || matches!(
            w,
            "pwd" | "passphrase" | "passcode" | "authorization" | "jwt" | "bearer" | "privatekey"
        )
}

/// Classifies a field name; `None` for ordinary fields.
fn classify_field(name: &str) -> Option<FieldClass> {
    let words = split_words(name);
    let last = words.last()?;
    if META_LAST_WORDS.contains(&last.as_str())
        || words.iter().any(|w| COUNT_WORDS.contains(&w.as_str()))
    {
        return None;
    }
    let w = |i: usize| words.get(i).map_or("", String::as_str);
    for i in 0..words.len() {
        if AUTH_PREFIXES.contains(&w(i))
            && (AUTH_ID_WORDS.contains(&w(i + 1))
                || (w(i + 1) == "user" && AUTH_ID_WORDS.contains(&w(i + 2))))
        {
            return Some(FieldClass::AuthId);
        }
    }
    let mut strings_only = false;
    for i in 0..words.len() {
        let (prev, word, next) = (if i > 0 { w(i - 1) } else { "" }, w(i), w(i + 1));
        let secret = match word {
            // `secret_door` and `secret_passage` are game words; `client_secret`,
            // `secret_key` and `secret_access_key` are not.
            "secret" | "secrets" => {
                next.is_empty() || matches!(next, "key" | "keys" | "token" | "tokens" | "access")
            }
            "key" | "keys" => KEY_QUALIFIERS.contains(&prev),
            "token" | "tokens" => {
                strings_only = true;
                TOKEN_QUALIFIERS.contains(&prev)
            }
            "cookie" | "cookies" => {
                strings_only = true;
                false
            }
            _ => is_password_word(word),
        };
        if secret {
            return Some(FieldClass::Secret);
        }
    }
    strings_only.then_some(FieldClass::StringsOnly)
}

// ---------------------------------------------------------------------------------------------
// Patterns in text

/// Accepted matches keyed by start, valued by (end, kind); never overlapping. A `None` kind
/// reserves an earlier replacement, whose tag could otherwise read as `api_key:<hex>`.
type Hits = BTreeMap<usize, (usize, Option<Kind>)>;

fn overlaps(hits: &Hits, start: usize, end: usize) -> bool {
    // Accepted ranges are disjoint, so only the last one starting before `end` can overlap.
    hits.range(..end)
        .next_back()
        .is_some_and(|(_, &(e, _))| e > start)
}

fn add(hits: &mut Hits, start: usize, end: usize, kind: Kind) {
    if start < end && !overlaps(hits, start, end) {
        hits.insert(start, (end, Some(kind)));
    }
}

fn char_before(s: &str, i: usize) -> Option<char> {
    s[..i].chars().next_back()
}

fn char_after(s: &str, i: usize) -> Option<char> {
    s[i..].chars().next()
}

fn contains_ignore_ascii_case(haystack: &str, needle: &str) -> bool {
    let n = needle.len();
    haystack
        .as_bytes()
        .windows(n)
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Every pattern match in `s`, earlier detectors winning overlaps: a private key block is
/// one finding whatever its base64 contains, a JWT after `Bearer` is reported as a JWT, an
/// email inside an auth id as part of the auth id, a URL's `user:password@host` as a URL
/// credential rather than an email.
///
/// Each detector is one linear-time `regex` pass (the `regex` crate has no backtracking), and
/// the checks after a match read only the match and a character on either side, so the whole
/// scan is linear in `s` on any input; the cheap `contains` gates only skip passes.
fn find_hits(s: &str) -> Hits {
    let mut hits = Hits::new();
    // Nothing shorter than `a@b.co` or `1.2.3.4` can be a finding.
    if s.len() < 6 {
        return hits;
    }
    let b = s.as_bytes();
    let count = |c: u8| b.iter().filter(|&&x| x == c).count();
    if s.contains("[REDACTED:") {
        for m in REPLACEMENT.find_iter(s) {
            hits.insert(m.start(), (m.end(), None));
        }
    }
    if s.contains("PRIVATE KEY") {
        find_private_keys(s, &mut hits);
    }
    if s.contains("eyJ") {
        find_jwts(s, &mut hits);
    }
    // The shortest provider token (`xoxb-` and ten characters) is 15 bytes long.
    if s.len() >= 15 {
        find_api_keys(s, &mut hits);
    }
    if contains_ignore_ascii_case(s, "bearer") || contains_ignore_ascii_case(s, "basic") {
        find_bearer(s, &mut hits);
    }
    if s.contains("://") {
        find_url_credentials(s, &mut hits);
    }
    if s.contains('|') {
        find_auth_ids(s, &mut hits);
    }
    if s.contains('@') {
        find_emails(s, &mut hits);
    }
    let colons = count(b':');
    if colons >= 2 {
        find_ipv6(s, &mut hits);
    }
    if count(b'.') >= 3 {
        find_ipv4(s, &mut hits);
    }
    if colons >= 1 || s.contains('=') {
        find_assignments(s, &mut hits);
    }
    if s.len() >= 40 {
        find_aws_secrets(s, &mut hits);
    }
    hits
}

/// PEM-armored private keys. With an `END` line after it the block is taken whole, whatever
/// lies between (PGP armor headers, newlines escaped as `\n` inside JSON text); without one,
/// up to the first character that cannot be part of a block, since a truncated key is still a
/// secret.
///
/// The `END` lines are found in their own pass and matched to headers by one forward-moving
/// index: a single lazy `BEGIN .*? END` regex would rescan to the end of the string for every
/// header without a footer, which is quadratic on a string of repeated headers.
fn find_private_keys(s: &str, hits: &mut Hits) {
    static BEGIN: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----").unwrap());
    static END: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----").unwrap());
    let ends: Vec<(usize, usize)> = END.find_iter(s).map(|m| (m.start(), m.end())).collect();
    let mut next_end = 0;
    let mut from = 0;
    for m in BEGIN.find_iter(s) {
        if m.start() < from {
            continue; // a header inside the block just taken
        }
        while ends
            .get(next_end)
            .is_some_and(|&(start, _)| start < m.end())
        {
            next_end += 1;
        }
        let end = match ends.get(next_end) {
            Some(&(_, end)) => end,
            None => {
                let run = s[m.end()..]
                    .bytes()
                    .take_while(|&b| b.is_ascii_alphanumeric() || b"+/=\\:,.- \t\r\n".contains(&b))
                    .count();
                // The run may end in the whitespace before the next sentence.
                m.end() + s[m.end()..m.end() + run].trim_end().len()
            }
        };
        add(hits, m.start(), end, Kind::PrivateKey);
        from = end;
    }
}

fn find_jwts(s: &str, hits: &mut Hits) {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?-u:\b)eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*").unwrap()
    });
    for m in RE.find_iter(s) {
        add(hits, m.start(), m.end(), Kind::Jwt);
    }
}

fn find_api_keys(s: &str, hits: &mut Hits) {
    // One alternative per documented token format. The `sk-` and `xox?-` families are generic
    // enough to hit hyphenated slugs (`sk-dungeon-level`, `xoxo-hugs-and-kisses`), so those
    // tokens must also contain a digit after the prefix, as every real one does.
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(concat!(
            r"(?P<loose>sk-[A-Za-z0-9_-]{20,}|xox[a-z]-[A-Za-z0-9-]{10,})",
            r"|(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{10,}",
            r"|whsec_[A-Za-z0-9]{20,}",
            r"|(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[0-9A-Z]{16}",
            r"|gh[pousr]_[A-Za-z0-9]{36,}",
            r"|ghs_[0-9]{1,20}_[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+",
            r"|github_pat_[A-Za-z0-9_]{22,}",
            r"|gl(?:pat|dt|soat|rt|cbt|imt|ptt|agent|oas|ft|ffct|sa)-[0-9A-Za-z_-]{20,}",
            r"|GR1348941[0-9A-Za-z_-]{20,}",
            r"|glc_[A-Za-z0-9+/]{32,}={0,2}",
            r"|glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}",
            r"|xapp-[0-9]-[A-Za-z0-9-]{10,}",
            r"|https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/+-]{8,}",
            r"|https://(?:(?:canary|ptb)\.)?discord(?:app)?\.com/api/webhooks/[0-9]{5,}/[A-Za-z0-9_-]{20,}",
            r"|AIza[0-9A-Za-z_-]{35}",
            r"|(?:AC|SK)[0-9a-z]{32}",
            r"|SG\.[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{16,64}",
            r"|npm_[A-Za-z0-9]{36}",
            r"|pypi-AgE[A-Za-z0-9_-]{50,}",
            r"|shp(?:at|ca|pa|ss)_[A-Za-z0-9]{32,64}",
            r"|key-[0-9a-f]{32}",
            r"|[0-9a-f]{32}-us[0-9]{1,2}",
            r"|do[por]_v1_[a-f0-9]{64}",
            r"|sq0atp-[A-Za-z0-9_-]{22,60}",
            r"|sq0csp-[A-Za-z0-9_-]{43}",
            r"|HRKU-AA[0-9A-Za-z_-]{58}",
            r"|ops_eyJ[A-Za-z0-9+/]{20,}={0,2}",
            r"|cf(?:at|ut|k)_[A-Za-z0-9]{40,}",
            r"|dapi[0-9a-fA-F]{32}(?:-[0-9])?",
            r"|dckr_pat_[A-Za-z0-9_-]{27,}",
            r"|figd_[A-Za-z0-9_-]{40,}",
            r"|gsk_[A-Za-z0-9]{52}",
            r"|hv[sbr]\.[A-Za-z0-9_-]{90,}",
            r"|hf_[A-Za-z]{34}",
            r"|lin_api_[A-Za-z0-9_]{32,}",
            r"|ntn_[0-9]{11}[A-Za-z0-9]{35}",
            r"|tskey-[a-z]{2,20}-[A-Za-z0-9_]{8,40}-[A-Za-z0-9_]{16,60}",
            r"|vc[pciark]_[A-Za-z0-9]{20,60}",
        ))
        .unwrap()
    });
    for c in RE.captures_iter(s) {
        let m = c.get(0).expect("whole match");
        // `_` may precede a token (`MY_tskey-...`), a letter or digit may not: `risk-free-...`
        // and `desk_live_...` are words. A fixed-length key followed by more characters is
        // something else.
        if char_before(s, m.start()).is_some_and(|ch| ch.is_ascii_alphanumeric())
            || char_after(s, m.end()).is_some_and(|ch| ch.is_ascii_alphanumeric())
        {
            continue;
        }
        if let Some(loose) = c.name("loose") {
            let (_, rest) = loose
                .as_str()
                .split_once('-')
                .expect("a prefix ends in '-'");
            if !rest.bytes().any(|b| b.is_ascii_digit()) {
                continue;
            }
        }
        add(hits, m.start(), m.end(), Kind::ApiKey);
    }
    if s.contains(":A") {
        find_telegram_tokens(s, hits);
    }
    if s.bytes().filter(|&b| b == b'.').count() >= 2 {
        find_discord_tokens(s, hits);
    }
}

/// Telegram bot tokens, `<bot id>:A<34 characters>`, also inside `.../bot<token>/...` URLs.
fn find_telegram_tokens(s: &str, hits: &mut Hits) {
    static RE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"[0-9]{5,16}:A[A-Za-z0-9_-]{34}").unwrap());
    for m in RE.find_iter(s) {
        if char_before(s, m.start()).is_some_and(|c| c.is_ascii_digit())
            || char_after(s, m.end()).is_some_and(is_token_char)
        {
            continue;
        }
        add(hits, m.start(), m.end(), Kind::ApiKey);
    }
}

/// Discord bot tokens: base64 of the bot id (24-26 characters, starting M/N/O), a 6-character
/// timestamp and an HMAC. Dotted code paths have the same shape
/// (`NotificationServiceHandler.update.handleIncomingMessage`), so a token must also have a
/// digit and both cases, as the base64 of a numeric id always does.
fn find_discord_tokens(s: &str, hits: &mut Hits) {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"[MNO][A-Za-z0-9_-]{23,25}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,38}").unwrap()
    });
    for m in RE.find_iter(s) {
        let t = m.as_str();
        if char_after(s, m.end()).is_some_and(is_token_char)
            || !t.bytes().any(|b| b.is_ascii_digit())
            || !t.bytes().any(|b| b.is_ascii_lowercase())
            || !t.bytes().skip(1).any(|b| b.is_ascii_uppercase())
        {
            continue;
        }
        add(hits, m.start(), m.end(), Kind::ApiKey);
    }
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn find_bearer(s: &str, hits: &mut Hits) {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)(?-u:\b)(bearer|basic)[ \t]+([A-Za-z0-9._~+/-]+=*)").unwrap()
    });
    for c in RE.captures_iter(s) {
        let scheme = c.get(1).expect("group 1").as_str();
        let token = c.get(2).expect("group 2");
        let t = token.as_str();
        // "the ring-bearer Frodo" and "basic training" are prose: a bearer token must look
        // random, and a Basic credential must decode to `user:password`.
        let ok = if scheme.eq_ignore_ascii_case("basic") {
            decodes_to_user_pass(t)
        } else {
            t.len() >= 8 && t.bytes().any(|b| b.is_ascii_digit())
        };
        if ok {
            add(hits, token.start(), token.end(), Kind::BearerToken);
        }
    }
}

fn decodes_to_user_pass(t: &str) -> bool {
    if t.len() < 4 {
        return false;
    }
    match base64_decode(t).map(String::from_utf8) {
        Some(Ok(text)) => text.contains(':') && !text.chars().any(char::is_control),
        _ => false,
    }
}

/// Decodes standard or URL-safe base64, padded or not; `None` on anything else.
fn base64_decode(t: &str) -> Option<Vec<u8>> {
    let body = t.trim_end_matches('=');
    if t.len() - body.len() > 2 || body.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in body.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The `user:password` part of a URL (`postgres://app:pw@db:5432/x`, `redis://:pw@host`).
/// The password may contain `@` (the last `@` before the path ends it); quotes, brackets,
/// whitespace, `/`, `?` and `#` end the candidate, so `http://host:5000/<%= @v %>` and
/// `"https://url:8000";@x` are not credentials.
fn find_url_credentials(s: &str, hits: &mut Hits) {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(concat!(
            r#"(?-u:\b)[A-Za-z][A-Za-z0-9+.-]{0,31}://"#,
            r#"([^\s:/?#@"'<>\[\]\\]*):([^\s/?#"'<>\[\]\\]+)@"#
        ))
        .unwrap()
    });
    for c in RE.captures_iter(s) {
        let user = c.get(1).expect("group 1");
        let password = c.get(2).expect("group 2");
        add(hits, user.start(), password.end(), Kind::SecretField);
    }
}

fn find_auth_ids(s: &str, hits: &mut Hits) {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(concat!(
            r"(?-u:\b)(?:auth0|google-oauth2|google-apps|github|gitlab|bitbucket|email|sms",
            r"|apple|facebook|twitter|windowslive|samlp|oauth2|oidc|waad|adfs|linkedin",
            r"|discord|twitch|microsoft|amazon|paypal|salesforce|yahoo|instagram|firebase)",
            r"\|([A-Za-z0-9._@+:|-]{3,})"
        ))
        .unwrap()
    });
    for c in RE.captures_iter(s) {
        let m = c.get(0).expect("whole match");
        let id = c.get(1).expect("group 1").as_str();
        // `apple|pear|plum` is a list in prose; subject ids always carry digits or an email.
        if id.bytes().any(|b| b.is_ascii_digit() || b == b'@') {
            add(hits, m.start(), m.end(), Kind::AuthId);
        }
    }
}

fn find_emails(s: &str, hits: &mut Hits) {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(concat!(
            r"[A-Za-z0-9._%+'-]+@",
            r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}(?-u:\b)"
        ))
        .unwrap()
    });
    for m in RE.find_iter(s) {
        // A local part cannot start with punctuation; "--bob@x.org" in prose means bob.
        let lead = m
            .as_str()
            .find(|c: char| c.is_ascii_alphanumeric())
            .unwrap_or(0);
        add(hits, m.start() + lead, m.end(), Kind::Email);
    }
}

fn find_ipv6(s: &str, hits: &mut Hits) {
    static RE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*").unwrap());
    for m in RE.find_iter(s) {
        let is_word = |c: char| c.is_alphanumeric() || c == '_';
        if char_before(s, m.start()).is_some_and(is_word)
            || char_after(s, m.end()).is_some_and(is_word)
        {
            continue;
        }
        let mut cand = m.as_str();
        // A sentence may end right after the address ("... from fe80::1.").
        if !looks_like_ipv6(cand) {
            match cand.strip_suffix(['.', ':']) {
                Some(c) if looks_like_ipv6(c) => cand = c,
                _ => continue,
            }
        }
        add(hits, m.start(), m.start() + cand.len(), Kind::Ipv6);
    }
}

/// A valid IPv6 address that is not a short compressed form: `3::2` (a chapter reference)
/// and `::1` (loopback, no PII) stay; `fe80::1`, `2001:db8::1` and full forms go.
fn looks_like_ipv6(c: &str) -> bool {
    if c.bytes().filter(|&b| b == b':').count() < 2 || Ipv6Addr::from_str(c).is_err() {
        return false;
    }
    if c.contains('.') || !c.contains("::") {
        return true;
    }
    let groups: Vec<&str> = c.split(':').filter(|g| !g.is_empty()).collect();
    groups.len() >= 4 || groups.iter().any(|g| g.len() >= 3)
}

fn find_ipv4(s: &str, hits: &mut Hits) {
    static RE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}").unwrap());
    let mut from = 0;
    while let Some(m) = RE.find_at(s, from) {
        if is_ipv4_at(s, m.start(), m.end()) {
            add(hits, m.start(), m.end(), Kind::Ipv4);
            from = m.end();
        } else {
            // Matches are ASCII digits, so start + 1 is a char boundary; retrying there finds
            // a later quad that overlaps a rejected one.
            from = m.start() + 1;
        }
    }
}

/// The dotted quad at `start..end` stands alone: not inside a longer dotted run
/// (`1.2.3.4.5`), not after `v`, a letter, a digit or a dot (`v1.2.3.4`), not followed by a
/// letter or by `-` and a letter (`2.0.10.1-beta` is a version), every octet at most 255.
fn is_ipv4_at(s: &str, start: usize, end: usize) -> bool {
    if char_before(s, start).is_some_and(|c| c.is_alphanumeric() || c == '.' || c == '_') {
        return false;
    }
    let rest = &s[end..];
    let mut after = rest.chars();
    match after.next() {
        Some(c) if c.is_alphanumeric() || c == '_' => return false,
        Some('.') if after.next().is_some_and(|c| c.is_ascii_digit()) => return false,
        Some('-') if after.next().is_some_and(char::is_alphabetic) => return false,
        _ => {}
    }
    s[start..end]
        .split('.')
        .all(|o| o.parse::<u16>().is_ok_and(|n| n <= 255))
}

fn find_assignments(s: &str, hits: &mut Hits) {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(concat!(
            r#"(?-u:\b)([A-Za-z_][A-Za-z0-9_.-]{0,63})["']?[ \t]*(:=|=>|[:=])[ \t]*["']?"#,
            r"([A-Za-z0-9_./+~-]{8,}={0,2})"
        ))
        .unwrap()
    });
    for c in RE.captures_iter(s) {
        let name = c.get(1).expect("group 1").as_str();
        let sep = c.get(2).expect("group 2").as_str();
        let value = c.get(3).expect("group 3");
        let has_key_word = || split_words(name).iter().any(|w| w == "key" || w == "keys");
        let Some(class) = classify_field(name) else {
            // Names the field rules leave alone (`key`, `AccountKey`, `secret_door`) still
            // guard a value that reads as random: a game id or word does not.
            if is_key_like_name(name) && looks_random(value.as_str()) {
                let kind = if has_key_word() {
                    Kind::ApiKey
                } else {
                    Kind::SecretField
                };
                add(hits, value.start(), value.end(), kind);
            }
            continue;
        };
        // `password: swordfish` in dialogue is usually a puzzle answer; config-style
        // `password=swordfish` and anything with a digit are treated as real.
        if sep == ":" && !value.as_str().bytes().any(|b| b.is_ascii_digit()) {
            continue;
        }
        let kind = match class {
            FieldClass::AuthId => Kind::AuthId,
            _ if has_key_word() => Kind::ApiKey,
            _ => Kind::SecretField,
        };
        add(hits, value.start(), value.end(), kind);
    }
}

/// Words that make a key a non-secret: `public_key`, `primaryKey`, `cache_key`.
const NON_SECRET_KEY_QUALIFIERS: &[&str] = &[
    "public",
    "pub",
    "primary",
    "foreign",
    "partition",
    "sort",
    "cache",
    "idempotency",
    "row",
    "hash",
    "lookup",
    "index",
    "sequence",
    "schema",
    "bucket",
    "object",
];

/// A name with a key-like word that [`classify_field`] does not take: bare `key`, `AccountKey`,
/// `door_key`, `secret_door`; not counters, metadata, or public/primary/cache keys.
fn is_key_like_name(name: &str) -> bool {
    let words = split_words(name);
    let Some(last) = words.last() else {
        return false;
    };
    if META_LAST_WORDS.contains(&last.as_str())
        || words.iter().any(|w| COUNT_WORDS.contains(&w.as_str()))
    {
        return false;
    }
    words.iter().enumerate().any(|(i, w)| match w.as_str() {
        "key" | "keys" => i == 0 || !NON_SECRET_KEY_QUALIFIERS.contains(&words[i - 1].as_str()),
        "secret" | "secrets" | "token" | "tokens" | "auth" | "creds" | "cred" | "pass" | "pw" => {
            true
        }
        w => is_password_word(w),
    })
}

/// AWS secret access keys, 40 base64 characters, within 40 characters after `aws`, `secret`
/// or `access key` on the same line: `aws_secret_access_key = ...`, `--aws-secret-access-key
/// ...`, `the AWS secret key is ...`. The lazy, bounded gap keeps this one linear pass.
fn find_aws_secrets(s: &str, hits: &mut Hits) {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(concat!(
            r"(?i-u:aws|secret|access[ _.-]?key)",
            r"[^\n]{0,40}?[^A-Za-z0-9/+]",
            r"([A-Za-z0-9/+]{40})"
        ))
        .unwrap()
    });
    for c in RE.captures_iter(s) {
        let t = c.get(1).expect("group 1");
        if char_after(s, t.end()).is_some_and(|ch| ch.is_ascii_alphanumeric() || "/+=".contains(ch))
            || !looks_random(t.as_str())
        {
            continue;
        }
        add(hits, t.start(), t.end(), Kind::ApiKey);
    }
}

/// Bits per character below which a value is too repetitive to be a generated secret.
const MIN_ENTROPY_BITS: f64 = 3.0;

/// True for a value that reads as generated rather than written: at least 20 characters
/// (padding aside) with a letter and a digit, Shannon entropy of at least
/// [`MIN_ENTROPY_BITS`] per character, and fewer than half of its letters in word-like runs
/// (`Sword`, `Flames`, `DRAGON`), so game ids such as `SwordOfFlames_Level2` stay. Hex
/// strings, UUIDs and `prefix_<hex>` ids never count: exports carry SHA-256 content and chain
/// hashes and UUIDs. One pass over the value, so linear in its length.
fn looks_random(v: &str) -> bool {
    let body = v.trim_end_matches('=');
    if body.len() < 20 || !body.is_ascii() {
        return false;
    }
    let bytes = body.as_bytes();
    let is_hexish = |t: &[u8]| t.iter().all(|b| b.is_ascii_hexdigit() || *b == b'-');
    if is_hexish(bytes) {
        return false;
    }
    if let Some(i) = body.find(['_', '-']) {
        let (prefix, rest) = (&bytes[..i], &bytes[i + 1..]);
        if i <= 16 && prefix.iter().all(u8::is_ascii_alphabetic) && is_hexish(rest) {
            return false;
        }
    }
    let letters = bytes.iter().filter(|b| b.is_ascii_alphabetic()).count();
    if letters == 0 || !bytes.iter().any(u8::is_ascii_digit) {
        return false;
    }
    let mut freq = [0u32; 128];
    for &b in bytes {
        freq[usize::from(b)] += 1;
    }
    let n = bytes.len() as f64;
    let entropy: f64 = freq
        .iter()
        .filter(|&&f| f > 0)
        .map(|&f| {
            let p = f64::from(f) / n;
            -p * p.log2()
        })
        .sum();
    entropy >= MIN_ENTROPY_BITS && word_letters(bytes) * 2 < letters
}

/// Letters of `t` in word-like runs: 3+ lowercase letters, or a capital and 2+ lowercase,
/// with a vowel (`Sword`, `flames`, `The`, `Crypt`), or a whole all-capital run of 4+ letters
/// with a vowel (`DRAGON`, but not `FEMI` glued to `wJalrXUtn`). Random base62 has few such
/// runs: a capital and two lowercase letters with a vowel start about one position in 30.
fn word_letters(t: &[u8]) -> usize {
    let has_vowel = |p: &[u8]| {
        p.iter().any(|b| {
            matches!(
                b.to_ascii_lowercase(),
                b'a' | b'e' | b'i' | b'o' | b'u' | b'y'
            )
        })
    };
    let mut total = 0;
    for run in t
        .split(|b| !b.is_ascii_alphabetic())
        .filter(|r| !r.is_empty())
    {
        if run.len() >= 4 && run.iter().all(u8::is_ascii_uppercase) {
            if has_vowel(run) {
                total += run.len();
            }
            continue;
        }
        // Split the run before each capital that follows a lowercase letter: `SwordOf`.
        let mut start = 0;
        for i in 1..=run.len() {
            if i == run.len() || (run[i].is_ascii_uppercase() && run[i - 1].is_ascii_lowercase()) {
                let piece = &run[start..i];
                let lower = match piece.first() {
                    Some(b) if b.is_ascii_uppercase() => &piece[1..],
                    _ => piece,
                };
                if piece.len() >= 3
                    && lower.len() >= 2
                    && lower.iter().all(u8::is_ascii_lowercase)
                    && has_vowel(lower)
                {
                    total += piece.len();
                }
                start = i;
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names() {
        let secret = [
            "password",
            "userPassword",
            "passwd",
            "pwd",
            "api_key",
            "apiKey",
            "APIKey",
            "apikey",
            "X-Api-Key",
            "access_key",
            "private_key",
            "secret_key",
            "client_secret",
            "signing_key",
            "encryption_key",
            "auth_key",
            "license_key",
            "session_key",
            "access_token",
            "accessToken",
            "refresh_token",
            "Authorization",
            "credentials",
            "secret",
            "secret_access_key",
            "config.apiKey",
        ];
        for name in secret {
            assert_eq!(classify_field(name), Some(FieldClass::Secret), "{name}");
        }
        for name in ["token", "tokens", "cookie", "Set-Cookie", "token_id"] {
            assert_eq!(
                classify_field(name),
                Some(FieldClass::StringsOnly),
                "{name}"
            );
        }
        for name in [
            "auth_id",
            "authId",
            "user_auth_id",
            "firebase_uid",
            "auth0_user_id",
        ] {
            assert_eq!(classify_field(name), Some(FieldClass::AuthId), "{name}");
        }
        let plain = [
            "key",
            "keys",
            "monkey",
            "keyboard",
            "turkey",
            "door_key",
            "hotkey",
            "tokens_collected",
            "max_tokens",
            "token_type",
            "password_changed_at",
            "secret_door",
            "secret_passage",
            "secrets_found",
            "passage",
            "tokenizer",
            "sub",
            "session_id",
            "user_id_hash",
            "pins",
            "",
        ];
        for name in plain {
            assert_eq!(classify_field(name), None, "{name}");
        }
    }

    #[test]
    fn random_values() {
        let random = [
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "ahDzWAqqBHgpAeUBUULuU0gA4p09rt0WDAsUOmFg",
            "8sKq2LmZ0pXv7RtY4wNb3Jc6",
            "lJzRc1YdHaAA2KCNJJ1tkYwF/+mKK6Ygw0NGe170Xu592euJv2wYUtBlV8z+qnlcNQSnIYVTkLWntUO1F8j8rQ==",
            "k3j4h5g6f7d8s9a0q1w2e3r4",
        ];
        for v in random {
            assert!(looks_random(v), "{v}");
        }
        let written = [
            "SwordOfFlames_Level2",
            "DRAGON_SLAYER_STAGE2_NORTHGATE",
            "Crypt_Of_The_Lich_King_3",
            "quest_DragonSlayer_Stage2",
            "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb",
            "550e8400-e29b-41d4-a716-446655440000",
            "item_4f9c2a1b8e7d6c5b3a2f",
            "aaaaaaaaaaaaaaaaaaaaaaaa1",
            "NoDigitsInThisRandomLookingXq",
            "short1Ab",
        ];
        for v in written {
            assert!(!looks_random(v), "{v}");
        }
        assert_eq!(word_letters(b"SwordOfFlames"), 11);
        assert_eq!(word_letters(b"wJalrXUtnFEMI"), 4);
    }

    #[test]
    fn key_like_names() {
        for name in [
            "key",
            "AccountKey",
            "door_key",
            "secret_door",
            "boarding_pass",
            "X-Creds",
        ] {
            assert!(is_key_like_name(name), "{name}");
        }
        for name in [
            "public_key",
            "primaryKey",
            "cache_key",
            "token_type",
            "tokens_collected",
            "keyboard",
            "monkey",
            "author",
            "avatar",
            "",
        ] {
            assert!(!is_key_like_name(name), "{name}");
        }
    }

    #[test]
    fn base64() {
        assert_eq!(base64_decode("dXNlcjpwYXNz").unwrap(), b"user:pass");
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert_eq!(base64_decode("YWI").unwrap(), b"ab");
        assert!(base64_decode("a").is_none());
        assert!(base64_decode("a!bc").is_none());
    }
}
