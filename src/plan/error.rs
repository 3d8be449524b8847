//! The plan's one error type. Every variant names the file, and where there is one the line and
//! field, so an operator can go straight to the typo. Secret values never appear in it.

use std::path::PathBuf;

/// A problem with the plan or its CSV.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A file could not be read.
    #[error("{}: cannot read: {source}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `plan.toml` is not valid TOML or does not fit the schema (unknown key, wrong type).
    #[error("{} line {line}, column {column}: {message}", file.display())]
    Toml {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// A setting in `plan.toml` is invalid (named by its dotted key, e.g. `source.port`).
    #[error("{}, key {key}: {message}", file.display())]
    Setting {
        file: PathBuf,
        key: String,
        message: String,
    },
    /// The CSV as a whole is unusable (no header, missing required column).
    #[error("{}: {message}", file.display())]
    Csv { file: PathBuf, message: String },
    /// One CSV row is bad; the other rows still load.
    #[error("{} line {line}, field {field}: {message}", file.display())]
    Row {
        file: PathBuf,
        line: usize,
        field: String,
        message: String,
    },
    /// `--mailbox` named an address the plan does not hold.
    #[error("{}: no mailbox {email} in the plan's CSV", plan.display())]
    UnknownMailbox { plan: PathBuf, email: String },
}

impl PlanError {
    /// The CSV line of a row error.
    pub fn line(&self) -> Option<usize> {
        match self {
            PlanError::Row { line, .. } | PlanError::Toml { line, .. } => Some(*line),
            _ => None,
        }
    }
}
