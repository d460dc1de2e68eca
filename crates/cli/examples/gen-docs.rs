//! Regenerates crates/cli/man/ and crates/cli/completions/ from the command-line
//! definition: `cargo run -p wtmpdb-cli --example gen-docs`. A test fails when the committed
//! files are stale.

fn main() -> std::io::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    wtmpdb_cli::generate_docs(&root.join("man"), &root.join("completions"))
}
