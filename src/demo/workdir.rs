//! The demo's working directory: a private copy of the sample mailboxes (so nothing in the
//! repository is ever written), with each message file's mtime restored from its name (git keeps
//! no mtimes, and the Maildir source reads INTERNALDATE from the mtime), and the plan pointed at
//! the running emulator.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::DemoError;

/// Where the demo works and whether the directory is removed at the end.
#[derive(Debug)]
pub struct WorkDir {
    pub path: PathBuf,
    /// Removed on drop unless the operator asked to keep it.
    pub keep: bool,
}

impl WorkDir {
    /// `keep`: that directory (created; it must be empty, so an old ledger never makes the first
    /// run a no-op). Otherwise a fresh directory under the system temp dir, removed on drop.
    pub fn create(keep: Option<&Path>) -> Result<WorkDir, DemoError> {
        match keep {
            Some(dir) => {
                if dir.exists() {
                    let mut entries = fs::read_dir(dir).map_err(|e| DemoError::io(dir, e))?;
                    if entries.next().is_some() {
                        return Err(DemoError::KeepNotEmpty(dir.to_path_buf()));
                    }
                } else {
                    fs::create_dir_all(dir).map_err(|e| DemoError::io(dir, e))?;
                }
                Ok(WorkDir {
                    path: dir.to_path_buf(),
                    keep: true,
                })
            }
            None => {
                let path = std::env::temp_dir().join(format!(
                    "mailferry-demo-{}-{:08x}",
                    std::process::id(),
                    rand::random::<u32>()
                ));
                fs::create_dir_all(&path).map_err(|e| DemoError::io(&path, e))?;
                Ok(WorkDir { path, keep: false })
            }
        }
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Copies the tree at `from` into `to` (directories, files; hidden ones too: Maildir++ folders
/// are `.Name`). Returns the number of files copied.
pub fn copy_tree(from: &Path, to: &Path) -> Result<u64, DemoError> {
    let mut files = 0;
    for entry in fs::read_dir(from).map_err(|e| DemoError::io(from, e))? {
        let entry = entry.map_err(|e| DemoError::io(from, e))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let kind = entry.file_type().map_err(|e| DemoError::io(&src, e))?;
        if kind.is_dir() {
            fs::create_dir_all(&dst).map_err(|e| DemoError::io(&dst, e))?;
            files += copy_tree(&src, &dst)?;
        } else if kind.is_file() {
            fs::copy(&src, &dst).map_err(|e| DemoError::io(&src, e))?;
            if let Some(t) = delivery_time(&entry.file_name().to_string_lossy()) {
                let f = fs::File::options()
                    .write(true)
                    .open(&dst)
                    .map_err(|e| DemoError::io(&dst, e))?;
                f.set_modified(t).map_err(|e| DemoError::io(&dst, e))?;
            }
            files += 1;
        }
        // Symlinks and other special files are not part of the sample set: ignored.
    }
    Ok(files)
}

/// The delivery time a Maildir file name starts with (`1717228800.M47514P4006.host,...`).
fn delivery_time(name: &str) -> Option<SystemTime> {
    let (secs, rest) = name.split_once('.')?;
    if rest.is_empty() || secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: u64 = secs.parse().ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// Points every Graph destination of the plan at `base_url` (the emulator serves both the token
/// endpoint and Graph) and writes the plan back.
pub fn point_plan_at(plan: &Path, base_url: &str) -> Result<(), DemoError> {
    let text = fs::read_to_string(plan).map_err(|e| DemoError::io(plan, e))?;
    let mut doc: toml::Table = text.parse().map_err(|e: toml::de::Error| DemoError::Plan {
        path: plan.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut pointed = 0;
    if let Some(toml::Value::Table(dests)) = doc.get_mut("destination") {
        for (_, dest) in dests.iter_mut() {
            if let toml::Value::Table(d) = dest
                && d.get("kind").and_then(toml::Value::as_str) == Some("graph")
            {
                d.insert("graph_url".into(), base_url.into());
                d.insert("login_url".into(), base_url.into());
                pointed += 1;
            }
        }
    }
    if pointed == 0 {
        return Err(DemoError::Plan {
            path: plan.to_path_buf(),
            reason: "the demo plan has no [destination.NAME] with kind = \"graph\"".into(),
        });
    }
    let body = toml::to_string(&doc).map_err(|e| DemoError::Plan {
        path: plan.to_path_buf(),
        reason: e.to_string(),
    })?;
    let out = format!(
        "# Written by `mailferry demo`: the sample plan with its Graph destination pointed at the\n\
         # demo's emulator ({base_url}, gone once the demo ends).\n{body}"
    );
    fs::write(plan, out).map_err(|e| DemoError::io(plan, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_time_comes_from_the_name() {
        let t = delivery_time("1717228800.M47514P4006.demo-mail,S=2639,W=2686:2,S").unwrap();
        assert_eq!(
            t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(),
            1_717_228_800
        );
        assert!(delivery_time("dovecot-uidlist").is_none());
        assert!(delivery_time("LICENSES.md").is_none());
        assert!(delivery_time("12ab.x").is_none());
    }

    #[test]
    fn plan_is_pointed_at_the_emulator_and_other_keys_stay() {
        let tmp = tempfile::tempdir().unwrap();
        let plan = tmp.path().join("plan.toml");
        fs::write(
            &plan,
            "mailboxes = \"m.csv\"\n[source]\nkind = \"maildir\"\n[destination.e]\nkind = \"graph\"\ntenant = \"t\"\ngraph_url = \"http://127.0.0.1:0\"\n",
        )
        .unwrap();
        point_plan_at(&plan, "http://127.0.0.1:4321").unwrap();
        let doc: toml::Table = fs::read_to_string(&plan).unwrap().parse().unwrap();
        let d = &doc["destination"]["e"];
        assert_eq!(d["graph_url"].as_str(), Some("http://127.0.0.1:4321"));
        assert_eq!(d["login_url"].as_str(), Some("http://127.0.0.1:4321"));
        assert_eq!(d["tenant"].as_str(), Some("t"));
        assert_eq!(doc["mailboxes"].as_str(), Some("m.csv"));

        fs::write(&plan, "mailboxes = \"m.csv\"\n").unwrap();
        assert!(point_plan_at(&plan, "http://x").is_err());
    }

    #[test]
    fn a_kept_directory_must_be_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keep");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("old.ledger.sqlite"), b"x").unwrap();
        assert!(matches!(
            WorkDir::create(Some(&dir)),
            Err(DemoError::KeepNotEmpty(_))
        ));
        fs::remove_dir_all(&dir).unwrap();
        let w = WorkDir::create(Some(&dir)).unwrap();
        drop(w);
        assert!(dir.exists(), "a kept directory survives");
        let temp = WorkDir::create(None).unwrap();
        let path = temp.path.clone();
        assert!(path.is_dir());
        drop(temp);
        assert!(!path.exists(), "a temporary directory is removed");
    }
}
