//! The extension's `jsonb` argument and result type.
//!
//! pgrx's own `JsonB` reads an argument by parsing jsonb's text with serde_json and *panics*
//! when that fails, so a document nested deeper than serde_json's 128 levels ended in XX000.
//! This type reads the same text through `awf_core::json::parse`, which refuses such a document
//! with 22023 and a message naming the limit; everything else is pgrx's behavior.

use crate::errors::raise;
use awf_core::Error;
use pgrx::callconv::{Arg, ArgAbi, BoxRet, FcInfo};
use pgrx::datum::Datum;
use pgrx::nullable::Nullable;
use pgrx::pgrx_sql_entity_graph::metadata::{
    ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable, TypeOrigin,
};
use pgrx::{direct_function_call, pg_sys, FromDatum, IntoDatum};
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
        // SAFETY: the caller hands us a jsonb datum; jsonb_out returns a palloc'd C string.
        let text = unsafe {
            direct_function_call::<&core::ffi::CStr>(pg_sys::jsonb_out, &[Some(datum)])
                .expect("jsonb_out returns a string")
        };
        let parsed = awf_core::json::parse(text.to_bytes());
        // SAFETY: the string came from palloc and is not used again.
        unsafe { pg_sys::pfree(text.as_ptr() as *mut core::ffi::c_void) };
        match parsed {
            Ok(v) => Some(JsonB(v)),
            Err(e) => raise(
                Error::invalid(format!(
                    "a jsonb argument cannot be read: {} (documents may nest at most 128 levels)",
                    e.message
                )),
                "jsonb argument",
            ),
        }
    }
}

impl IntoDatum for JsonB {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        pgrx::JsonB(self.0).into_datum()
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
