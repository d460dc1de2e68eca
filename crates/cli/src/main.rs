// The unwinder (panics unwind, in the reader thread of `last` too) linked in from
// libgcc_eh.a instead of libgcc_s.so.1, whose constructor probes the CPU at every start
// of the program: 0.13-0.16 ms of a 2 ms `wtmpdb last -n 10` on a virtual machine, where
// CPUID traps to the hypervisor. Once the whole archive defines `_Unwind_*`, the linker's
// --as-needed leaves libgcc_s out (a test checks that it is not loaded).
#[link(name = "gcc_eh", kind = "static", modifiers = "+whole-archive,-bundle")]
unsafe extern "C" {}

fn main() {
    std::process::exit(wtmpdb_cli::main(std::env::args_os().collect()));
}
