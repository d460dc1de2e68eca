fn main() {
    std::process::exit(wtmpdb::cli::main(std::env::args_os().collect()));
}
