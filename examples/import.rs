//! Imports legacy wtmp files into a database, for timing the import without the CLI:
//! `cargo run --release --example import -- DB FILE...`

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use wtmpdb::Database;
use wtmpdb::import::import_files;

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let Some((db_path, files)) = args.split_first().filter(|(_, f)| !f.is_empty()) else {
        eprintln!("usage: import DB FILE...");
        return ExitCode::FAILURE;
    };
    let start = Instant::now();
    let mut db = match Database::open_read_write(db_path) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    match import_files(&mut db, files, true) {
        Ok(done) => {
            for s in done {
                println!(
                    "{}: {} records, {} sessions, {} boots",
                    s.path.display(),
                    s.records,
                    s.sessions,
                    s.boots
                );
            }
            println!("{:.2} s", start.elapsed().as_secs_f64());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
