//! Runs every case of upstream's golden outputs (tests/upstream-0.75/cases.tsv)
//! against our binary, compared as the file says. Cases marked `deliberate` compare against
//! our own expected file in tests/golden/ (see "Differences from wtmpdb" in the README).
//!
//! Each case runs twice, and each run is its own test: `NAME` on upstream's files as they are
//! (no index: the order comes from memory), and `NAME@migrated` on copies after our first
//! write added the indexes (the order comes from wtmp_login). The case names come from
//! cases.tsv at run time, so this is a `harness = false` target with a small harness of its
//! own that speaks enough of libtest's command line for `cargo test` and nextest: a name
//! filter, `--exact`, `--skip`, `--ignored`/`--include-ignored` and `--list`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

fn compat_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/upstream-0.75")
}

struct Case {
    name: String,
    rc: i32,
    tz: String,
    how: String,
    argv: Vec<String>,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(compat_dir().join("cases.tsv"))
        .expect("tests/upstream-0.75/cases.tsv");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Case {
                name: f[0].to_string(),
                rc: f[1].parse().unwrap(),
                tz: f[2].to_string(),
                how: f[3].to_string(),
                argv: serde_json::from_str(f[4]).unwrap(),
            }
        })
        .collect()
}

fn strip_strings(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => *s = s.trim().to_string(),
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip_strings),
        serde_json::Value::Object(o) => o.values_mut().for_each(strip_strings),
        _ => {}
    }
}

fn read(path: &Path) -> Option<Vec<u8>> {
    std::fs::read(path).ok()
}

fn check(case: &Case, workdir: &Path) -> Result<(), String> {
    let dir = compat_dir();
    let out = Command::new(env!("CARGO_BIN_EXE_wtmpdb"))
        .args(&case.argv[1..])
        .current_dir(workdir)
        .env("TZ", &case.tz)
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| e.to_string())?;
    let rc = out.status.code().unwrap_or(-1);
    if rc != case.rc {
        return Err(format!(
            "exit {rc}, want {}; stderr: {}",
            case.rc,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let golden = |ext: &str| read(&dir.join(format!("{}.{ext}", case.name)));
    let ours = |ext: &str| {
        read(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/golden")
                .join(format!("{}.{ext}", case.name)),
        )
    };
    let same = |what: &str, got: &[u8], want: Option<Vec<u8>>| -> Result<(), String> {
        let want = want.ok_or_else(|| format!("no expected {what} file"))?;
        if got != want.as_slice() {
            return Err(format!(
                "{what} differs\n--- want\n{}--- got\n{}",
                String::from_utf8_lossy(&want),
                String::from_utf8_lossy(got)
            ));
        }
        Ok(())
    };
    match case.how.as_str() {
        "exact" => {
            same("stdout", &out.stdout, golden("out"))?;
            if let Some(err) = golden("err") {
                same("stderr", &out.stderr, Some(err))?;
            }
        }
        // Upstream's message, then ours: a second line that says why and what to do.
        "exact-then-why" => {
            same("stdout", &out.stdout, golden("out"))?;
            let want = golden("err").ok_or("no expected stderr file")?;
            let got = String::from_utf8_lossy(&out.stderr);
            let mut lines = got.lines();
            same(
                "stderr's first line",
                format!("{}\n", lines.next().unwrap_or_default()).as_bytes(),
                Some(want),
            )?;
            if lines.next().is_none_or(str::is_empty) || lines.next().is_some() {
                return Err(format!("want one more line saying why: {got}"));
            }
        }
        "deliberate" => {
            same("stdout", &out.stdout, ours("out"))?;
            if let Some(err) = ours("err") {
                same("stderr", &out.stderr, Some(err))?;
            }
        }
        "json-equal" => {
            let mut got: serde_json::Value = serde_json::from_slice(&out.stdout)
                .map_err(|e| format!("our JSON does not parse: {e}"))?;
            let mut want: serde_json::Value =
                serde_json::from_slice(&golden("out").unwrap()).unwrap();
            strip_strings(&mut got);
            strip_strings(&mut want);
            if got != want {
                return Err(format!("JSON differs\nwant {want}\ngot  {got}"));
            }
            // Our values carry no padding.
            let mut trimmed = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap();
            strip_strings(&mut trimmed);
            if trimmed != serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap() {
                return Err("JSON values carry padding".into());
            }
        }
        "rc" => {}
        "rc-and-nonempty-stderr" => {
            if out.stderr.is_empty() {
                return Err("stderr is empty".into());
            }
        }
        other => return Err(format!("unknown comparison {other}")),
    }
    Ok(())
}

/// What the command line asks for; flags this harness has no use for are accepted and ignored.
#[derive(Default)]
struct Args {
    filters: Vec<String>,
    skip: Vec<String>,
    exact: bool,
    list: bool,
    /// `--ignored`: only ignored tests, and none of these is.
    ignored_only: bool,
}

impl Args {
    fn parse() -> Args {
        let mut a = Args::default();
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
                _ => (arg.clone(), None),
            };
            let mut value = || inline.clone().or_else(|| it.next()).unwrap_or_default();
            match flag.as_str() {
                "--exact" => a.exact = true,
                "--list" => a.list = true,
                "--ignored" => a.ignored_only = true,
                "--skip" => a.skip.push(value()),
                "--test-threads" | "--color" | "--format" | "--logfile" | "--shuffle-seed"
                | "-Z" => {
                    value();
                }
                f if f.starts_with('-') => {}
                _ => a.filters.push(arg),
            }
        }
        a
    }

    fn matches(&self, pattern: &str, name: &str) -> bool {
        if self.exact {
            name == pattern
        } else {
            name.contains(pattern)
        }
    }

    fn selects(&self, name: &str) -> bool {
        !self.ignored_only
            && (self.filters.is_empty() || self.filters.iter().any(|f| self.matches(f, name)))
            && !self.skip.iter().any(|s| self.matches(s, name))
    }
}

const MIGRATED: &str = "@migrated";

fn main() -> ExitCode {
    let args = Args::parse();
    let all = cases();
    if all.len() < 40 {
        eprintln!("cases.tsv looks truncated: {} cases", all.len());
        return ExitCode::FAILURE;
    }
    let names: Vec<(String, &Case, bool)> = [false, true]
        .into_iter()
        .flat_map(|migrated| {
            all.iter().map(move |case| {
                let suffix = if migrated { MIGRATED } else { "" };
                (format!("{}{suffix}", case.name), case, migrated)
            })
        })
        .collect();
    if args.list {
        for (name, ..) in names.iter().filter(|(n, ..)| args.selects(n)) {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    let selected: Vec<_> = names.iter().filter(|(n, ..)| args.selects(n)).collect();
    let filtered_out = names.len() - selected.len();

    // Upstream's files after our first write added the indexes, made only when needed.
    let upgraded = tempfile::tempdir().unwrap();
    if selected.iter().any(|(_, _, migrated)| *migrated) {
        for f in ["sample.db", "empty.db"] {
            std::fs::copy(compat_dir().join(f), upgraded.path().join(f)).unwrap();
        }
        drop(wtmpdb::Database::open_read_write(&upgraded.path().join("sample.db")).unwrap());
    }

    let started = Instant::now();
    println!("\nrunning {} tests", selected.len());
    let mut failures = Vec::new();
    for (name, case, migrated) in &selected {
        let dir = if *migrated {
            upgraded.path().to_path_buf()
        } else {
            compat_dir()
        };
        match check(case, &dir) {
            Ok(()) => println!("test {name} ... ok"),
            Err(e) => {
                println!("test {name} ... FAILED");
                failures.push((name, e));
            }
        }
    }
    if !failures.is_empty() {
        println!("\nfailures:\n");
        for (name, e) in &failures {
            println!("---- {name} ----\n{e}\n");
        }
        println!("failures:");
        for (name, _) in &failures {
            println!("    {name}");
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed; 0 ignored; 0 measured; {filtered_out} filtered out; finished in {:.2}s\n",
        if failures.is_empty() { "ok" } else { "FAILED" },
        selected.len() - failures.len(),
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(101)
    }
}
