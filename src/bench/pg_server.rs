//! A throwaway PostgreSQL server for the tests and the benchmarks on the PostgreSQL store:
//! `initdb` into a temporary directory, `pg_ctl` on a free port of 127.0.0.1, stopped and
//! removed when dropped. The binaries are found on the PATH or through
//! `pg_config --bindir` (Debian keeps them under /usr/lib/postgresql/N/bin). PostgreSQL
//! refuses to run as root, so as root the server runs as the `postgres` user.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
    databases: std::sync::atomic::AtomicU32,
    /// The server's options (`pg_ctl -o`), for `start_again`.
    opts: String,
}

/// The superuser `initdb` makes.
const USER: &str = "journey";

fn find_bin() -> Result<PathBuf, String> {
    if let Ok(o) = Command::new("pg_config").arg("--bindir").output() {
        if o.status.success() {
            let dir = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
            if dir.join("initdb").exists() && dir.join("pg_ctl").exists() {
                return Ok(dir);
            }
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        if dir.join("initdb").exists() && dir.join("pg_ctl").exists() {
            return Ok(dir);
        }
    }
    for v in (12..=18).rev() {
        let dir = PathBuf::from(format!("/usr/lib/postgresql/{v}/bin"));
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    Err("PostgreSQL's initdb and pg_ctl are not installed (apt install postgresql)".into())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl PgServer {
    /// Starts a server. `fast` turns `fsync` off (tests: nothing here survives a power cut
    /// anyway); benchmarks keep PostgreSQL's defaults.
    pub fn start(fast: bool) -> Result<PgServer, String> {
        PgServer::start_with(fast, None)
    }

    /// Starts a server that takes TLS connections only, with this certificate and key
    /// (PEM), for the tests of TLS to the store.
    pub fn start_tls(cert_pem: &str, key_pem: &str) -> Result<PgServer, String> {
        PgServer::start_with(true, Some((cert_pem, key_pem)))
    }

    fn start_with(fast: bool, tls: Option<(&str, &str)>) -> Result<PgServer, String> {
        let bin = find_bin()?;
        let dir = tempfile::Builder::new()
            .prefix("journey-pg")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let as_postgres = is_root();
        if as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                return Err("cannot hand the data directory to the postgres user".into());
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let mut server = PgServer {
            dir,
            bin,
            port,
            as_postgres,
            databases: Default::default(),
            opts: String::new(),
        };
        let data = server.data_dir();
        server.run(
            "initdb",
            &[
                "-D",
                &data.to_string_lossy(),
                "-U",
                USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        let mut opts = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {}",
            server.dir.path().display()
        );
        if fast {
            opts.push_str(" -c fsync=off -c full_page_writes=off");
        }
        if let Some((cert, key)) = tls {
            // Files the server reads (its user's, the key unreadable by others), and a
            // pg_hba that refuses connections without TLS.
            let (crt_path, key_path) = (data.join("server.crt"), data.join("server.key"));
            let hba = "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n";
            for (path, text) in [
                (&crt_path, cert),
                (&key_path, key),
                (&data.join("pg_hba.conf"), hba),
            ] {
                std::fs::write(path, text).map_err(|e| e.to_string())?;
            }
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| e.to_string())?;
            if server.as_postgres {
                Command::new("chown")
                    .args(["postgres:"])
                    .arg(&crt_path)
                    .arg(&key_path)
                    .arg(data.join("pg_hba.conf"))
                    .status()
                    .map_err(|e| e.to_string())?;
            }
            opts.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                crt_path.display(),
                key_path.display()
            ));
        }
        server.opts = opts;
        server.start_again()?;
        Ok(server)
    }

    /// Starts the server again after `stop`, on the same port and data.
    pub fn start_again(&self) -> Result<(), String> {
        let data = self.data_dir();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &data.to_string_lossy(),
                "-o",
                &self.opts,
                "-l",
                &self.dir.path().join("log").to_string_lossy(),
                "-w",
                "start",
            ],
        )
    }

    /// Stops the server at once, as a crash or a cut cable would (`-m immediate`): the
    /// clients' connections drop; what was committed stays.
    pub fn stop(&self) -> Result<(), String> {
        let data = self.data_dir();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &data.to_string_lossy(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        )
    }

    /// Starts a server for a test: when PostgreSQL is missing or does not start, the test
    /// fails in CI (`CI=true`) and is skipped elsewhere, with the reason (None).
    pub fn for_test(test: &str) -> Option<PgServer> {
        match PgServer::start(true) {
            Ok(s) => Some(s),
            Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("{test}: PostgreSQL did not start: {e}")
            }
            Err(e) => {
                eprintln!("{test}: skipped: PostgreSQL did not start: {e}");
                None
            }
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run(&self, tool: &str, args: &[&str]) -> Result<(), String> {
        let exe = self.bin.join(tool);
        let out = if self.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&exe)
                .args(args)
                .current_dir("/")
                .output()
        } else {
            Command::new(&exe).args(args).output()
        }
        .map_err(|e| format!("{}: {e}", exe.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            let log = std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default();
            Err(format!(
                "{tool} failed: {}{}\n{log}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// A PostgreSQL program (psql, pgbench): beside initdb, else on the PATH.
    pub fn tool(&self, name: &str) -> PathBuf {
        let beside = self.bin.join(name);
        if beside.exists() {
            beside
        } else {
            PathBuf::from(name)
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of a database of this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{database}", self.port)
    }

    /// A new, empty database: its URL.
    pub fn fresh_database(&self) -> Result<String, String> {
        let n = self
            .databases
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("journey_{n}");
        self.psql("postgres", &format!("CREATE DATABASE {name}"))?;
        Ok(self.url(&name))
    }

    /// Runs SQL with psql against `database`: its output, unaligned.
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(self.tool("psql"))
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.url(database))
            .args(["-c", sql])
            .output()
            .map_err(|e| format!("psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(format!("psql: {}", String::from_utf8_lossy(&out.stderr)))
        }
    }

    /// Stops the server and removes its directory (for a server that is never dropped).
    pub fn stop_and_remove(&self) {
        let _ = self.stop();
        let _ = std::fs::remove_dir_all(self.dir.path());
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let data = self.data_dir();
        let _ = self.run(
            "pg_ctl",
            &["-D", &data.to_string_lossy(), "-m", "immediate", "stop"],
        );
    }
}

/// Whether the tests run on PostgreSQL (`JOURNEY_TEST_POSTGRES=1`, as `.ci/run`'s second
/// pass sets it) rather than sled.
pub fn tests_on_postgres() -> bool {
    std::env::var("JOURNEY_TEST_POSTGRES").as_deref() == Ok("1")
}

/// The PostgreSQL server of a test process, started at its first use.
static TEST_SERVER: std::sync::OnceLock<PgServer> = std::sync::OnceLock::new();

/// Stops the test process's server and removes its directory (statics are not dropped).
extern "C" fn stop_test_server() {
    if let Some(s) = TEST_SERVER.get() {
        s.stop_and_remove();
    }
}

fn test_server() -> &'static PgServer {
    TEST_SERVER.get_or_init(|| {
        let s = PgServer::start(true).unwrap_or_else(|e| {
            panic!("JOURNEY_TEST_POSTGRES=1, but PostgreSQL did not start: {e}")
        });
        // SAFETY: registers a plain function to run at exit; it only stops a child server.
        unsafe { libc::atexit(stop_test_server) };
        s
    })
}

/// An empty store of a test's own, gone with it: a temporary sled store, or (tests on
/// PostgreSQL) a schema of its own in the test process's server.
pub fn test_store() -> crate::store::Store {
    use crate::store::Store;
    if tests_on_postgres() {
        static SHARED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let url = SHARED.get_or_init(|| test_server().fresh_database().unwrap());
        Store::connect_scratch(url).unwrap()
    } else {
        Store::temporary().unwrap()
    }
}

/// Where a test keeps a store it opens again (a restart) or hands to the CLI (`--data`):
/// the sled directory `dir`, or (tests on PostgreSQL) the URL of a database of its own,
/// the same for the same `dir` (noted in a file there).
pub fn test_store_location(dir: &Path) -> String {
    if !tests_on_postgres() {
        return dir.to_string_lossy().into_owned();
    }
    let note = dir.join("postgres-url");
    if let Ok(url) = std::fs::read_to_string(&note) {
        return url;
    }
    let url = test_server().fresh_database().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(&note, &url).unwrap();
    url
}

/// Opens the store `test_store_location(dir)` names.
pub fn test_store_at(dir: &Path) -> crate::store::Store {
    crate::store::Store::open_location(&test_store_location(dir)).unwrap()
}
