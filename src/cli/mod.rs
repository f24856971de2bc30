//! The CLI's commands, each on a compiled `Plan`: `check`, `explain` and `xymon-config` (and `run`,
//! which hands the plan to the supervisor).
//!
//! Fed by `main.rs`, which parses the arguments; everything here returns text for it to print.

pub mod explain;
mod explain_discovery;
pub mod xymon_config;

use crate::config::{Config, ConfigError};
use crate::plan::Plan;
use std::path::Path;

/// Reads, validates and compiles a config file: what every command starts with.
///
/// # Errors
/// The file cannot be read, does not parse, is not valid, or its plan does not compile; the error names
/// the file, the line and the key.
pub fn load(path: &Path) -> Result<Plan, ConfigError> {
    Plan::compile(&Config::from_file(path)?)
}

/// The line `check` prints for a valid config.
pub fn check_summary(path: &Path, plan: &Plan) -> String {
    format!(
        "{}: OK ({} brokers, {} tests)",
        path.display(),
        plan.brokers.len(),
        plan.test_count()
    )
}
