//! The committed man pages and completions are what the command-line definition generates.

#[test]
fn man_pages_and_completions_are_up_to_date() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let (man, comp) = (tmp.path().join("man"), tmp.path().join("completions"));
    wtmpdb_cli::generate_docs(&man, &comp).unwrap();
    for (fresh, committed) in [(man, root.join("man")), (comp, root.join("completions"))] {
        for entry in std::fs::read_dir(&fresh).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name();
            let want = std::fs::read(entry.path()).unwrap();
            let have = std::fs::read(committed.join(&name)).unwrap_or_default();
            assert!(
                want == have,
                "{} is stale: run `cargo run -p wtmpdb-cli --example gen-docs`",
                committed.join(&name).display()
            );
        }
    }
}
