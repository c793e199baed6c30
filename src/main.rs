/// sled allocates a copy of a node on most writes and frees old copies on other threads;
/// mimalloc handles that pattern far better than glibc's malloc (see docs/performance.md, B4).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    journey::cli::main()
}
