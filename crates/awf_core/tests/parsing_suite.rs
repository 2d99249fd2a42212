//! JSONTestSuite (nst/JSONTestSuite) against `awf_core::json::parse`: `y_` files must parse,
//! `n_` files must be rejected, `i_` files may go either way; nothing may panic. Every value
//! that parses must also canonicalize or be refused with `InvalidInput`, never panic.

mod common;

use awf_core::canonical::canonical_bytes;
use awf_core::json::parse;
use awf_core::ErrorKind;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What happened to one file: parsed (and how canonicalization went), rejected, or panicked.
enum Outcome {
    Parsed { canonical: Result<(), String> },
    Rejected(String),
    Panicked,
}

fn run(bytes: &[u8]) -> Outcome {
    let parsed = match catch_unwind(AssertUnwindSafe(|| parse(bytes))) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return Outcome::Rejected(e.message),
        Err(_) => return Outcome::Panicked,
    };
    let canonical = match catch_unwind(AssertUnwindSafe(|| canonical_bytes(&parsed))) {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) if e.kind == ErrorKind::InvalidInput => Err(e.message),
        Ok(Err(e)) => Err(format!("wrong error kind {:?}: {}", e.kind, e.message)),
        Err(_) => return Outcome::Panicked,
    };
    Outcome::Parsed { canonical }
}

#[test]
fn json_test_suite_parsing() {
    let dir = common::suites().join("json-parsing/test_parsing");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let (mut y, mut n, mut i) = (0, 0, 0);
    let (mut i_parsed, mut refused_numbers) = (0, Vec::new());
    let mut failures = Vec::new();
    for name in &names {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let outcome = run(&bytes);
        if let Outcome::Parsed {
            canonical: Err(msg),
        } = &outcome
        {
            if msg.starts_with("wrong error kind") {
                failures.push(format!("{name}: canonicalization: {msg}"));
            } else {
                refused_numbers.push(format!("{name}: {msg}"));
            }
        }
        match (name.as_bytes()[0], &outcome) {
            (_, Outcome::Panicked) => failures.push(format!("{name}: panicked")),
            (b'y', Outcome::Parsed { .. }) => y += 1,
            (b'y', Outcome::Rejected(e)) => failures.push(format!("{name}: rejected: {e}")),
            (b'n', Outcome::Rejected(_)) => n += 1,
            (b'n', Outcome::Parsed { .. }) => failures.push(format!("{name}: accepted")),
            (b'i', o) => {
                i += 1;
                if matches!(o, Outcome::Parsed { .. }) {
                    i_parsed += 1;
                }
            }
            _ => failures.push(format!("{name}: unexpected file name")),
        }
    }
    println!(
        "json-parsing: {y} y accepted, {n} n rejected, {i} i handled ({i_parsed} parsed); \
         {} parsed values refused by canonicalization",
        refused_numbers.len()
    );
    for r in &refused_numbers {
        println!("  {r}");
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(y + n + i, names.len());
    assert!(y > 90 && n > 180 && i > 30, "suite looks incomplete");
}
