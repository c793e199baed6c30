fn main() {
    let paths: Vec<std::path::PathBuf> = std::env::args().skip(1).map(Into::into).collect();
    let files = journey::lang::journey_files(&paths).unwrap();
    let l = journey::lang::load_files(&files);
    print!("{}", journey::lang::diagnostic::render_human(&l.sources, &l.diagnostics, false));
    println!("{} files parsed", l.files.len());
}
