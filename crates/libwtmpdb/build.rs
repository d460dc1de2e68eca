//! Links the shared object with upstream's soname and symbol versions.
//!
//! rustc hands the linker its own (anonymous) version script that exports every
//! `#[no_mangle]` function. Our nine functions are therefore not `#[no_mangle]`: they are
//! defined under their C names by `global_asm!` (src/ffi.rs), which rustc does not list, so
//! the only script naming them is libwtmpdb.map, and its nodes become their versions.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed=libwtmpdb.map");
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={dir}/libwtmpdb.map");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libwtmpdb.so.0");
}
