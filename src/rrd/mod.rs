//! RRD files for graphed tests, written through librrd (the `rrd` crate); only the dashboard's graphs are
//! drawn by an `rrdtool graph` child.
//!
//! Fed by the status builder, which submits an [`RrdSample`] (raw counters of one snapshot)
//! per graphed test to the [`RrdWriter`]; read by Xymon's showgraph.cgi/trends page (files in
//! `<rrd_dir>/<host>/`, graphs from `graphs.d/`) and by the dashboard via [`render_graph`].
//!
//! * [`defs`]: layouts from `rrd-defs/*.toml` (built in, or an override dir).
//! * [`writer`]: the blocking worker thread that creates/updates files, with per-file health.
//! * [`graph`]: graphs.cfg parsing and PNG rendering (an `rrdtool graph` child; the daemon links
//!   librrd statically without its graph code, see build.rs).
//!
//! Design: librrd is blocking and its thread safety is not documented, so every librrd call
//! in this module runs under one process-wide lock ([`librrd_lock`]).

pub mod defs;
mod error;
pub mod graph;
mod rrdfile;
pub mod writer;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

pub use defs::{RrdDef, RrdDefs};
pub use error::RrdError;
pub use graph::{render_graph, GraphDef, GraphPeriod};
pub use writer::{RrdProbe, RrdSample, RrdWriter};

/// Serialises all librrd calls of this process (see the module header).
static LIBRRD: Mutex<()> = Mutex::new(());

/// Takes the librrd lock; a panic while it was held cannot leave librrd state that a lock
/// protects, so a poisoned lock is simply taken over.
pub(crate) fn librrd_lock() -> MutexGuard<'static, ()> {
    LIBRRD.lock().unwrap_or_else(|e| e.into_inner())
}

/// Checks that a host name (hosts.cfg name, with dots) is safe as a directory under rrd_dir:
/// charset `[A-Za-z0-9._-]`, no leading dot, no `..`, at most 255 bytes.
///
/// # Errors
/// [`RrdError::InvalidHost`] naming the host.
pub fn validate_host(host: &str) -> Result<(), RrdError> {
    validate_name(host).map_err(|()| RrdError::InvalidHost(host.to_string()))
}

/// Same rule for host names and rrd names (file stems).
pub(crate) fn validate_name(name: &str) -> Result<(), ()> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(())
    }
}

/// Startup check of rrd_dir: it must exist, be a directory, and accept a new file
/// (probed by creating and removing a dot-file, which the trends page ignores).
///
/// # Errors
/// [`RrdError::Missing`], [`RrdError::NotADirectory`] or [`RrdError::NotWritable`], each
/// naming the path.
pub fn check_rrd_dir(path: &Path) -> Result<(), RrdError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(RrdError::Missing {
                what: "rrd_dir",
                path: path.to_path_buf(),
            })
        }
        Err(source) => {
            return Err(RrdError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    if !meta.is_dir() {
        return Err(RrdError::NotADirectory {
            what: "rrd_dir",
            path: path.to_path_buf(),
        });
    }
    let probe = path.join(format!(".xymon-mqtt-probe.{}", std::process::id()));
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|source| RrdError::NotWritable {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        let cases = [
            ("broker.example.com", true),
            ("mqtt-bridge_1", true),
            ("a", true),
            ("", false),
            (".hidden", false),
            ("..", false),
            ("a..b", false),
            ("../etc", false),
            ("a/b", false),
            ("/abs", false),
            ("a b", false),
            ("a,b", false),
            ("a\nb", false),
            ("héllo", false),
            ("a\0b", false),
        ];
        for (host, ok) in cases {
            assert_eq!(validate_host(host).is_ok(), ok, "{host:?}");
        }
        assert!(validate_host(&"a".repeat(256)).is_err());
        let msg = validate_host("../x").unwrap_err().to_string();
        assert!(msg.contains("\"../x\""), "{msg}");
    }

    #[test]
    fn rrd_dir_checks() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_rrd_dir(dir.path()).is_ok());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "probe left behind"
        );

        let missing = dir.path().join("missing");
        let e = check_rrd_dir(&missing).unwrap_err();
        assert!(matches!(e, RrdError::Missing { .. }));
        assert!(e.to_string().contains(&*missing.to_string_lossy()));

        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let e = check_rrd_dir(&file).unwrap_err();
        assert!(matches!(e, RrdError::NotADirectory { .. }), "{e}");
    }
}

#[cfg(all(test, librrd_static))]
mod linking {
    /// build.rs links librrd.a: the process maps neither librrd.so nor the graph stack it would bring
    /// (about 8 MB resident in every process). This test binary links the library crate the same way
    /// the daemon does.
    #[test]
    fn librrd_is_linked_statically_without_its_graph_stack() {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        for lib in [
            "librrd.so",
            "libcairo",
            "libpango",
            "libfontconfig",
            "libX11",
        ] {
            assert!(!maps.contains(lib), "{lib} is mapped:\n{maps}");
        }
        // ... and librrd's create/update/info code is there and works.
        let defs = super::RrdDefs::load_builtin().unwrap();
        let name = defs.names().next().unwrap().to_string();
        let def = defs.get(&name).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.rrd");
        super::rrdfile::create(&path, def, 1_700_000_000).unwrap();
        let values = vec![1.0; def.ds.len()];
        super::rrdfile::update(&path, 1_700_000_060, &values).unwrap();
        assert_eq!(
            super::rrdfile::check_layout(&path, def).unwrap(),
            1_700_000_060
        );
    }
}
