//! Private, throwaway Dovecot 2.3 instances for tests, each run from its own config on loopback.
//!
//! Each [`Dovecot`] owns a temp directory with its config, a fresh CA and server certificate, a
//! passwd-file of users, a master user (`master` / [`MASTER_PASSWORD`], separator `*`) and the mail
//! root. It listens on two free loopback ports: plain (STARTTLS offered) and implicit TLS. Dropping it
//! kills the whole Dovecot process group.
//!
//! The loader ([`Dovecot::load`] and friends) speaks just enough IMAP over the plain port to APPEND
//! with flags and INTERNALDATE (MULTIAPPEND with LITERAL+, so 5,000 messages load in seconds). It is
//! deliberately independent of mailferry's own IMAP code so a bug there cannot hide itself in the
//! fixtures.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset};
use mailferry::model::Flags;

#[path = "dovecot_loader.rs"]
mod loader;
use loader::{Loader, quote};

/// The master user's password (user name `master`).
pub const MASTER_PASSWORD: &str = "master-secret";
/// Numeric uid/gid that owns the mail when the tests run as root.
const MAIL_UID: u32 = 5000;
const INSTALL_HINT: &str = "Dovecot is required: apt-get install -y --no-install-recommends dovecot-core dovecot-imapd openssl";

/// Which mailbox layout (and so which hierarchy separator) the instance uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `LAYOUT=fs`: separator `/`, names may contain `.`.
    Fs,
    /// Maildir++ (what cPanel uses): separator `.`; `listescape` lets names contain `/`.
    MaildirPlusPlus,
}

impl Layout {
    pub fn separator(self) -> char {
        match self {
            Layout::Fs => '/',
            Layout::MaildirPlusPlus => '.',
        }
    }
}

/// One running private Dovecot.
pub struct Dovecot {
    dir: tempfile::TempDir,
    layout: Layout,
    port_plain: u16,
    port_tls: u16,
    uid: u32,
    extra: String,
}

/// Serialises port picking and start-up inside one test binary, so two instances never race for the
/// same freshly freed port.
static START_LOCK: Mutex<()> = Mutex::new(());

impl Dovecot {
    /// Starts a fresh instance (panics with an install hint if Dovecot is missing).
    pub fn start(layout: Layout) -> Dovecot {
        Dovecot::start_with(layout, "")
    }

    /// Starts with extra `dovecot.conf` lines (for example an `imap_capability` override that
    /// hides UIDPLUS, MULTIAPPEND and LITERAL+ to exercise a client's fallbacks).
    pub fn start_with(layout: Layout, extra_config: &str) -> Dovecot {
        let has = |bin: &str, arg: &str| {
            Command::new(bin)
                .arg(arg)
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        };
        if !has("dovecot", "--version") || !has("openssl", "version") {
            panic!("{INSTALL_HINT}");
        }
        let dir = tempfile::Builder::new()
            .prefix("mailferry-dovecot-")
            .tempdir()
            .expect("temp dir");
        let uid = if current_uid() == 0 {
            MAIL_UID
        } else {
            current_uid()
        };
        let root = dir.path();
        // Dovecot's unprivileged processes must traverse the instance directory.
        set_mode(root, 0o755);
        for sub in ["run", "state", "log", "tls", "mail"] {
            std::fs::create_dir_all(root.join(sub)).expect("instance dirs");
            set_mode(&root.join(sub), 0o755);
        }
        chown(&root.join("mail"), uid);
        make_certs(&root.join("tls"));
        std::fs::write(
            root.join("master-users"),
            format!("master:{{PLAIN}}{MASTER_PASSWORD}\n"),
        )
        .expect("master users");
        std::fs::write(root.join("users"), "").expect("users");
        let mut me = Dovecot {
            dir,
            layout,
            port_plain: 0,
            port_tls: 0,
            uid,
            extra: extra_config.to_owned(),
        };
        let _guard = START_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        for attempt in 0..5 {
            me.port_plain = free_port();
            me.port_tls = free_port();
            me.write_config();
            match me.launch() {
                Ok(()) => return me,
                Err(e) if attempt < 4 => eprintln!("dovecot start retry: {e}"),
                Err(e) => panic!("Dovecot did not start: {e}"),
            }
        }
        unreachable!()
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }
    pub fn separator(&self) -> char {
        self.layout.separator()
    }
    pub fn port_plain(&self) -> u16 {
        self.port_plain
    }
    pub fn port_tls(&self) -> u16 {
        self.port_tls
    }
    /// The CA that signed this instance's certificate (for `localhost` and `127.0.0.1`).
    pub fn ca_pem_path(&self) -> PathBuf {
        self.dir.path().join("tls/ca.pem")
    }
    /// The user's Maildir root.
    pub fn mail_root(&self, user: &str) -> PathBuf {
        self.dir.path().join("mail").join(user).join("Maildir")
    }
    /// The instance directory (config, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Adds a user (Dovecot re-reads the passwd-file when it changes).
    pub fn add_user(&self, name: &str, password: &str) {
        let home = self.dir.path().join("mail").join(name);
        let line = format!(
            "{name}:{{PLAIN}}{password}:{uid}:{uid}::{home}::\n",
            uid = self.uid,
            home = home.display()
        );
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("users"))
            .expect("users file");
        f.write_all(line.as_bytes()).expect("write users");
    }

    /// Graceful stop: TERM to the process group, then wait until every process is gone.
    pub fn stop(&self) {
        self.signal_and_wait("TERM", Duration::from_secs(10));
    }

    /// Hard stop: KILL to the process group (a crash, as a test sees it).
    pub fn kill(&self) {
        self.signal_and_wait("KILL", Duration::from_secs(10));
    }

    /// Starts again on the same ports with the same data.
    pub fn restart(&self) {
        self.kill();
        let _guard = START_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = self.launch() {
            panic!("Dovecot did not restart: {e}");
        }
    }

    fn master_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.dir.path().join("run/master.pid")).ok()?;
        text.trim().parse().ok()
    }

    fn signal_and_wait(&self, signal: &str, limit: Duration) {
        let Some(pid) = self.master_pid() else { return };
        // Dovecot daemonizes with setsid, so its process group id is the master's pid: signalling
        // the group stops master, log, anvil, auth, login and imap processes at once.
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), "--", &format!("-{pid}")])
            .status();
        let deadline = Instant::now() + limit;
        while group_alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if group_alive(pid) {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
        let _ = std::fs::remove_file(self.dir.path().join("run/master.pid"));
    }

    fn launch(&self) -> Result<(), String> {
        let _ = std::fs::remove_file(self.dir.path().join("run/master.pid"));
        let conf = self.dir.path().join("dovecot.conf");
        // The daemonized master inherits stdout/stderr: never give it a pipe we would wait on.
        let err_path = self.dir.path().join("log/start.err");
        let err_file = std::fs::File::create(&err_path).map_err(|e| e.to_string())?;
        let status = Command::new("dovecot")
            .arg("-c")
            .arg(&conf)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(err_file)
            .status()
            .map_err(|e| format!("{INSTALL_HINT} ({e})"))?;
        if !status.success() {
            return Err(format!(
                "dovecot -c {}: {}",
                conf.display(),
                std::fs::read_to_string(&err_path).unwrap_or_default()
            ));
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port_plain)).is_ok()
                && TcpStream::connect(("127.0.0.1", self.port_tls)).is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.path().join("log/dovecot.log"))
                    .unwrap_or_default();
                self.kill();
                return Err(format!("listeners did not come up: {log}"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn write_config(&self) {
        let root = self.dir.path().display().to_string();
        let name = self
            .dir
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (location, sep, plugins) = match self.layout {
            Layout::Fs => (
                "maildir:~/Maildir:LAYOUT=fs:INBOX=~/Maildir/INBOX".to_owned(),
                "/",
                String::new(),
            ),
            Layout::MaildirPlusPlus => (
                "maildir:~/Maildir".to_owned(),
                ".",
                "mail_plugins = $mail_plugins listescape\nplugin {\n  listescape_char = \"\\\\\"\n}\n"
                    .to_owned(),
            ),
        };
        let uid = self.uid;
        let special: String = [
            ("Sent", "\\Sent"),
            ("Drafts", "\\Drafts"),
            ("Trash", "\\Trash"),
            ("Junk", "\\Junk"),
            ("Archive", "\\Archive"),
        ]
        .iter()
        .map(|(n, a)| {
            format!("  mailbox {n} {{\n    special_use = {a}\n    auto = subscribe\n  }}\n")
        })
        .collect();
        let conf = format!(
            r#"instance_name = {name}
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/log/dovecot.log
info_log_path = {root}/log/info.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{root}/tls/chain.pem
ssl_key = <{root}/tls/key.pem
ssl_dh = </usr/share/dovecot/dh.pem
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2
auth_failure_delay = 0
auth_master_user_separator = *
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {uid}
last_valid_gid = {uid}
mail_max_userip_connections = 50
imap_max_line_length = 1M
mail_location = {location}
{plugins}passdb {{
  driver = passwd-file
  master = yes
  result_success = continue
  args = scheme=PLAIN username_format=%u {root}/master-users
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/users
}}
namespace inbox {{
  inbox = yes
  separator = {sep}
  prefix =
{special}}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {plain}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
{extra}
"#,
            extra = self.extra,
            plain = self.port_plain,
            tls = self.port_tls,
        );
        std::fs::write(self.dir.path().join("dovecot.conf"), conf).expect("write dovecot.conf");
    }

    /// Opens a loader session as `user` (the password is looked up in the passwd-file).
    fn session(&self, user: &str) -> Loader {
        let users = std::fs::read_to_string(self.dir.path().join("users")).expect("users");
        let password = users
            .lines()
            .find_map(|l| {
                let mut parts = l.split(':');
                (parts.next() == Some(user)).then(|| {
                    parts
                        .next()
                        .unwrap_or("")
                        .trim_start_matches("{PLAIN}")
                        .to_owned()
                })
            })
            .unwrap_or_else(|| panic!("no such test user {user}; call add_user first"));
        Loader::connect(self.port_plain, user, &password, self.separator())
    }

    /// Creates a folder (and its parents) given as decoded segments; an existing folder is fine.
    pub fn create_folder(&self, user: &str, folder: &[&str]) {
        let mut s = self.session(user);
        s.create(folder);
        s.logout();
    }

    /// Deletes a folder given as decoded segments.
    pub fn delete_folder(&self, user: &str, folder: &[&str]) {
        let mut s = self.session(user);
        let name = s.wire_name(folder);
        s.command_ok(&format!("DELETE {}", quote(&name)));
        s.logout();
    }

    /// APPENDs messages to a folder (created when missing), in order, returning the UIDs given.
    pub fn load<B: AsRef<[u8]>>(
        &self,
        user: &str,
        folder: &[&str],
        messages: &[(B, Flags, DateTime<FixedOffset>)],
    ) -> Vec<u32> {
        let mut s = self.session(user);
        s.create(folder);
        let name = s.wire_name(folder);
        let mut uids = Vec::with_capacity(messages.len());
        // MULTIAPPEND batches bounded by bytes, so one command never holds hundreds of MB.
        let mut start = 0;
        while start < messages.len() {
            let mut end = start;
            let mut bytes = 0usize;
            while end < messages.len() && (end == start || bytes < 32 << 20) && end - start < 500 {
                bytes += messages[end].0.as_ref().len();
                end += 1;
            }
            uids.extend(s.multiappend(&name, &messages[start..end]));
            start = end;
        }
        s.logout();
        uids
    }

    /// Replaces the flags of one message.
    pub fn store_flags(&self, user: &str, folder: &[&str], uid: u32, flags: &Flags) {
        let mut s = self.session(user);
        let name = s.wire_name(folder);
        s.command_ok(&format!("SELECT {}", quote(&name)));
        s.command_ok(&format!(
            "UID STORE {uid} FLAGS ({})",
            flags.to_atoms().join(" ")
        ));
        s.logout();
    }

    /// Runs one raw command as `user` and returns every response line (for assertions).
    pub fn raw(&self, user: &str, command: &str) -> Vec<String> {
        let mut s = self.session(user);
        let lines = s.command_ok(command);
        s.logout();
        lines
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn group_alive(pgid: u32) -> bool {
    // Any live (non-zombie) process whose process group is `pgid`.
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|e| {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            return false;
        };
        // Fields after the command (which is in parentheses and may contain spaces).
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            return false;
        };
        let fields: Vec<&str> = after.split(' ').collect();
        fields.len() > 3 && fields[0] != "Z" && fields[2] == pgid.to_string()
    })
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

fn chown(path: &Path, uid: u32) {
    if current_uid() == 0 {
        std::os::unix::fs::chown(path, Some(uid), Some(uid)).expect("chown mail root");
    }
}

/// A throwaway CA and a leaf for localhost / 127.0.0.1 signed by it (ECDSA P-256: fast to make).
pub fn make_certs(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| panic!("{INSTALL_HINT} ({e})"));
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "3650",
        "-subj",
        "/CN=mailferry test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext.cnf");
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "3650",
        "-extfile",
        "ext.cnf",
    ]);
    let chain = [
        std::fs::read(dir.join("leaf.pem")).expect("leaf"),
        std::fs::read(dir.join("ca.pem")).expect("ca"),
    ]
    .concat();
    std::fs::write(dir.join("chain.pem"), chain).expect("chain");
    // Dovecot reads the key as root before dropping privileges; keep it private anyway.
    set_mode(&dir.join("key.pem"), 0o600);
}
