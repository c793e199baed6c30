//! Any text as a scenario file beside the example journeys (so that its `journeys:` can
//! name them), run on the engine: an error or an outcome, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

/// A directory holding a copy of `journeys/`, made once per fuzzing process.
fn workdir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../journeys");
        copy_dir(&examples, &dir);
        dir
    })
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = workdir().join("fuzz.scenario.yaml");
    std::fs::write(&path, text).unwrap();
    let _ = journey::scenario::run(&path);
});
