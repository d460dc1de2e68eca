fn main() {
    std::process::exit(wtmpdb_cli::main(std::env::args_os().collect()));
}
