//! `RrdError`: every failure of the `rrd` module.
//!
//! Fed by `defs` (layout files), `writer` (rrd_dir checks, librrd create/update/info) and
//! `graph` (graphs.cfg parsing, the `rrdtool graph` child). Read by the daemon at startup (fatal errors)
//! and, as text, by the status builder through `RrdWriter::health`.

use std::path::PathBuf;

/// Errors of the RRD layer. Each variant names the file or path it is about.
#[derive(Debug, thiserror::Error)]
pub enum RrdError {
    /// An rrd-defs file is not valid TOML or has unknown/missing keys.
    #[error("rrd-defs {file}: {message}")]
    DefParse { file: String, message: String },
    /// An rrd-defs file parsed but its step, DS or RRA lines are invalid.
    #[error("rrd-defs {file}: {message}")]
    DefInvalid { file: String, message: String },
    /// The rrd_dir (or an rrd-defs directory) does not exist.
    #[error("{what} {path} does not exist")]
    Missing { what: &'static str, path: PathBuf },
    /// The rrd_dir is not a directory.
    #[error("{what} {path} is not a directory")]
    NotADirectory { what: &'static str, path: PathBuf },
    /// The rrd_dir exists but files cannot be created in it.
    #[error("rrd_dir {path} is not writable: {source}")]
    NotWritable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Any other I/O error on a path.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A host name that could escape rrd_dir or is not a Xymon host name.
    #[error("invalid host name {0:?} (allowed: [A-Za-z0-9._-], no leading dot, no \"..\")")]
    InvalidHost(String),
    /// A sample names an RRD kind that has no rrd-defs entry.
    #[error("unknown rrd definition {0:?}")]
    UnknownRrd(String),
    /// A sample has the wrong number of values for its definition.
    #[error("{rrd}: {got} values for {expected} data sources")]
    ValueCount {
        rrd: String,
        expected: usize,
        got: usize,
    },
    /// An existing RRD file has another layout than its definition; it is left untouched.
    #[error("{path} has another layout than rrd-defs ({detail}); not writing to it")]
    LayoutMismatch { path: PathBuf, detail: String },
    /// A new RRD file does not fit on its file system.
    #[error("cannot create {path}: No space left on device ({free} bytes free, the file needs about {needed})")]
    NoSpace {
        path: PathBuf,
        free: u64,
        needed: u64,
    },
    /// librrd reported an error.
    #[error("librrd {op} {path}: {source}")]
    Librrd {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: rrd::error::RrdError,
    },
    /// The `rrdtool graph` child reported an error (e.g. a missing RRD file).
    #[error("rrdtool graph {path}: {message}")]
    Rrdtool { path: PathBuf, message: String },
    /// The `rrdtool graph` child could not be started or did not finish in time.
    #[error("rrdtool graph: {0}")]
    RrdtoolRun(String),
    /// A graphs.cfg-format file has a line this renderer cannot use.
    #[error("graph definition {file}:{line}: {message}")]
    GraphParse {
        file: String,
        line: usize,
        message: String,
    },
    /// The writer thread could not be started.
    #[error("cannot start rrd writer thread: {0}")]
    Spawn(#[source] std::io::Error),
}
