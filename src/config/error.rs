//! `ConfigError`: a config problem located by file, line, column and key.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Located),
}

/// Where a problem is and what it is. `Display` gives `FILE:LINE:COL: key `K`: MESSAGE`.
#[derive(Debug)]
pub struct Located {
    pub path: PathBuf,
    /// 1-based; 0 when the place is unknown (the message then names the key only).
    pub line: usize,
    pub column: usize,
    /// Dotted key path such as `test[1].broker`; empty for pure syntax errors.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.key.is_empty() {
            write!(f, ": key `{}`", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl ConfigError {
    pub(super) fn io(path: &Path, source: std::io::Error) -> Self {
        ConfigError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A serde/TOML error, located by the span toml attaches to it.
    pub(super) fn from_toml(path: &Path, text: &str, key: String, e: toml::de::Error) -> Self {
        let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
        let key = if key == "." { String::new() } else { key };
        ConfigError::Invalid(Located {
            path: path.to_path_buf(),
            line,
            column,
            key,
            message: e.message().trim().to_string(),
        })
    }

    /// A semantic error in the table at `table`, pointing at the line of the last component of `key`
    /// inside that table when it is written there (else at the table itself).
    pub(super) fn at_key(
        path: &Path,
        text: &str,
        table: Range<usize>,
        key: String,
        message: String,
    ) -> Self {
        // `topics[2]` is written as `topics = [...]`.
        let leaf = key.rsplit('.').next().unwrap_or("");
        let leaf = leaf.split('[').next().unwrap_or(leaf);
        // toml's span of an array-of-tables element may cover only its `[[header]]`, so search from the
        // header to the next header.
        let start = table.start.min(text.len());
        let end = table_end(text, start).max(table.end.min(text.len()));
        let offset = find_key_line(&text[start..end], leaf)
            .map(|o| start + o)
            .unwrap_or(start);
        let (line, column) = line_col(text, offset);
        ConfigError::Invalid(Located {
            path: path.to_path_buf(),
            line,
            column,
            key,
            message,
        })
    }

    /// A semantic error on a top-level key such as `xymon.combo_max`.
    pub(super) fn at_line(path: &Path, text: &str, key: &str, message: String) -> Self {
        let leaf = key.rsplit('.').next().unwrap_or("");
        // Within its table when the key names one (`interval` is also a key of every `[[test]]`).
        let in_table = key
            .split_once('.')
            .and_then(|(table, _)| table_header(text, table))
            .and_then(|start| {
                let end = table_end(text, start);
                find_key_line(&text[start..end], leaf).map(|o| start + o)
            });
        let (line, column) = in_table
            .or_else(|| find_key_line(text, leaf))
            .map(|o| line_col(text, o))
            .unwrap_or((0, 0));
        ConfigError::Invalid(Located {
            path: path.to_path_buf(),
            line,
            column,
            key: key.into(),
            message,
        })
    }

    /// The located detail, for tests and tools.
    pub fn located(&self) -> Option<&Located> {
        match self {
            ConfigError::Invalid(l) => Some(l),
            ConfigError::Io { .. } => None,
        }
    }
}

/// Byte offset of the first line in `text` that assigns `key` (`key = ...`).
fn find_key_line(text: &str, key: &str) -> Option<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix(key) {
            if rest.trim_start().starts_with('=') {
                return Some(offset + (line.len() - trimmed.len()));
            }
        }
        offset += line.len();
    }
    None
}

/// Byte offset of the line `[table]`.
fn table_header(text: &str, table: &str) -> Option<usize> {
    let header = format!("[{table}]");
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim() == header {
            return Some(offset);
        }
        offset += line.len();
    }
    None
}

/// Byte offset where the table whose header starts at `start` ends: the next line starting with `[`.
fn table_end(text: &str, start: usize) -> usize {
    let mut offset = start;
    for (i, line) in text[start..].split_inclusive('\n').enumerate() {
        if i > 0 && line.trim_start().starts_with('[') {
            return offset;
        }
        offset += line.len();
    }
    text.len()
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map(|p| p + 1)
        .unwrap_or(0);
    let column = text[line_start..offset].chars().count() + 1;
    (line, column)
}
