//! Private, throwaway Cyrus IMAP 3.x instances for tests: the second server dialect beside Dovecot.
//!
//! Each [`Cyrus`] owns a temp directory with a generated `imapd.conf` (config directory, default
//! partition, sockets and an sasldb all inside it), a `cyrus.conf` with a single plain `imap`
//! service on a free loopback port, and an admin (`cyrus-admin` / [`ADMIN_PASSWORD`]) that creates
//! each user's INBOX (`CREATE user/NAME`). Two dialects ([`Namespace`]): Cyrus 3's default
//! (top-level folders, `/`) and Cyrus 2's classic one (everything under `INBOX.`).
//! `master` runs in the foreground (`-D`) in its own process group; dropping the instance kills
//! that group. Nothing under `/etc` or `/var/lib/cyrus` is read or written: every service command
//! carries `-C` (Cyrus's master does not pass its own `-C` on to the services it starts).
//!
//! Plain IMAP only: mailferry allows plaintext to loopback, and Cyrus's TLS would add nothing the
//! Dovecot tests do not already cover.

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset};
use mailferry::model::Flags;

// The Dovecot harness's loader speaks plain IMAP and fits Cyrus unchanged; that harness keeps it
// private, so it is compiled a second time here rather than made shared.
#[allow(clippy::duplicate_mod)]
#[path = "dovecot_loader.rs"]
mod loader;
use loader::Loader;

/// The admin's password (user name [`ADMIN`]).
pub const ADMIN_PASSWORD: &str = "cyrus-admin-secret";
/// The Cyrus admin, who creates users' INBOXes.
pub const ADMIN: &str = "cyrus-admin";
/// Where Debian's cyrus-common puts `master` and `ctl_cyrusdb`.
const SERVICE_DIR: &str = "/usr/lib/cyrus/bin";
/// Where `imapd` may be. Debian's cyrus-imapd conflicts with dovecot-imapd (both provide
/// `imap-server`), so `scripts/install-deps` unpacks its .deb under /opt instead of installing it;
/// an installed cyrus-imapd works too. `MAILFERRY_CYRUS_IMAPD` overrides both.
const IMAPD_CANDIDATES: [&str; 2] = [
    "/opt/cyrus-imapd/usr/lib/cyrus/bin/imapd",
    "/usr/lib/cyrus/bin/imapd",
];
/// The SASL realm the test users live in (fixed through `servername`, so the host name is irrelevant).
const REALM: &str = "mailferry-cyrus";
const INSTALL_HINT: &str = "Cyrus IMAP is required (run scripts/install-deps): apt-get install -y \
     --no-install-recommends cyrus-common sasl2-bin, then apt-get download cyrus-imapd and \
     dpkg-deb -x cyrus-imapd_*.deb /opt/cyrus-imapd (installing cyrus-imapd would remove dovecot-imapd)";

/// How the instance names folders (the two dialects Cyrus deployments use).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Namespace {
    /// Cyrus 3's default: `altnamespace: yes` (personal folders at top level beside INBOX) with
    /// `unixhierarchysep: yes` (delimiter `/`).
    Alt,
    /// Cyrus 2's classic layout: `altnamespace: no`, `unixhierarchysep: no`, so every personal
    /// folder lives under `INBOX.` (NAMESPACE `(("INBOX." "."))`).
    Classic,
}

impl Namespace {
    pub fn separator(self) -> char {
        match self {
            Namespace::Alt => '/',
            Namespace::Classic => '.',
        }
    }
}

/// One running private Cyrus.
pub struct Cyrus {
    dir: tempfile::TempDir,
    namespace: Namespace,
    imapd: PathBuf,
    port: u16,
    master: Mutex<Option<Child>>,
}

/// Serialises port picking and start-up inside one test binary.
static START_LOCK: Mutex<()> = Mutex::new(());

impl Cyrus {
    /// Starts a fresh instance in the [`Namespace::Alt`] dialect (panics with an install hint if
    /// Cyrus is missing).
    pub fn start() -> Cyrus {
        Cyrus::start_with(Namespace::Alt)
    }

    /// Starts a fresh instance in the given dialect.
    pub fn start_with(namespace: Namespace) -> Cyrus {
        let master = Path::new(SERVICE_DIR).join("master");
        let has_saslpasswd = Command::new("saslpasswd2")
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        let imapd = std::env::var_os("MAILFERRY_CYRUS_IMAPD")
            .map(PathBuf::from)
            .into_iter()
            .chain(IMAPD_CANDIDATES.iter().map(PathBuf::from))
            .find(|p| p.exists());
        let Some(imapd) = imapd.filter(|_| master.exists() && has_saslpasswd) else {
            panic!("{INSTALL_HINT}");
        };
        let dir = tempfile::Builder::new()
            .prefix("mailferry-cyrus-")
            .tempdir()
            .expect("temp dir");
        let root = dir.path();
        set_mode(root, 0o755);
        for sub in ["conf", "spool", "run", "log"] {
            std::fs::create_dir_all(root.join(sub)).expect("instance dirs");
        }
        let mut me = Cyrus {
            dir,
            namespace,
            imapd,
            port: 0,
            master: Mutex::new(None),
        };
        me.set_password(ADMIN, ADMIN_PASSWORD);
        let _guard = START_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        for attempt in 0..5 {
            me.port = free_port();
            me.write_config();
            match me.launch() {
                Ok(()) => return me,
                Err(e) if attempt < 4 => eprintln!("cyrus start retry: {e}"),
                Err(e) => panic!("Cyrus did not start: {e}"),
            }
        }
        unreachable!()
    }

    /// The plain IMAP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The instance directory (config, spool, master's output in `log/master.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The hierarchy delimiter.
    pub fn separator(&self) -> char {
        self.namespace.separator()
    }

    /// Adds a user: an sasldb entry, then the admin creates `user/NAME` (`user.NAME`), the INBOX.
    pub fn add_user(&self, name: &str, password: &str) {
        self.set_password(name, password);
        let sep = self.separator();
        let mut s = Loader::connect(self.port, ADMIN, ADMIN_PASSWORD, sep);
        s.command_ok(&format!(
            "CREATE {}",
            loader::quote(&format!("user{sep}{name}"))
        ));
        s.logout();
    }

    /// APPENDs messages to a folder given as wire-level segments (so `["INBOX", "Sent"]` in the
    /// classic dialect), creating it when missing; returns the UIDs given.
    pub fn load<B: AsRef<[u8]>>(
        &self,
        user: &str,
        password: &str,
        folder: &[&str],
        messages: &[(B, Flags, DateTime<FixedOffset>)],
    ) -> Vec<u32> {
        let mut s = Loader::connect(self.port, user, password, self.separator());
        s.create(folder);
        let name = s.wire_name(folder);
        let uids = messages
            .chunks(200)
            .flat_map(|chunk| s.multiappend(&name, chunk))
            .collect();
        s.logout();
        uids
    }

    /// Runs one raw command as `user` (whose password is given) and returns every response line.
    pub fn raw(&self, user: &str, password: &str, command: &str) -> Vec<String> {
        let mut s = Loader::connect(self.port, user, password, self.separator());
        let lines = s.command_ok(command);
        s.logout();
        lines
    }

    fn set_password(&self, user: &str, password: &str) {
        let db = self.dir.path().join("conf/sasldb2");
        let mut child = Command::new("saslpasswd2")
            .args(["-p", "-c", "-u", REALM, "-f"])
            .arg(&db)
            .arg(user)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{INSTALL_HINT} ({e})"));
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("saslpasswd2 stdin");
            stdin.write_all(password.as_bytes()).expect("password");
        }
        let out = child.wait_with_output().expect("saslpasswd2");
        assert!(
            out.status.success(),
            "saslpasswd2 {user}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // imapd runs as the cyrus user and must read what root just wrote.
        chown_tree(self.dir.path());
    }

    fn write_config(&self) {
        let root = self.dir.path().display().to_string();
        let conf = format!(
            "configdirectory: {root}/conf\n\
             partition-default: {root}/spool\n\
             defaultpartition: default\n\
             servername: {REALM}\n\
             syslog_prefix: mailferry-cyrus\n\
             admins: {ADMIN}\n\
             sasl_pwcheck_method: auxprop\n\
             sasl_auxprop_plugin: sasldb\n\
             sasl_sasldb_path: {root}/conf/sasldb2\n\
             sasl_mech_list: PLAIN LOGIN\n\
             allowplaintext: yes\n\
             virtdomains: off\n\
             unixhierarchysep: {unix}\n\
             altnamespace: {alt}\n\
             # Keep header bytes as sent: the default (munge8bit: yes) rewrites 8-bit header\n\
             # characters to 'X', which no migration may do silently.\n\
             reject8bit: no\n\
             munge8bit: no\n\
             idlesocket: {root}/run/idle\n\
             lmtpsocket: {root}/run/lmtp\n\
             notifysocket: {root}/run/notify\n\
             proc_path: {root}/run/proc\n\
             mboxname_lockpath: {root}/run/lock\n\
             statuscache: no\n",
            unix = yes_no(self.namespace == Namespace::Alt),
            alt = yes_no(self.namespace == Namespace::Alt),
        );
        std::fs::write(self.dir.path().join("imapd.conf"), conf).expect("imapd.conf");
        let cfg = format!("{root}/imapd.conf");
        let services = format!(
            "START {{\n  recover cmd=\"ctl_cyrusdb -C {cfg} -r\"\n}}\n\
             SERVICES {{\n  imap cmd=\"{imapd} -C {cfg}\" listen=\"127.0.0.1:{port}\" prefork=0\n}}\n\
             EVENTS {{\n}}\n",
            port = self.port,
            imapd = self.imapd.display(),
        );
        std::fs::write(self.dir.path().join("cyrus.conf"), services).expect("cyrus.conf");
        chown_tree(self.dir.path());
    }

    fn launch(&self) -> Result<(), String> {
        let root = self.dir.path();
        let log = std::fs::File::create(root.join("log/master.log")).map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(Path::new(SERVICE_DIR).join("master"))
            .arg("-C")
            .arg(root.join("imapd.conf"))
            .arg("-M")
            .arg(root.join("cyrus.conf"))
            .arg("-p")
            .arg(root.join("run/master.pid"))
            .arg("-D")
            .current_dir(root)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("{INSTALL_HINT} ({e})"))?;
        *self.master.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            let exited = self
                .master
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                self.kill();
                let log = std::fs::read_to_string(root.join("log/master.log")).unwrap_or_default();
                return Err(format!(
                    "master exited or did not listen ({exited:?}): {log}"
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Hard stop: KILL to master's process group (master and every imapd it forked).
    pub fn kill(&self) {
        let Some(mut child) = self.master.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .status();
        let _ = child.wait();
    }
}

impl Drop for Cyrus {
    fn drop(&mut self) {
        self.kill();
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Started as root, master drops to the `cyrus` user: the instance must belong to it. As any other
/// user, master keeps that user and the files are already its own.
fn chown_tree(root: &Path) {
    if !is_root() {
        return;
    }
    let Some((uid, gid)) = cyrus_ids() else {
        panic!("no `cyrus` user in /etc/passwd; {INSTALL_HINT}");
    };
    fn walk(p: &Path, uid: u32, gid: u32) {
        std::os::unix::fs::lchown(p, Some(uid), Some(gid)).expect("chown cyrus instance");
        if p.is_dir()
            && let Ok(entries) = std::fs::read_dir(p)
        {
            for e in entries.flatten() {
                walk(&e.path(), uid, gid);
            }
        }
    }
    walk(root, uid, gid);
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|v| v == "0"))
        })
        .unwrap_or(false)
}

fn cyrus_ids() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && f[0] == "cyrus").then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}
