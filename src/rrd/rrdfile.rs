//! One RRD file: create from a definition, compare an existing file's layout, update.
//!
//! Fed by the writer thread (`writer`), which owns the only calls into these functions
//! besides tests. Every librrd call here holds the module's librrd lock.

use std::collections::HashMap;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use rrd::ops::create::{Archive, DataSource, DataSourceName};
use rrd::ops::info::InfoValue;
use rrd::ops::update::{update_all, BatchTime, Datum, Options};

use super::defs::{DsDef, DsKind, RrdDef};
use super::{librrd_lock, RrdError};

/// Mode of host directories, as xymond_rrd creates them.
const DIR_MODE: u32 = 0o755;
/// Mode of RRD files (readable by the web server user for showgraph.cgi).
const FILE_MODE: u32 = 0o644;

fn librrd<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(rrd::error::RrdError) -> RrdError + 'a {
    move |source| RrdError::Librrd {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn invalid_def(def: &RrdDef, message: String) -> RrdError {
    RrdError::DefInvalid {
        file: def.name.clone(),
        message,
    }
}

/// Creates `dir` (one level, mode 0755) unless it exists. Losing a race with xymond_rrd
/// (`EEXIST`) is fine.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), RrdError> {
    match std::fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
        Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
    .map_err(|source| RrdError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

fn data_source(def: &RrdDef, ds: &DsDef) -> Result<DataSource, RrdError> {
    let name = DataSourceName::new(ds.name.as_str())
        .map_err(|e| invalid_def(def, format!("DS {}: {e}", ds.name)))?;
    // Integer limits were checked to be whole and >= 0 by defs validation.
    let int = |v: Option<f64>| v.map(|x| x as u64);
    Ok(match ds.kind {
        DsKind::Gauge => DataSource::gauge(&name, ds.heartbeat, ds.min, ds.max),
        DsKind::DCounter => DataSource::dcounter(&name, ds.heartbeat, ds.min, ds.max),
        DsKind::DDerive => DataSource::dderive(&name, ds.heartbeat, ds.min, ds.max),
        DsKind::Counter => DataSource::counter(&name, ds.heartbeat, int(ds.min), int(ds.max)),
        DsKind::Derive => DataSource::derive(&name, ds.heartbeat, int(ds.min), int(ds.max)),
        DsKind::Absolute => DataSource::absolute(&name, ds.heartbeat, int(ds.min), int(ds.max)),
    })
}

/// Creates `path` from `def` so that the first update may be at `first_update`; never
/// overwrites an existing file (librrd `--no-overwrite`). The file ends up mode 0644.
pub(crate) fn create(path: &Path, def: &RrdDef, first_update: i64) -> Result<(), RrdError> {
    let ds = def
        .ds
        .iter()
        .map(|d| data_source(def, d))
        .collect::<Result<Vec<_>, _>>()?;
    let rra = def
        .rra
        .iter()
        .map(|r| {
            Archive::new(r.cf.to_rrd(), r.xff, r.steps, r.rows)
                .map_err(|e| invalid_def(def, format!("RRA: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let start = UNIX_EPOCH + Duration::from_secs(first_update.saturating_sub(10).max(0) as u64);
    {
        let _guard = librrd_lock();
        rrd::ops::create::create(
            path,
            start,
            Duration::from_secs(def.step.into()),
            true,
            None,
            &[],
            &ds,
            &rra,
        )
        .map_err(|source| create_error(path, def, source))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(FILE_MODE)).map_err(|source| {
        RrdError::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// The error of a failed create. librrd reports a full file system with an empty message (and removes
/// its half-written file), so the free space is checked here and a shortage named as such.
fn create_error(path: &Path, def: &RrdDef, source: rrd::error::RrdError) -> RrdError {
    // The data rows, 8 bytes per value, plus one block for the headers (a few hundred bytes per DS and RRA).
    let rows: u64 = def.rra.iter().map(|r| u64::from(r.rows)).sum();
    let needed = rows * def.ds.len() as u64 * 8 + 4096;
    match path.parent().and_then(free_bytes) {
        Some(free) if free < needed => RrdError::NoSpace {
            path: path.to_path_buf(),
            free,
            needed,
        },
        _ => librrd("create", path)(source),
    }
}

/// Bytes an unprivileged user may still write on the file system of `dir` (statvfs's `f_bavail`).
// fsblkcnt_t and c_ulong are 64 bits wide here, 32 on some targets: the conversions are for those.
#[allow(clippy::useless_conversion)]
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path; statvfs fills `st` and returns 0, or fails and leaves it unread.
    if unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled `st`.
    let st = unsafe { st.assume_init() };
    Some(u64::from(st.f_bavail).saturating_mul(u64::from(st.f_frsize)))
}

fn count(info: &HashMap<String, InfoValue>, key: &str) -> Option<u64> {
    info.get(key).cloned().and_then(InfoValue::into_count)
}

fn string(info: &HashMap<String, InfoValue>, key: &str) -> Option<String> {
    info.get(key).cloned().and_then(InfoValue::into_string)
}

/// `None` for NaN (= `U`).
fn limit(info: &HashMap<String, InfoValue>, key: &str) -> Option<Option<f64>> {
    let v = info.get(key).cloned().and_then(InfoValue::into_value)?;
    Some(if v.is_nan() { None } else { Some(v) })
}

fn float_eq(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(1.0),
        _ => false,
    }
}

/// Reads `path` with librrd info, checks it against `def` (step; DS names in order, types,
/// heartbeats, min, max; RRAs' CF, xff, pdp_per_row, rows) and returns its last_update.
///
/// # Errors
/// [`RrdError::LayoutMismatch`] with the first difference, or the librrd error for an
/// unreadable/corrupt file.
pub(crate) fn check_layout(path: &Path, def: &RrdDef) -> Result<i64, RrdError> {
    let info = {
        let _guard = librrd_lock();
        rrd::ops::info::info(path).map_err(librrd("info", path))?
    };
    let mismatch = |detail: String| RrdError::LayoutMismatch {
        path: path.to_path_buf(),
        detail,
    };
    let step = count(&info, "step");
    if step != Some(def.step.into()) {
        return Err(mismatch(format!("step {step:?}, want {}", def.step)));
    }
    let mut names: Vec<(u64, String)> = info
        .iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix("ds[")?.strip_suffix("].index")?;
            Some((v.clone().into_count()?, name.to_string()))
        })
        .collect();
    names.sort();
    let names: Vec<String> = names.into_iter().map(|(_, n)| n).collect();
    let want: Vec<&str> = def.ds.iter().map(|d| d.name.as_str()).collect();
    if names != want {
        return Err(mismatch(format!("DS {names:?}, want {want:?}")));
    }
    for d in &def.ds {
        let k = |f: &str| format!("ds[{}].{f}", d.name);
        let kind = string(&info, &k("type"));
        let hb = count(&info, &k("minimal_heartbeat"));
        let (min, max) = (limit(&info, &k("min")), limit(&info, &k("max")));
        let ok = kind.as_deref() == Some(d.kind.as_str())
            && hb == Some(d.heartbeat.into())
            && min.is_some_and(|m| float_eq(m, d.min))
            && max.is_some_and(|m| float_eq(m, d.max));
        if !ok {
            return Err(mismatch(format!(
                "DS {}: {kind:?} hb {hb:?} min {min:?} max {max:?}, want {} hb {} min {:?} max {:?}",
                d.name,
                d.kind.as_str(),
                d.heartbeat,
                d.min,
                d.max
            )));
        }
    }
    let rra_count = info
        .keys()
        .filter(|k| k.starts_with("rra[") && k.ends_with("].cf"))
        .count();
    if rra_count != def.rra.len() {
        return Err(mismatch(format!(
            "{rra_count} RRAs, want {}",
            def.rra.len()
        )));
    }
    for (i, r) in def.rra.iter().enumerate() {
        let k = |f: &str| format!("rra[{i}].{f}");
        let cf = string(&info, &k("cf"));
        let rows = count(&info, &k("rows"));
        let pdp = count(&info, &k("pdp_per_row"));
        let xff = limit(&info, &k("xff")).flatten();
        let ok = cf.as_deref() == Some(r.cf.as_str())
            && rows == Some(r.rows.into())
            && pdp == Some(r.steps.into())
            && float_eq(xff, Some(r.xff));
        if !ok {
            return Err(mismatch(format!(
                "rra[{i}]: {cf:?} xff {xff:?} pdp {pdp:?} rows {rows:?}, want RRA:{}:{}:{}:{}",
                r.cf.as_str(),
                r.xff,
                r.steps,
                r.rows
            )));
        }
    }
    count(&info, "last_update")
        .and_then(|t| i64::try_from(t).ok())
        .ok_or_else(|| mismatch("no last_update".into()))
}

/// One update at `time` with one value per DS (NaN = unknown).
pub(crate) fn update(path: &Path, time: i64, values: &[f64]) -> Result<(), RrdError> {
    let data: Vec<Datum> = values
        .iter()
        .map(|&v| {
            if v.is_finite() {
                Datum::Float(v)
            } else {
                Datum::Unspecified
            }
        })
        .collect();
    let ts = UNIX_EPOCH + Duration::from_secs(time.max(0) as u64);
    let _guard = librrd_lock();
    update_all(path, Options::default(), [(BatchTime::Timestamp(ts), data)])
        .map_err(librrd("update", path))
}
