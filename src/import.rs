//! Import of legacy wtmp files (placeholder until the importer lands).
use std::path::Path;

use crate::storage::Database;

pub fn import_file(_db: &mut Database, _path: &Path, _progress: bool) -> Result<(), String> {
    Err("import is not implemented yet".into())
}
