//! The reports: `last` (text and JSON listings in upstream's exact layout), `who` and
//! `users` (who is logged in now), and `lastlog` (each user's newest login).
//!
//! Every report reads its rows from a [`RowSource`]: the database file itself
//! ([`crate::Database`], with its indexes and chunked reads), or the rows the daemon's
//! `ReadEntries` stream sent ([`Rows`], held in memory). What happened to each row (crash,
//! still logged in, shutdowns) is the history model's answer ([`crate::history`]), and a
//! report only lays it out; the same rows print the same bytes from either source.

mod format;
mod last;
pub mod lastb;
pub mod lastlog;
pub mod logind;
mod source;
pub mod who;

use std::io;

pub use format::{TimeFormat, format_length};
pub use last::{HostColumn, LastOptions, Resolve, last};
pub use source::{RowSource, Rows, Stream};

use crate::storage;

/// Why a report stopped: a read failed, or the output could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0}")]
    Storage(#[from] storage::Error),
    /// The daemon's stream failed (a report read through [`source::Stream`]).
    #[error("{0}")]
    Daemon(#[from] crate::varlink::Error),
    #[error("{0}")]
    Io(#[from] io::Error),
}
