//! Live progress from the engine's events: indicatif bars on a terminal, plain periodic lines
//! when stderr is not a terminal (cron, CI, systemd), or one JSON object per event on stdout.
//!
//! Plain lines come on a timer, not on events: a log must show the run is alive every
//! interval even while nothing completes (one large message uploading). The ETA says it is
//! partial while a mailbox still has folders to list, since their size is not yet known.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use tokio::time::Instant;

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
    /// Folders the pass will list (`None` until the folder list is known), and listed so far.
    folders: Option<u64>,
    folders_planned: u64,
    /// Upload sessions in flight: messages, bytes sent, bytes in all.
    uploading: (u64, u64, u64),
    bar: Option<ProgressBar>,
}

impl Active {
    fn listing_incomplete(&self) -> bool {
        self.folders.is_none_or(|n| self.folders_planned < n)
    }
}

/// Shows events until the sender side closes; returns the finished mailboxes' summaries.
pub async fn show(mode: Mode, rx: UnboundedReceiver<Event>) -> Vec<MailboxSummary> {
    show_to(mode, rx, std::io::stderr()).await
}

/// [`show`], writing plain lines to `err`.
pub async fn show_to<W: Write>(
    mode: Mode,
    mut rx: UnboundedReceiver<Event>,
    mut err: W,
) -> Vec<MailboxSummary> {
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
    loop {
        let next_plain = match mode {
            Mode::Plain { interval } => Some(last_plain + interval),
            _ => None,
        };
        let ev = tokio::select! {
            ev = rx.recv() => ev,
            () = async {
                match next_plain {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            } => {
                last_plain = Instant::now();
                if !active.is_empty() {
                    plain_lines(&mut err, &active, total_msgs, total_bytes, started);
                }
                continue;
            }
        };
        let Some(ev) = ev else { break };
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
            Event::FoldersListed { mailbox, folders } => {
                if let Some(a) = active.get_mut(&mailbox) {
                    a.folders = Some(folders);
                }
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
                    a.folders_planned += 1;
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
                    let partial = active.values().any(Active::listing_incomplete);
                    t.set_message(rate_text(
                        total_bytes,
                        planned_bytes,
                        throttled,
                        started,
                        partial,
                    ));
                }
                if let Some(a) = active.get_mut(&mailbox) {
                    a.copied += messages;
                    a.bytes += b;
                    if let Some(bar) = &a.bar {
                        bar.set_position(a.copied);
                        bar.set_message(format!(
                            "{}{}",
                            rate_text(
                                a.bytes,
                                a.planned_bytes,
                                a.throttled,
                                started,
                                a.listing_incomplete(),
                            ),
                            uploading_text(a.uploading)
                        ));
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
            Event::Uploading {
                mailbox,
                messages,
                sent,
                total,
            } => {
                if let Some(a) = active.get_mut(&mailbox) {
                    a.uploading = (messages, sent, total);
                    if let Some(bar) = &a.bar {
                        bar.set_message(uploading_text(a.uploading));
                    }
                }
            }
            Event::MailboxFinished { summary } => {
                if let Some(bar) = active.remove(&summary.mailbox).and_then(|a| a.bar) {
                    bar.finish_and_clear();
                }
                if let Mode::Plain { .. } = mode {
                    let _ = writeln!(
                        err,
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
    }
    let _ = multi.clear();
    finished
}

/// One line per active mailbox and a total, whether or not anything completed since the last.
fn plain_lines(
    err: &mut impl Write,
    active: &BTreeMap<String, Active>,
    total_msgs: u64,
    total_bytes: u64,
    started: Instant,
) {
    for (name, a) in active {
        let listing = match a.folders {
            Some(n) if a.folders_planned < n => {
                format!(" ({} of {n} folders listed)", a.folders_planned)
            }
            None => " (listing folders)".to_owned(),
            Some(_) => String::new(),
        };
        let _ = writeln!(
            err,
            "{name}: {}/{} msgs{listing}, {}{}",
            a.copied,
            a.planned,
            rate_text(
                a.bytes,
                a.planned_bytes,
                a.throttled,
                started,
                a.listing_incomplete()
            ),
            uploading_text(a.uploading)
        );
    }
    let _ = writeln!(
        err,
        "total: {total_msgs} msgs, {} in {:.0}s",
        bytes(total_bytes),
        started.elapsed().as_secs_f64()
    );
}

/// `, uploading 1 message, 37.5 of 140.0 MB sent` while upload sessions run, else nothing: the
/// line moves while one large message takes minutes.
fn uploading_text((messages, sent, total): (u64, u64, u64)) -> String {
    if messages == 0 {
        return String::new();
    }
    let s = if messages == 1 { "" } else { "s" };
    format!(
        ", uploading {messages} message{s}, {} of {} sent",
        bytes(sent),
        bytes(total)
    )
}

fn rate_text(done: u64, planned: u64, throttled: u64, started: Instant, partial: bool) -> String {
    let secs = started.elapsed().as_secs_f64().max(0.001);
    let rate = done as f64 / secs;
    let eta = if rate > 0.0 && planned > done {
        let note = if partial {
            " (partial: folders still being listed)"
        } else {
            ""
        };
        format!(", ETA {:.0}s{note}", (planned - done) as f64 / rate)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// With nothing completing for a minute (one large upload), plain mode still prints a line
    /// every interval, and the ETA says it is partial while folders remain to be listed.
    #[tokio::test(start_paused = true)]
    async fn plain_lines_come_on_a_timer_and_mark_a_partial_eta() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let mb = "ann@example.org".to_owned();
        for ev in [
            Event::MailboxStarted {
                mailbox: mb.clone(),
                destination: "graph".into(),
            },
            Event::FoldersListed {
                mailbox: mb.clone(),
                folders: 2,
            },
            Event::FolderPlanned {
                mailbox: mb.clone(),
                folder: "INBOX".into(),
                folder_name: "INBOX".into(),
                messages: 10,
                bytes: 10_000,
            },
        ] {
            tx.send(ev).unwrap();
        }
        let sender = async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            tx.send(Event::Copied {
                mailbox: mb,
                messages: 1,
                bytes: 1000,
            })
            .unwrap();
            // Then nothing for a long while.
            tokio::time::sleep(Duration::from_secs(90)).await;
            drop(tx);
        };
        let mut out = Vec::new();
        let interval = Duration::from_secs(30);
        tokio::join!(show_to(Mode::Plain { interval }, rx, &mut out), sender);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("ann@")).collect();
        assert_eq!(lines.len(), 3, "one line per 30 s over 95 s:\n{text}");
        assert!(
            lines.iter().all(|l| l.contains("1 of 2 folders listed")
                && l.contains("ETA")
                && l.contains("partial")),
            "{text}"
        );
    }

    #[test]
    fn json_events_carry_the_decoded_folder_name_beside_the_raw_one() {
        let ev = Event::FolderPlanned {
            mailbox: "ann@example.org".into(),
            folder: "Entw&APw-rfe".into(),
            folder_name: "Entwürfe".into(),
            messages: 1,
            bytes: 1,
        };
        let v: serde_json::Value = serde_json::to_value(&ev).unwrap();
        assert_eq!(v["folder"], "Entw&APw-rfe");
        assert_eq!(v["folder_name"], "Entwürfe");
    }
}
