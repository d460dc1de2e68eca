#!/usr/bin/env bash
# Installs what the build and the tests need, then runs every check CI runs:
# formatting, clippy, the whole test suite (including upstream's golden outputs), and as
# root the tests that need root and the end-to-end scripts (real PAM stacks, su, sshd),
# then the fuzzers for a bounded time. Run from anywhere; exits non-zero on the first
# failure. Under CI=true nothing is skipped: not being root, or a tool that is missing,
# is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n==> %s\n' "$*"; }

packages() { grep -hv '^\s*#' scripts/apt-packages | awk 'NF{print $1}' | sort -u; }

install_packages() {
    local missing=()
    for p in $(packages); do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ]; then
        say "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        say "installing ${missing[*]} (sudo)"
        sudo DEBIAN_FRONTEND=noninteractive apt-get update -qq
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "missing Debian packages: ${missing[*]} (run as root to install them)" >&2
        exit 1
    fi
}

say "dependencies"
if command -v dpkg-query >/dev/null; then install_packages; else echo "not a Debian system: install the packages in scripts/apt-packages by hand"; fi

# Edition 2024 needs Rust 1.85 or later (rustup's toolchain; Debian 12's packaged rustc is
# 1.63): say so plainly instead of failing on the manifest.
# Under sudo, a toolchain that rustup installed for the invoking user is not on root's PATH:
# use it (its toolchains; crates are fetched into root's own cargo home).
if ! command -v cargo >/dev/null && [ -n "${SUDO_USER:-}" ]; then
    user_home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
    if [ -x "$user_home/.cargo/bin/cargo" ]; then
        export PATH="$user_home/.cargo/bin:$PATH"
        export RUSTUP_HOME=${RUSTUP_HOME:-$user_home/.rustup}
        echo "using $SUDO_USER's Rust toolchain ($user_home/.cargo/bin)"
    fi
fi
if ! command -v cargo >/dev/null; then
    echo "cargo not found: install a Rust toolchain >= 1.85 (rustup), then run this again" >&2
    exit 1
fi
rust_minor=$(rustc --version | sed -n 's/^rustc 1\.\([0-9]*\).*/\1/p')
if [ -n "$rust_minor" ] && [ "$rust_minor" -lt 85 ]; then
    echo "$(rustc --version) is too old: this project needs Rust >= 1.85 (rustup)" >&2
    exit 1
fi

say "cargo fmt --check"
cargo fmt --all --check
cargo fmt --manifest-path fuzz/Cargo.toml --check  # its own workspace

say "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

# The fuzz targets build without cargo-fuzz or sanitizers too (libfuzzer-sys compiles
# libFuzzer with the C++ compiler): so a change that breaks them fails here, not later.
say "cargo clippy (fuzz targets)"
cargo clippy --manifest-path fuzz/Cargo.toml --all-targets -- -D warnings

say "cargo build --release"
cargo build --workspace --release

say "cargo test"
cargo test --workspace

# The opt-in build that links the system's libsqlite3.a into the command (off by default,
# see crates/cli/Cargo.toml): its own golden outputs and command tests, so the feature
# cannot rot unseen.
say "cargo test: wtmpdb with --features static-sqlite"
cargo clippy -p wtmpdb-cli --features static-sqlite --all-targets -- -D warnings
cargo test -p wtmpdb-cli --features static-sqlite --test golden --test cli

if [ "$(id -u)" -eq 0 ]; then
    # Tests that need root are #[ignore]d in a normal run. The child_process_ "tests" are
    # helpers that other tests start as child processes; on their own they only fail.
    say "cargo test: the tests that need root"
    # One at a time: these tests run real lock holders and readers as other users, and some
    # bound times. (The fcntl lock on -shm failed beside the others until the writer read
    # /proc/locks as one snapshot: storage::proc_locks::proc_locks_tests.)
    cargo test --workspace -- --ignored --skip child_process_ --test-threads=1

    for t in tests/e2e/*.sh; do
        [ "$(basename "$t")" = common.sh ] && continue  # sourced by the others
        say "$t"
        bash "$t"
    done
elif [ "${CI:-}" = true ]; then
    echo "CI=true but not root: the tests that need root and the end-to-end scripts must run in CI" >&2
    exit 1
else
    say "not root: the tests that need root and the end-to-end scripts (tests/e2e/) are not run"
fi

say "fuzzing (${FUZZ_SECONDS:-20} s per target)"
fuzz/run.sh "${FUZZ_SECONDS:-20}"

say "all checks passed"
