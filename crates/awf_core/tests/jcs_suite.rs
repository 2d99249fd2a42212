//! RFC 8785 conformance: the cyberphone/json-canonicalization test files and 100,000 ES6
//! number vectors, run against awf_core's canonicalizer.

mod common;

use awf_core::canonical::{canonical_bytes, canonical_string, format_f64};
use awf_core::json::parse;
use awf_core::ErrorKind;
use serde_json::{Number, Value};

/// Reads `values.json` the way the RFC's reference (ES6 `JSON.parse`) does: every number
/// becomes the nearest double. awf_core refuses to do that rounding itself, so the
/// suite file that relies on it is checked both ways.
fn as_doubles(v: &Value) -> Value {
    match v {
        Value::Number(n) => {
            let x = n.as_f64().expect("suite numbers are finite");
            Value::Number(format_f64(x).unwrap().parse::<Number>().unwrap())
        }
        Value::Array(a) => Value::Array(a.iter().map(as_doubles).collect()),
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), as_doubles(v))).collect())
        }
        other => other.clone(),
    }
}

#[test]
fn rfc8785_files_are_byte_exact() {
    let dir = common::suites().join("jcs-rfc8785");
    let mut names: Vec<_> = std::fs::read_dir(dir.join("input"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    assert!(!names.is_empty());
    let mut exact = 0;
    let mut failures = Vec::new();
    for name in &names {
        let input = std::fs::read(dir.join("input").join(name)).unwrap();
        let expected = std::fs::read(dir.join("output").join(name)).unwrap();
        let value = parse(&input).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got = match canonical_bytes(&value) {
            Ok(bytes) => bytes,
            // The one input number that is not a double's shortest form: 333333333.33333329
            // is only representable as 333333333.3333333, so strict canonicalization must
            // refuse it by name; read as doubles (what the RFC assumes) it must match exactly.
            Err(e) if name == "values.json" => {
                assert_eq!(e.kind, ErrorKind::InvalidInput);
                assert!(e.message.contains("333333333.33333329"), "{}", e.message);
                canonical_bytes(&as_doubles(&value)).unwrap()
            }
            Err(e) => panic!("{name}: {e}"),
        };
        if got == expected {
            exact += 1;
        } else {
            failures.push(format!(
                "{name}:\n  got      {}\n  expected {}",
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&expected)
            ));
        }
    }
    println!("jcs: {exact}/{} files byte-exact", names.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn es6_number_vectors() {
    let path = common::suites().join("jcs-rfc8785/es6testfile_100k.txt");
    let text = std::fs::read_to_string(&path).unwrap();
    let (mut total, mut formatted, mut reparsed) = (0, 0, 0);
    let mut failures = Vec::new();
    for (line_no, line) in text.lines().enumerate() {
        let (hex_bits, expected) = line.split_once(',').expect("hexbits,expected");
        total += 1;
        let bits = u64::from_str_radix(hex_bits, 16).unwrap();
        let x = f64::from_bits(bits);
        match format_f64(x) {
            Ok(s) if s == expected => formatted += 1,
            other => failures.push(format!("line {}: {line} -> {other:?}", line_no + 1)),
        }
        // The parse path: the expected text is a double's shortest form, so it names that
        // double exactly and must canonicalize to itself (plain integers beyond 2^53 too).
        let value = parse(expected.as_bytes()).unwrap();
        match canonical_string(&value) {
            Ok(s) if s == expected => reparsed += 1,
            other => failures.push(format!(
                "line {} reparsed: {line} -> {other:?}",
                line_no + 1
            )),
        }
    }
    println!(
        "jcs: {formatted}/{total} numbers formatted; parse path: {reparsed}/{total} canonicalized \
         to themselves"
    );
    assert_eq!(total, 100_000);
    assert!(
        failures.is_empty(),
        "{} failures, first: {:#?}",
        failures.len(),
        &failures[..failures.len().min(20)]
    );
    assert_eq!(reparsed, total);
}
