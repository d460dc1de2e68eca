//! A program that asks for SQLite's settings for short runs before its first connection
//! gets them (a test binary of its own: the settings are the process's, made once).

#[test]
fn a_short_run_keeps_no_memory_statistics() {
    wtmpdb::sqlite::for_short_runs();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wtmp.db");
    let db = wtmpdb::Database::open_read_write(&path).unwrap();
    drop(db);
    let db = wtmpdb::Database::open_read_only(&path).unwrap();
    assert!(db.is_empty().unwrap());
    assert_eq!(wtmpdb::sqlite::memory_in_use(), 0);
}
