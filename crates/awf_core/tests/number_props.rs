//! Properties of number canonicalization over arbitrary doubles, checked against Rust's own
//! float formatting (an implementation this project did not write): a double's exact decimal
//! expansion and its shortest form both canonicalize to the double's ES6 form, and the exact
//! value plus one unit in its last place does not.

use awf_core::canonical::{canonical_string, decimal_eq, format_f64};
use awf_core::json::parse_str;
use proptest::prelude::*;

/// The exact decimal value of `x` in scientific notation (Rust prints every digit asked for
/// exactly; 766 fractional digits hold any double), with the mantissa's trailing zeros cut.
fn exact_text(x: f64) -> String {
    let s = format!("{:.766e}", x);
    let (mantissa, exp) = s.split_once('e').unwrap();
    let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
    format!("{mantissa}e{exp}")
}

/// The same text with its last significant digit moved by one (not a double any more).
fn nudged(exact: &str) -> String {
    let (mantissa, exp) = exact.split_once('e').unwrap();
    let mut m: Vec<u8> = mantissa.bytes().collect();
    let last = m.iter().rposition(u8::is_ascii_digit).unwrap();
    m[last] = if m[last] == b'9' { b'8' } else { m[last] + 1 };
    format!("{}e{exp}", String::from_utf8(m).unwrap())
}

fn canon(text: &str) -> Result<String, awf_core::Error> {
    canonical_string(&parse_str(text).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn exact_values_and_shortest_forms_name_their_double(bits in any::<u64>()) {
        let x = f64::from_bits(bits);
        prop_assume!(x.is_finite() && x != 0.0);
        let es6 = format_f64(x).unwrap();
        let exact = exact_text(x);
        prop_assert_eq!(canon(&exact).unwrap(), es6.clone(), "exact {}", exact);
        prop_assert_eq!(canon(&es6).unwrap(), es6.clone(), "shortest");
        // One unit more in the last exact digit: accepted only when that text names another
        // double just as exactly (as any integer below 2^53 does), never rounded.
        let off = nudged(&exact);
        let y = off.parse::<f64>().unwrap();
        let names_y = decimal_eq(&off, &exact_text(y)) == Some(true)
            || decimal_eq(&off, &format_f64(y).unwrap()) == Some(true);
        match canon(&off) {
            Ok(c) => prop_assert!(names_y && c == format_f64(y).unwrap(), "{} -> {}", off, c),
            Err(_) => prop_assert!(!names_y, "{} refused", off),
        }
    }

    #[test]
    fn integers_that_are_doubles_pass_and_their_neighbours_do_not(k in 54u32..1000, m in 1u64..(1 << 53)) {
        let x = (m as f64) * 2f64.powi(k as i32 - 53);
        prop_assume!(x.is_finite() && x >= 9007199254740992.0);
        let exact = format!("{x:.0}");
        prop_assert_eq!(canon(&exact).unwrap(), format_f64(x).unwrap(), "{}", exact);
        let mut plus_one = exact.into_bytes();
        let last = plus_one.len() - 1;
        plus_one[last] = if plus_one[last] == b'9' { b'8' } else { plus_one[last] + 1 };
        let plus_one = String::from_utf8(plus_one).unwrap();
        prop_assert!(canon(&plus_one).is_err(), "{} accepted", plus_one);
    }
}

#[test]
fn texts_of_one_double_are_one_number_everywhere() {
    use awf_core::json::value_eq;
    for (a, b) in [
        ("1152921504606846976", "1152921504606847000"),
        (
            "0.1000000000000000055511151231257827021181583404541015625",
            "0.1",
        ),
        ("1.5e20", "150000000000000000000"),
    ] {
        let (x, y) = (parse_str(a).unwrap(), parse_str(b).unwrap());
        assert!(
            value_eq(&x, &y),
            "{a} and {b} hash alike, so they are equal"
        );
        assert_eq!(canon(a).unwrap(), canon(b).unwrap());
    }
    assert!(!value_eq(
        &parse_str("0.1").unwrap(),
        &parse_str("0.10000000000000000001").unwrap()
    ));
    assert!(!value_eq(
        &parse_str("1").unwrap(),
        &parse_str("2").unwrap()
    ));
}

#[test]
fn a_huge_literal_is_refused_with_a_short_message() {
    let text = format!("0.{}", "1".repeat(1_000_000));
    let e = canon(&text).unwrap_err();
    assert!(e.message.len() < 400, "{} bytes", e.message.len());
}
