//! Private, throwaway PostgreSQL servers for tests, from Debian's `postgresql` package, the way
//! the Dovecot harness runs Dovecot.
//!
//! Each [`Postgres`] owns a temp directory with its data directory and Unix socket, listens on
//! 127.0.0.1 and a free port, and is stopped on drop. The test role [`ROLE`] logs in over TCP
//! with SCRAM-SHA-256 and the password [`PASSWORD`]; it owns the database [`DATABASE`] and is
//! not a superuser (fleet mode must work with an ordinary role). [`Postgres::start_tls`] also
//! turns TLS on with a throwaway CA.
//!
//! `initdb` is slow on a busy machine (it starts the server several times to probe settings),
//! so it runs once per PostgreSQL version: the cluster, with the role and database already made,
//! is kept as a template under the temp directory and each instance copies it. When running as
//! root, everything runs as the `postgres` OS user (PostgreSQL refuses to run as root).

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The test role (not a superuser).
pub const ROLE: &str = "mailferry";
/// The test role's password (SCRAM-SHA-256 over TCP).
pub const PASSWORD: &str = "mailferry-test-password";
/// The database the test role owns.
pub const DATABASE: &str = "mailferry";
const INSTALL_HINT: &str = "PostgreSQL is required for the fleet-mode tests: apt-get install -y --no-install-recommends postgresql";
/// Bump when the template's contents change, so an old cached template is not reused.
const TEMPLATE_VERSION: u32 = 1;

/// One running private PostgreSQL.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    tls: bool,
    child: Mutex<Option<Child>>,
}

/// Serialises port picking and start-up inside one test binary.
static START_LOCK: Mutex<()> = Mutex::new(());

impl Postgres {
    /// Starts a fresh instance without TLS (panics with an install hint if PostgreSQL is missing).
    pub fn start() -> Postgres {
        Postgres::start_with(false)
    }

    /// Starts a fresh instance with TLS on (certificate for `localhost` and 127.0.0.1, signed by
    /// [`Postgres::ca_pem_path`]); plaintext connections are still accepted.
    pub fn start_tls() -> Postgres {
        Postgres::start_with(true)
    }

    fn start_with(tls: bool) -> Postgres {
        let bin = bin_dir();
        let template = template(&bin);
        let dir = tempfile::Builder::new()
            .prefix("mailferry-pg-")
            .tempdir()
            .expect("temp dir");
        set_mode(dir.path(), 0o755);
        let data = dir.path().join("data");
        let out = Command::new("cp")
            .arg("-a")
            .arg(&template)
            .arg(&data)
            .output()
            .expect("cp");
        assert!(
            out.status.success(),
            "copying the template cluster: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for sub in ["sock", "tls"] {
            std::fs::create_dir(dir.path().join(sub)).expect("instance dirs");
            chown_to_postgres(&dir.path().join(sub));
        }
        if tls {
            make_certs(&dir.path().join("tls"));
            for f in ["chain.pem", "key.pem", "ca.pem"] {
                chown_to_postgres(&dir.path().join("tls").join(f));
            }
            set_mode(&dir.path().join("tls/key.pem"), 0o600);
        }
        let me = Postgres {
            dir,
            bin,
            port: 0,
            tls,
            child: Mutex::new(None),
        };
        let mut me = me;
        let _guard = START_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        for attempt in 0..5 {
            me.port = free_port();
            match me.launch() {
                Ok(()) => return me,
                Err(e) if attempt < 4 => eprintln!("postgres start retry: {e}"),
                Err(e) => panic!("PostgreSQL did not start: {e}"),
            }
        }
        unreachable!()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://mailferry@127.0.0.1:PORT/mailferry` (no password: give [`PASSWORD`] as
    /// `PGPASSWORD`).
    pub fn url(&self) -> String {
        format!("postgres://{ROLE}@127.0.0.1:{}/{DATABASE}", self.port)
    }

    /// The CA that signed the server certificate (TLS instances only).
    pub fn ca_pem_path(&self) -> PathBuf {
        self.dir.path().join("tls/ca.pem")
    }

    /// The instance directory (data directory, socket, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs SQL as the superuser over the Unix socket; returns psql's unaligned output.
    pub fn psql(&self, sql: &str) -> String {
        self.try_psql(sql)
            .unwrap_or_else(|err| panic!("psql {sql:?}: {err}"))
    }

    /// The mailbox keys whose live lease the worker with OS process id `pid` holds.
    #[allow(dead_code)] // the fleet tests and benchmark, not every binary
    pub fn leases_held_by(&self, pid: u32) -> Vec<String> {
        self.psql(&format!(
            "SELECT mb.key FROM leases l JOIN mailboxes mb ON mb.id = l.mailbox_id
             JOIN workers w ON w.id = l.owner WHERE w.pid = {pid} AND l.outcome IS NULL"
        ))
        .lines()
        .map(str::trim)
        .filter(|l| l.contains('@'))
        .map(str::to_owned)
        .collect()
    }

    /// The generation of mailbox `key`'s lease (0 before its first claim).
    #[allow(dead_code)]
    pub fn lease_generation(&self, key: &str) -> i64 {
        self.psql(&format!(
            "SELECT l.generation FROM leases l JOIN mailboxes mb ON mb.id = l.mailbox_id
             WHERE mb.key = '{key}'"
        ))
        .lines()
        .find_map(|l| l.trim().parse().ok())
        .unwrap_or(0)
    }

    /// [`psql`](Self::psql), with the server's error returned (a table a worker has not
    /// created yet, for one) instead of panicking.
    #[allow(dead_code)] // used by the fleet benchmark, not by every test binary
    pub fn try_psql(&self, sql: &str) -> Result<String, String> {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-U",
                "postgres",
                "-d",
                DATABASE,
            ])
            .arg("-h")
            .arg(self.dir.path().join("sock"))
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-c")
            .arg(sql)
            .output()
            .unwrap_or_else(|e| panic!("{INSTALL_HINT} ({e})"));
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Fast shutdown (sessions are ended, as when an operator stops the server), waiting until
    /// the server is gone.
    pub fn stop(&self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut c) = child.take() {
            stop_child(&mut c, "INT");
        }
    }

    /// Starts again on the same port with the same data.
    pub fn restart(&self) {
        self.stop();
        let _guard = START_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = self.launch() {
            panic!("PostgreSQL did not restart: {e}");
        }
    }

    fn launch(&self) -> Result<(), String> {
        let root = self.dir.path();
        let log = std::fs::File::create(root.join("postgres.log")).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(self.bin.join("postgres"));
        cmd.arg("-D")
            .arg(root.join("data"))
            .arg("-k")
            .arg(root.join("sock"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            // Throwaway data: no fsync, small memory, no background noise.
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "shared_buffers=16MB"])
            .args(["-c", "max_connections=40", "-c", "autovacuum=off"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0);
        if self.tls {
            let tls = root.join("tls");
            cmd.args(["-c", "ssl=on"])
                .arg("-c")
                .arg(format!("ssl_cert_file={}", tls.join("chain.pem").display()))
                .arg("-c")
                .arg(format!("ssl_key_file={}", tls.join("key.pem").display()));
        }
        as_postgres(&mut cmd);
        let child = cmd.spawn().map_err(|e| format!("{INSTALL_HINT} ({e})"))?;
        let mut child_slot = self.child.lock().unwrap_or_else(|e| e.into_inner());
        *child_slot = Some(child);
        let child = child_slot.as_mut().expect("just set");
        if let Err(e) = wait_ready(&root.join("data"), child) {
            let log = std::fs::read_to_string(root.join("postgres.log")).unwrap_or_default();
            stop_child(child, "KILL");
            *child_slot = None;
            return Err(format!("{e}: {log}"));
        }
        Ok(())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut c) = child.take() {
            // Immediate shutdown: the data is thrown away anyway.
            stop_child(&mut c, "QUIT");
        }
    }
}

/// Where Debian keeps the server binaries (the newest installed major version).
fn bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, b)| b)
        .unwrap_or_else(|| panic!("{INSTALL_HINT} (no /usr/lib/postgresql/*/bin/initdb)"))
}

/// The template cluster for this PostgreSQL version, made on first use (see the module docs).
fn template(bin: &Path) -> PathBuf {
    static MADE: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut made = MADE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = &*made {
        return p.clone();
    }
    let version = bin
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let home = std::env::temp_dir().join(format!(
        "mailferry-pg-template-{version}-v{TEMPLATE_VERSION}-uid{}",
        current_uid()
    ));
    let data = home.join("data");
    if !data.join("PG_VERSION").exists() {
        build_template(bin, &home);
    }
    *made = Some(data.clone());
    data
}

/// initdb, then create the role and database, then a clean shutdown; built beside `home` and
/// renamed into place, so a half-made template is never used (another test process may be
/// building one at the same moment: the first rename wins).
fn build_template(bin: &Path, home: &Path) {
    let parent = home.parent().expect("temp dir");
    let work = tempfile::Builder::new()
        .prefix("mailferry-pg-template-build-")
        .tempdir_in(parent)
        .expect("temp dir");
    set_mode(work.path(), 0o755);
    let data = work.path().join("data");
    let sock = work.path().join("sock");
    std::fs::create_dir(&sock).expect("sock dir");
    chown_to_postgres(&sock);
    chown_to_postgres(work.path());
    let mut initdb = Command::new(bin.join("initdb"));
    initdb
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "-A", "trust", "--auth-host=scram-sha-256"])
        .args(["-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"]);
    as_postgres(&mut initdb);
    let out = initdb
        .output()
        .unwrap_or_else(|e| panic!("{INSTALL_HINT} ({e})"));
    assert!(
        out.status.success(),
        "initdb: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let port = free_port();
    let mut server = Command::new(bin.join("postgres"));
    server
        .arg("-D")
        .arg(&data)
        .arg("-k")
        .arg(&sock)
        .args(["-h", "", "-p", &port.to_string(), "-c", "fsync=off"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    as_postgres(&mut server);
    let mut child = server
        .spawn()
        .unwrap_or_else(|e| panic!("{INSTALL_HINT} ({e})"));
    if let Err(e) = wait_ready(&data, &mut child) {
        stop_child(&mut child, "KILL");
        panic!("template PostgreSQL did not start: {e}");
    }
    let out = Command::new(bin.join("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-U", "postgres", "-d", "postgres"])
        .arg("-h")
        .arg(&sock)
        .args(["-p", &port.to_string()])
        .arg("-c")
        .arg(format!(
            "SET password_encryption = 'scram-sha-256'; CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'"
        ))
        .arg("-c")
        .arg(format!("CREATE DATABASE {DATABASE} OWNER {ROLE}"))
        .output()
        .expect("psql");
    stop_child(&mut child, "INT");
    assert!(
        out.status.success(),
        "creating the test role: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::create_dir_all(home).expect("template home");
    if std::fs::rename(&data, home.join("data")).is_err() && !home.join("data/PG_VERSION").exists()
    {
        panic!("cannot move the template cluster into {}", home.display());
    }
}

/// Waits until the server says it accepts connections (`ready` in `postmaster.pid`, as
/// `pg_ctl -w` does), or fails if it exits first.
fn wait_ready(data: &Path, child: &mut Child) -> Result<(), String> {
    // Generous: initdb and start-up crawl when eight test binaries share two cores.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(pid_file) = std::fs::read_to_string(data.join("postmaster.pid"))
            && pid_file.lines().nth(7).map(str::trim) == Some("ready")
        {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("postgres exited during start-up ({status})"));
        }
        if Instant::now() > deadline {
            return Err("postgres was not ready within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `signal` to the server (INT: fast shutdown, QUIT: immediate, KILL) and reaps it.
fn stop_child(child: &mut Child, signal: &str) {
    let pid = child.id();
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => break,
            Ok(None) if Instant::now() > deadline => {
                // Its process group holds the backends too.
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{pid}")])
                    .status();
                let _ = child.wait();
                break;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Runs `cmd` as the `postgres` OS user when we are root.
fn as_postgres(cmd: &mut Command) {
    if let Some((uid, gid)) = postgres_ids() {
        cmd.uid(uid).gid(gid);
        cmd.env("HOME", "/var/lib/postgresql");
    }
}

/// The `postgres` user's uid and gid when running as root; `None` otherwise (run as ourselves).
fn postgres_ids() -> Option<(u32, u32)> {
    if current_uid() != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let line = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .unwrap_or_else(|| panic!("{INSTALL_HINT} (no postgres user in /etc/passwd)"));
    let f: Vec<&str> = line.split(':').collect();
    Some((f[2].parse().expect("uid"), f[3].parse().expect("gid")))
}

fn chown_to_postgres(path: &Path) {
    if let Some((uid, gid)) = postgres_ids() {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown to postgres");
    }
}

fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn current_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A throwaway CA and a server certificate for localhost / 127.0.0.1 (the Dovecot harness's).
fn make_certs(dir: &Path) {
    super::dovecot::make_certs(dir);
}
