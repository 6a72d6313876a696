//! The command line's one error type and its exit codes.

use thiserror::Error;

/// Why a command failed. Each message is one line a user can act on.
#[derive(Debug, Error)]
pub enum CliError {
    /// The arguments make no sense together (exit code 2, like a parse error).
    #[error("{0}")]
    Usage(String),
    /// A format refused the requested configuration (exit code 2).
    #[error("{0}")]
    Config(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// A memory image cannot be decoded at all (too short, bad root, ...).
    #[error("{0}")]
    Image(String),
    /// A `--map` of `dump` was refused by the table (exit code 2: a bad argument).
    #[error("--map {spec}: {source}")]
    Map {
        /// The `--map` argument as given.
        spec: String,
        /// Why the table refused it.
        source: pgtable_core::Error,
    },
    /// The simulation saw errors (it printed them).
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    /// The process exit code: 2 for bad arguments (nothing ran), 1 for a command
    /// that ran and failed.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) | CliError::Config(_) | CliError::Map { .. } => 2,
            _ => 1,
        }
    }
}
