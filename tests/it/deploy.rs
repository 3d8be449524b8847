//! The deployment files in deploy/ (Dockerfile, docker compose, Kubernetes Job) and the commands
//! in docs/fleet.md: every mailferry command line in them uses flags the CLI really has (checked
//! against `mailferry <command> --help`), ledger URLs parse, the plan in the Kubernetes
//! ConfigMap loads, and the properties the docs promise (scalable workers, a read-only plan,
//! secrets from Secrets, no `completions`) hold. No YAML parser: the files keep their command
//! lines as one-line flow lists (JSON arrays), which is what is checked.

use std::path::{Path, PathBuf};
use std::process::Command;

use mailferry::ledger::postgres::{PgUrl, UrlOrigin};
use mailferry::plan::Plan;

fn repo(path: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `mailferry <path…> --help`, cached per command path.
fn help(path: &[String]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mailferry"))
        .args(path)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "mailferry {path:?} --help failed");
    String::from_utf8(out.stdout).unwrap()
}

/// Checks one command line (the words after `mailferry`): its subcommand exists and each
/// `--flag` is one the subcommand's help lists. Returns the value after `--ledger`, if any.
fn check_command(words: &[String], origin: &str) -> Option<String> {
    let path: Vec<String> = words
        .iter()
        .take_while(|w| !w.starts_with('-'))
        .cloned()
        .collect();
    assert!(!path.is_empty(), "{origin}: no subcommand in {words:?}");
    let text = help(&path);
    for flag in words.iter().filter(|w| w.starts_with("--")) {
        let flag = flag.split('=').next().unwrap();
        assert!(
            text.contains(&format!("{flag} ")) || text.contains(&format!("{flag}\n")),
            "{origin}: mailferry {} has no {flag}:\n{text}",
            path.join(" ")
        );
    }
    let ledger = words
        .iter()
        .position(|w| w == "--ledger")
        .map(|i| words[i + 1].clone());
    if let Some(url) = &ledger {
        PgUrl::parse(url, UrlOrigin::CommandLine, None)
            .unwrap_or_else(|e| panic!("{origin}: {url}: {e}"));
    }
    ledger
}

/// The one-line flow lists after `key:` (`command: [...]`, `args: [...]`).
fn flow_lists(text: &str, key: &str) -> Vec<Vec<String>> {
    let prefix = format!("{key}: [");
    text.lines()
        .map(str::trim)
        .filter(|l| l.starts_with(&prefix))
        .map(|l| serde_json::from_str(&l[key.len() + 1..]).unwrap())
        .collect()
}

/// The block scalar `name: |` of a YAML map, de-indented.
fn block(text: &str, name: &str) -> String {
    let mut lines = text
        .lines()
        .skip_while(|l| l.trim() != format!("{name}: |"));
    let head = lines.next().expect(name);
    let indent = head.len() - head.trim_start().len() + 2;
    let mut out = String::new();
    for l in lines {
        if !l.trim().is_empty() && l.len() - l.trim_start().len() < indent {
            break;
        }
        out.push_str(l.get(indent..).unwrap_or(""));
        out.push('\n');
    }
    out
}

#[test]
fn the_compose_file_runs_scalable_workers_with_real_flags() {
    let compose = repo("deploy/compose.yaml");
    let lists = flow_lists(&compose, "command");
    assert_eq!(lists.len(), 2, "the worker and the status service");
    for words in &lists {
        let url = check_command(words, "deploy/compose.yaml").expect("--ledger");
        assert!(
            url.starts_with("postgres://mailferry@db/mailferry"),
            "{url}"
        );
        assert!(words.contains(&"/plan/plan.toml".to_owned()), "{words:?}");
    }
    assert_eq!(lists[0][0], "migrate");
    assert!(compose.contains("image: postgres:15"));
    assert!(compose.contains("healthcheck:") && compose.contains("pg_isready"));
    assert!(compose.contains("condition: service_healthy"));
    assert!(
        compose.contains(":/plan:ro"),
        "the plan is mounted read-only"
    );
    assert!(compose.contains("env_file: mailferry.env"));
    // `--scale worker=N` needs workers without a fixed name or published port.
    assert!(
        !compose.lines().any(|l| {
            let l = l.trim_start();
            l.starts_with("container_name:") || l.starts_with("ports:")
        }),
        "a fixed container name or published port"
    );
    // The example env file names every variable the deployment needs, with no real secret.
    let env = repo("deploy/mailferry.env.example");
    for var in [
        "PGPASSWORD=",
        "POSTGRES_PASSWORD=",
        "MAILFERRY_GRAPH_SECRET=",
    ] {
        assert!(env.contains(var), "{var}");
    }
    let ignore = repo("deploy/Dockerfile.dockerignore");
    assert!(
        ignore.contains("deploy/mailferry.env"),
        "secrets stay out of the image"
    );
}

#[test]
fn the_dockerfile_builds_with_the_crates_toolchain() {
    let docker = repo("deploy/Dockerfile");
    let manifest = repo("Cargo.toml");
    let version = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"');
    assert!(
        docker.contains(&format!("FROM rust:{version}")),
        "the build stage uses rust {version}"
    );
    assert!(docker.contains("FROM debian:bookworm-slim") && docker.contains("ca-certificates"));
    assert!(docker.contains("--locked") && docker.contains("ENTRYPOINT [\"mailferry\"]"));
}

#[test]
fn the_kubernetes_job_runs_workers_with_real_flags_and_secrets_from_secrets() {
    let job = repo("deploy/k8s/job.yaml");
    let lists = flow_lists(&job, "args");
    assert_eq!(lists.len(), 1);
    assert_eq!(lists[0][0], "migrate");
    check_command(&lists[0], "deploy/k8s/job.yaml").expect("--ledger");
    assert!(job.contains("parallelism:"));
    assert!(
        !job.lines()
            .any(|l| l.trim_start().starts_with("completions:")),
        "completions stays unset: each worker exits 0 when nothing is left to claim"
    );
    assert!(job.contains("restartPolicy: OnFailure"));
    // The plan and CSV of the ConfigMap load; every secret they name comes from a Secret.
    let dir = tempfile::tempdir().unwrap();
    let plan_toml = block(&job, "plan.toml");
    std::fs::write(dir.path().join("plan.toml"), &plan_toml).unwrap();
    std::fs::write(
        dir.path().join("mailboxes.csv"),
        block(&job, "mailboxes.csv"),
    )
    .unwrap();
    let plan = Plan::load_with_env(&dir.path().join("plan.toml"), &|_| Some("x".into()))
        .unwrap_or_else(|e| panic!("the ConfigMap's plan: {e}\n{plan_toml}"));
    assert_eq!(plan.mailboxes.len(), 2);
    let vars: Vec<&str> = plan_toml
        .lines()
        .filter(|l| l.contains("_env = "))
        .map(|l| l.split('"').nth(1).unwrap())
        .chain(["PGPASSWORD"])
        .collect();
    assert!(vars.len() >= 3, "{vars:?}");
    for var in vars {
        let at = job
            .find(&format!("- name: {var}\n"))
            .unwrap_or_else(|| panic!("{var} is not set in the Job"));
        assert!(
            job[at..]
                .lines()
                .take(4)
                .any(|l| l.contains("secretKeyRef:")),
            "{var} comes from a Secret"
        );
    }
}

#[test]
fn the_commands_in_the_fleet_docs_use_real_flags() {
    let doc = repo("docs/fleet.md");
    let mut checked = 0;
    for line in doc.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("mailferry ") else {
            continue;
        };
        // Shell words, with quotes dropped and a trailing comment cut.
        let rest = rest.split(" #").next().unwrap();
        let words: Vec<String> = rest
            .split_whitespace()
            .map(|w| w.trim_matches(|c| c == '\'' || c == '"').to_owned())
            .collect();
        let origin = PathBuf::from("docs/fleet.md");
        check_command(&words, &origin.display().to_string());
        checked += 1;
    }
    assert!(
        checked >= 5,
        "only {checked} commands found in docs/fleet.md"
    );
}
