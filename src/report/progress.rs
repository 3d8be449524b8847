//! Live progress from the engine's events: indicatif bars on a terminal, plain periodic lines
//! when stderr is not a terminal (cron, CI, systemd), or one JSON object per event on stdout.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc::UnboundedReceiver;

use super::table::bytes;
use super::{Event, MailboxSummary};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// JSON lines on stdout.
    Json,
    /// Bars on stderr.
    Terminal,
    /// A line per active mailbox every `interval` on stderr.
    Plain { interval: Duration },
    /// Nothing.
    Quiet,
}

impl Mode {
    /// JSON if asked, bars on a terminal, plain lines otherwise.
    pub fn detect(json: bool) -> Mode {
        if json {
            Mode::Json
        } else if std::io::stderr().is_terminal() {
            Mode::Terminal
        } else {
            Mode::Plain {
                interval: Duration::from_secs(10),
            }
        }
    }
}

#[derive(Default)]
struct Active {
    planned: u64,
    planned_bytes: u64,
    copied: u64,
    bytes: u64,
    throttled: u64,
    bar: Option<ProgressBar>,
}

/// Shows events until the sender side closes; returns the finished mailboxes' summaries.
pub async fn show(mode: Mode, mut rx: UnboundedReceiver<Event>) -> Vec<MailboxSummary> {
    let started = Instant::now();
    let multi = MultiProgress::with_draw_target(match mode {
        Mode::Terminal => ProgressDrawTarget::stderr(),
        _ => ProgressDrawTarget::hidden(),
    });
    let style = ProgressStyle::with_template("{prefix:30!} [{bar:25}] {pos}/{len} msgs {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let mut active: BTreeMap<String, Active> = BTreeMap::new();
    let mut finished = Vec::new();
    let mut last_plain = Instant::now();
    let (mut total_msgs, mut total_bytes) = (0u64, 0u64);
    let (mut planned_msgs, mut planned_bytes, mut throttled) = (0u64, 0u64, 0u64);
    // The total sits below the mailboxes' bars (they are inserted before it).
    let total_bar = (mode == Mode::Terminal).then(|| {
        let b = multi.add(ProgressBar::new(0));
        b.set_style(style.clone());
        b.set_prefix("total");
        b
    });
    while let Some(ev) = rx.recv().await {
        if mode == Mode::Json
            && let Ok(line) = serde_json::to_string(&ev)
        {
            super::stdout::line(&line);
        }
        match ev {
            Event::MailboxStarted { mailbox, .. } => {
                let bar = (mode == Mode::Terminal).then(|| {
                    let b = match &total_bar {
                        Some(t) => multi.insert_before(t, ProgressBar::new(0)),
                        None => multi.add(ProgressBar::new(0)),
                    };
                    b.set_style(style.clone());
                    b.set_prefix(mailbox.clone());
                    b
                });
                active.insert(
                    mailbox,
                    Active {
                        bar,
                        ..Default::default()
                    },
                );
            }
            Event::FolderPlanned {
                mailbox,
                messages,
                bytes: b,
                ..
            } => {
                planned_msgs += messages;
                planned_bytes += b;
                if let Some(t) = &total_bar {
                    t.set_length(planned_msgs);
                }
                if let Some(a) = active.get_mut(&mailbox) {
                    a.planned += messages;
                    a.planned_bytes += b;
                    if let Some(bar) = &a.bar {
                        bar.set_length(a.planned);
                    }
                }
            }
            Event::Copied {
                mailbox,
                messages,
                bytes: b,
            } => {
                total_msgs += messages;
                total_bytes += b;
                if let Some(t) = &total_bar {
                    t.set_position(total_msgs);
                    t.set_message(rate_text(total_bytes, planned_bytes, throttled, started));
                }
                if let Some(a) = active.get_mut(&mailbox) {
                    a.copied += messages;
                    a.bytes += b;
                    if let Some(bar) = &a.bar {
                        bar.set_position(a.copied);
                        bar.set_message(rate_text(a.bytes, a.planned_bytes, a.throttled, started));
                    }
                }
            }
            Event::Throttled { mailbox, .. } => {
                throttled += 1;
                if let Some(a) = active.get_mut(&mailbox) {
                    a.throttled += 1;
                }
            }
            Event::ItemProblem { .. } => {}
            Event::MailboxFinished { summary } => {
                if let Some(bar) = active.remove(&summary.mailbox).and_then(|a| a.bar) {
                    bar.finish_and_clear();
                }
                if let Mode::Plain { .. } = mode {
                    eprintln!(
                        "{}: {} ({} copied, {}, {} present, {} failed)",
                        summary.mailbox,
                        summary.status,
                        summary.copied,
                        bytes(summary.copied_bytes),
                        summary.already_present,
                        summary.failed
                    );
                }
                finished.push(*summary);
            }
        }
        if let Mode::Plain { interval } = mode
            && last_plain.elapsed() >= interval
            && !active.is_empty()
        {
            last_plain = Instant::now();
            for (name, a) in &active {
                eprintln!(
                    "{name}: {}/{} msgs, {}",
                    a.copied,
                    a.planned,
                    rate_text(a.bytes, a.planned_bytes, a.throttled, started)
                );
            }
            eprintln!(
                "total: {total_msgs} msgs, {} in {:.0}s",
                bytes(total_bytes),
                started.elapsed().as_secs_f64()
            );
        }
    }
    let _ = multi.clear();
    finished
}

fn rate_text(done: u64, planned: u64, throttled: u64, started: Instant) -> String {
    let secs = started.elapsed().as_secs_f64().max(0.001);
    let rate = done as f64 / secs;
    let eta = if rate > 0.0 && planned > done {
        format!(", ETA {:.0}s", (planned - done) as f64 / rate)
    } else {
        String::new()
    };
    let thr = if throttled > 0 {
        format!(", throttled {throttled}x")
    } else {
        String::new()
    };
    format!(
        "{} of {}, {}/s{eta}{thr}",
        bytes(done),
        bytes(planned),
        bytes(rate as u64)
    )
}
