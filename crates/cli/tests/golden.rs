//! Runs every case of upstream's golden outputs (shared/compat/wtmpdb-0.75/cases.tsv)
//! against our binary, compared as the file says. Cases marked `deliberate` compare against
//! our own expected file in tests/golden/ (see "Differences from wtmpdb" in the README).

use std::path::{Path, PathBuf};
use std::process::Command;

fn compat_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/compat/wtmpdb-0.75")
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
        .expect("shared/compat/wtmpdb-0.75/cases.tsv beside the repository");
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

#[test]
fn upstream_goldens() {
    let mut failures = Vec::new();
    let all = cases();
    assert!(all.len() >= 40, "cases.tsv looks truncated");
    // Upstream's files as they are (no index: the order comes from memory), and the same
    // files after our first write added the indexes (the order comes from wtmp_login).
    let upgraded = tempfile::tempdir().unwrap();
    for f in ["sample.db", "empty.db"] {
        std::fs::copy(compat_dir().join(f), upgraded.path().join(f)).unwrap();
    }
    drop(wtmpdb::Database::open_read_write(&upgraded.path().join("sample.db")).unwrap());
    for (label, dir) in [
        ("as written by upstream", compat_dir()),
        ("upgraded", upgraded.path().to_path_buf()),
    ] {
        for case in &all {
            if let Err(e) = check(case, &dir) {
                failures.push(format!("{} ({label}): {e}", case.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} golden cases fail:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n\n")
    );
}
