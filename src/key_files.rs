//! Secret files the server process reads (the master keyring, the sync signing secret): read
//! and parsed once per backend, and again only when the file's modification time changes, so
//! a call that needs one costs a `stat`, not a read and a parse.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::SystemTime;

/// Each file's modification time when it was read, and what it parsed to.
type Cache = HashMap<String, (SystemTime, Rc<dyn Any>)>;

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(HashMap::new());
}

/// The file at `path` (named by the setting `setting`) parsed by `parse`; a message naming
/// the setting and the path when it cannot be read or parsed.
pub fn load<T: Clone + 'static>(
    setting: &str,
    path: &str,
    parse: impl FnOnce(&str) -> awf_core::Result<T>,
) -> Result<T, String> {
    let unreadable =
        |e: std::io::Error| format!("{setting} names {path}, which cannot be read: {e}");
    let mtime = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map_err(unreadable)?;
    let hit = CACHE.with(|c| {
        c.borrow()
            .get(path)
            .filter(|(t, _)| *t == mtime)
            .and_then(|(_, v)| v.downcast_ref::<T>().cloned())
    });
    if let Some(v) = hit {
        return Ok(v);
    }
    let text = std::fs::read_to_string(path).map_err(unreadable)?;
    let value = parse(&text).map_err(|e| format!("{setting} {path}: {e}"))?;
    CACHE.with(|c| {
        c.borrow_mut()
            .insert(path.to_owned(), (mtime, Rc::new(value.clone())))
    });
    Ok(value)
}
