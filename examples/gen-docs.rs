//! Regenerates man/ and completions/ from the command-line definition:
//! `cargo run --example gen-docs`. A test fails when the committed files are stale.

fn main() -> std::io::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    wtmpdb::cli::generate_docs(&root.join("man"), &root.join("completions"))
}
