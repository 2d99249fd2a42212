//! The extension's `jsonb` argument and result type.
//!
//! pgrx's own `JsonB` goes through text both ways: `jsonb_out` then serde_json to read (and it
//! *panics*, XX000, on a document nested deeper than serde_json's 128 levels), serde_json then
//! `jsonb_in` to write. This type converts directly between jsonb and `serde_json::Value`
//! ([`read`] with PostgreSQL's jsonb iterator, [`build`] with `pushJsonbValue`), accepting and
//! refusing exactly what the text round trip did, with 22023 for a too-deep document.

/// `serde_json::Value` to jsonb.
mod build;
/// jsonb to `serde_json::Value`.
mod read;

use pgrx::callconv::{Arg, ArgAbi, BoxRet, FcInfo};
use pgrx::datum::Datum;
use pgrx::nullable::Nullable;
use pgrx::pgrx_sql_entity_graph::metadata::{
    ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable, TypeOrigin,
};
use pgrx::{pg_sys, FromDatum, IntoDatum};
use serde_json::Value;

/// A PostgreSQL `jsonb` value as a `serde_json::Value`.
#[derive(Debug, Clone)]
pub struct JsonB(pub Value);

impl FromDatum for JsonB {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _: pg_sys::Oid,
    ) -> Option<JsonB> {
        if is_null {
            return None;
        }
        // SAFETY: the caller hands us a non-NULL jsonb datum.
        Some(JsonB(unsafe { read::from_datum(datum) }))
    }
}

impl IntoDatum for JsonB {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        Some(build::to_datum(&self.0))
    }

    fn type_oid() -> pg_sys::Oid {
        pg_sys::JSONBOID
    }
}

// SAFETY: the argument is unboxed through FromDatum, as pgrx does for its own JsonB.
unsafe impl<'fcx> ArgAbi<'fcx> for JsonB {
    unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
        let index = arg.index();
        unsafe {
            arg.unbox_arg_using_from_datum()
                .unwrap_or_else(|| panic!("argument {index} must not be null"))
        }
    }

    unsafe fn unbox_nullable_arg(arg: Arg<'_, 'fcx>) -> Nullable<Self> {
        unsafe { arg.unbox_arg_using_from_datum().into() }
    }
}

// SAFETY: the datum comes from IntoDatum, as pgrx does for its own JsonB.
unsafe impl BoxRet for JsonB {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> Datum<'fcx> {
        match self.into_datum() {
            Some(datum) => unsafe { fcinfo.return_raw_datum(datum) },
            None => fcinfo.return_null(),
        }
    }
}

// SAFETY: maps to the built-in jsonb type, exactly like pgrx's own JsonB.
unsafe impl SqlTranslatable for JsonB {
    const TYPE_IDENT: &'static str = pgrx::pgrx_resolved_type!(JsonB);
    const TYPE_ORIGIN: TypeOrigin = TypeOrigin::External;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> = Ok(SqlMappingRef::literal("jsonb"));
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> =
        Ok(ReturnsRef::One(SqlMappingRef::literal("jsonb")));
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::JsonB;
    use pgrx::prelude::*;
    use serde_json::{json, Value};

    /// What the extension builds equals what `jsonb_in` makes of the same text, and reads back
    /// as the same value (top-level scalars are jsonb's raw-scalar arrays).
    #[pg_test]
    fn built_values_are_what_jsonb_in_makes() {
        for doc in [
            r#"{"b": 1, "a": [true, false, null, "x"], "": {}, "aa": []}"#,
            r#"[1.50, -0, 1e3, "é\u2028\"\\"]"#,
            "5",
            r#""lonely""#,
            "null",
            "[[[[]]], {}]",
        ] {
            let v: Value = serde_json::from_str(doc).unwrap();
            let same = Spi::get_one_with_args::<bool>(
                "SELECT $1 = $2::jsonb AND $1::text = $2::jsonb::text",
                &[JsonB(v.clone()).into(), doc.into()],
            )
            .unwrap();
            assert_eq!(same, Some(true), "{doc}");
            // Read back, numbers carry numeric's text, as jsonb_out prints them (1e3 is 1000).
            let back = Spi::get_one_with_args::<JsonB>("SELECT $1::jsonb", &[doc.into()])
                .unwrap()
                .unwrap();
            let printed = Spi::get_one_with_args::<String>("SELECT $1::jsonb::text", &[doc.into()])
                .unwrap()
                .unwrap();
            let want: Value = serde_json::from_str(&printed).unwrap();
            assert_eq!(back.0, want, "{doc}");
        }
    }

    /// jsonb cannot hold a NUL character; `jsonb_in` refuses "\u0000" with 22P05, and so does
    /// building a value that holds one (in a string or in a key).
    #[pg_test(error = "unsupported Unicode escape sequence")]
    fn a_nul_in_a_string_is_refused() {
        let _ = super::build::to_datum(&json!({"a": "x\u{0}y"}));
    }

    #[pg_test(error = "unsupported Unicode escape sequence")]
    fn a_nul_in_a_key_is_refused() {
        let _ = super::build::to_datum(&json!({"a\u{0}": 1}));
    }
}
