//! Streams every row from a wtmpdbd through the core library's client
//! (`wtmpdb::varlink::Client::read_entries`) and prints how many and how long: the client
//! side of bench/daemon.sh's streaming figure. `cargo run --release -p wtmpdbd --example
//! stream -- SOCKET`.

fn main() {
    let socket = std::env::args()
        .nth(1)
        .unwrap_or_else(|| wtmpdb::varlink::SOCKET.to_string());
    let t = std::time::Instant::now();
    let mut c = wtmpdb::varlink::Client::connect(
        std::path::Path::new(&socket),
        std::time::Duration::from_secs(60),
    )
    .unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    let mut bytes = 0usize;
    let n = c
        .read_entries(&wtmpdb::varlink::Query::default(), |e| {
            bytes += e.user.len();
        })
        .unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(1)
        });
    println!(
        "{n} rows in {} ms ({bytes} bytes of user names)",
        t.elapsed().as_millis()
    );
}
