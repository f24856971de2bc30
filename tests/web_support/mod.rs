//! Kept only for the benchmark harness: bench/main.rs includes this file by path
//! (`#[path = "../tests/web_support/mod.rs"]`). The web helpers live in tests/common/web.rs; once the
//! bench uses `common::web` instead, this file goes.

pub use crate::common::web::*;
