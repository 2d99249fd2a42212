//! The `zip` export format: the JSON Lines archive (with its per-line checksums and manifest)
//! deflated into a one-entry zip file, for tools and people that expect a download to be a
//! zip. The JSON Lines text inside is byte for byte the `jsonl` export.

use crate::error::{Error, Result};
use std::io::Write;

/// The zip file holding `jsonl` as the entry `name` (deflated; the entry's time is fixed, so
/// the same archive always makes the same bytes).
pub fn jsonl_to_zip(name: &str, jsonl: &str) -> Result<Vec<u8>> {
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default())
        .large_file(jsonl.len() as u64 >= u32::MAX as u64);
    let fail = |e: &dyn std::fmt::Display| Error::invalid(format!("cannot build the zip: {e}"));
    out.start_file(name, options).map_err(|e| fail(&e))?;
    out.write_all(jsonl.as_bytes()).map_err(|e| fail(&e))?;
    Ok(out.finish().map_err(|e| fail(&e))?.into_inner())
}

/// The entry name of a save's export: `save-<id>.jsonl`.
pub fn entry_name(save_id: &str) -> String {
    format!("save-{}.jsonl", save_id.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_entry_round_trips_and_the_bytes_are_stable() {
        let text = "{\"a\":1}\n".repeat(1000);
        let z = jsonl_to_zip("save-x.jsonl", &text).unwrap();
        assert_eq!(&z[..4], b"PK\x03\x04");
        assert!(z.len() < text.len() / 10, "deflated: {}", z.len());
        assert_eq!(z, jsonl_to_zip("save-x.jsonl", &text).unwrap());
        let mut r = zip::ZipArchive::new(std::io::Cursor::new(z)).unwrap();
        assert_eq!(r.len(), 1);
        let mut back = String::new();
        std::io::Read::read_to_string(&mut r.by_name("save-x.jsonl").unwrap(), &mut back).unwrap();
        assert_eq!(back, text);
        assert_eq!(entry_name("ABC"), "save-abc.jsonl");
    }
}
