//! The RRD writer: a dedicated OS thread fed by a bounded queue of [`RrdSample`]s.
//!
//! Fed by async code (the status builder) through [`RrdWriter::submit`], which never waits:
//! a full queue drops the sample and counts it. The thread creates
//! `<rrd_dir>/<host>/<rrd>.rrd` on first use (recreating a host dir removed by Xymon's
//! `drop HOST`), checks existing files' layout once and never writes to a foreign one, and
//! updates with the raw values. Read by the status builder through [`RrdWriter::health`]
//! (last error per file, cleared on the next success) and by metrics via the counters.
//!
//! Shutdown: dropping every `RrdWriter` clone closes the queue; the thread drains what is
//! queued and exits, so join its handle.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::mpsc;

use super::defs::RrdDefs;
use super::{check_rrd_dir, rrdfile, validate_host, RrdError};

/// One update for one RRD file.
#[derive(Debug, Clone, PartialEq)]
pub struct RrdSample {
    /// hosts.cfg host name, with dots (validated by the writer).
    pub host: String,
    /// Definition name, also the file stem, e.g. `mqtt.broker.message`.
    pub rrd: String,
    /// Unix seconds of the snapshot.
    pub time: i64,
    /// One value per DS of the definition, in order; NaN is written as unknown.
    pub values: Vec<f64>,
}

/// Whether a sample at `time` may be written after the last written timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    Write,
    /// Same second as (or older than) the last update: librrd would reject it, so it is
    /// folded into the update already written for that second.
    Coalesce,
}

pub(crate) fn admit(last: Option<i64>, time: i64) -> Admit {
    match last {
        Some(last) if time <= last => Admit::Coalesce,
        _ => Admit::Write,
    }
}

/// State shared between the handles and the thread.
#[derive(Default)]
struct Shared {
    /// Milliseconds after `started` when the thread last finished a sample (for `RrdProbe`).
    started: Option<std::time::Instant>,
    last_done: AtomicU64,
    dropped: AtomicU64,
    written: AtomicU64,
    coalesced: AtomicU64,
    failed: AtomicU64,
    /// Last error per (host, rrd); absent = last write fine (or none yet).
    health: Mutex<HashMap<(String, String), String>>,
}

impl Shared {
    fn health(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), String>> {
        // A panic while holding this lock cannot leave the map half-updated in a way that
        // matters: entries are whole strings.
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Cheap, cloneable handle to the writer thread.
#[derive(Clone)]
pub struct RrdWriter {
    tx: mpsc::Sender<RrdSample>,
    shared: Arc<Shared>,
}

impl RrdWriter {
    /// Checks `rrd_dir` ([`check_rrd_dir`]) and starts the writer thread with a queue of
    /// `capacity` samples (at least 1). An rrd_dir that exists but takes no file (a read-only or full
    /// file system) is logged and not fatal: statuses matter more than graphs, and each update that fails
    /// is reported in its test's status until the disk takes it again.
    ///
    /// # Errors
    /// rrd_dir is missing or not a directory (a configuration error), or the thread cannot be spawned.
    pub fn start(
        rrd_dir: PathBuf,
        defs: RrdDefs,
        capacity: usize,
    ) -> Result<(RrdWriter, JoinHandle<()>), RrdError> {
        match check_rrd_dir(&rrd_dir) {
            Err(e @ RrdError::NotWritable { .. }) => tracing::warn!(
                error = %e,
                "RRD updates fail until rrd_dir takes files again; each failing file is shown in its test's status"
            ),
            other => other?,
        }
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let shared = Arc::new(Shared {
            started: Some(std::time::Instant::now()),
            ..Shared::default()
        });
        let mut worker = Worker {
            rrd_dir,
            defs,
            shared: shared.clone(),
            files: HashMap::new(),
        };
        let handle = std::thread::Builder::new()
            .name("rrd-writer".into())
            .spawn(move || worker.run(rx))
            .map_err(RrdError::Spawn)?;
        Ok((RrdWriter { tx, shared }, handle))
    }

    /// Queues a sample without waiting. Returns false (and counts a drop) when the queue is
    /// full or the thread has gone.
    pub fn submit(&self, sample: RrdSample) -> bool {
        match self.tx.try_send(sample) {
            Ok(()) => true,
            Err(_) => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// The last error for `<host>/<rrd>.rrd`, if its last attempt failed; the status builder
    /// shows it as a yellow line. Cleared by the next successful update.
    pub fn health(&self, host: &str, rrd: &str) -> Option<String> {
        self.shared
            .health()
            .get(&(host.to_string(), rrd.to_string()))
            .cloned()
    }

    /// Samples dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Successful librrd updates.
    pub fn written(&self) -> u64 {
        self.shared.written.load(Ordering::Relaxed)
    }

    /// Samples folded into an earlier update of the same second.
    pub fn coalesced(&self) -> u64 {
        self.shared.coalesced.load(Ordering::Relaxed)
    }

    /// Samples the thread has finished with: written + coalesced + failed.
    pub fn processed(&self) -> u64 {
        self.written() + self.coalesced() + self.failed()
    }

    /// Samples that failed (see [`RrdWriter::health`]).
    pub fn failed(&self) -> u64 {
        self.shared.failed.load(Ordering::Relaxed)
    }

    /// A handle for `/healthz` that does not keep the queue open (the thread exits when the last
    /// `RrdWriter` is dropped, whoever still probes it).
    pub fn probe(&self) -> RrdProbe {
        RrdProbe {
            tx: self.tx.downgrade(),
            shared: self.shared.clone(),
        }
    }
}

/// Whether the writer is stuck: its queue full and no sample finished for a while; and which files fail.
pub struct RrdProbe {
    tx: mpsc::WeakSender<RrdSample>,
    shared: Arc<Shared>,
}

impl RrdProbe {
    /// Every file whose last update failed, as (host, rrd, error), sorted: the bridge's own column
    /// lists them.
    pub fn failing(&self) -> Vec<(String, String, String)> {
        let mut out: Vec<_> = self
            .shared
            .health()
            .iter()
            .map(|((host, rrd), e)| (host.clone(), rrd.clone(), e.clone()))
            .collect();
        out.sort();
        out
    }

    /// How long since the thread last finished a sample, when the queue is full; `None` otherwise.
    pub fn full_for(&self) -> Option<std::time::Duration> {
        let full = self.tx.upgrade().is_some_and(|tx| tx.capacity() == 0);
        let started = self.shared.started?;
        let last = self.shared.last_done.load(Ordering::Relaxed);
        full.then(|| {
            started
                .elapsed()
                .saturating_sub(std::time::Duration::from_millis(last))
        })
    }
}

/// What the thread knows about a file it has checked or created.
struct FileState {
    last_update: Option<i64>,
}

struct Worker {
    rrd_dir: PathBuf,
    defs: RrdDefs,
    shared: Arc<Shared>,
    /// Files whose layout was verified (or that this thread created).
    files: HashMap<PathBuf, FileState>,
}

/// Puts the calling thread (only it: on Linux the nice value is per thread) at nice 19, so that on a
/// busy machine librrd's CPU work yields to MQTT ingest instead of competing with it as an equal. RRD
/// updates are never urgent (a step is 300 s); a slower drain only means a fuller queue, and a full queue
/// drops samples, counted. Measured in BENCHMARKS.md, scenario 6 (ingest during a 10k-file RRD storm).
fn lowest_cpu_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on this thread's own id, no pointers involved.
    unsafe {
        if libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19) != 0 {
            tracing::debug!("cannot lower the rrd writer's CPU priority");
        }
    }
}

impl Worker {
    fn run(&mut self, mut rx: mpsc::Receiver<RrdSample>) {
        lowest_cpu_priority();
        // blocking_recv is right here: this is a plain OS thread, not a runtime thread.
        while let Some(sample) = rx.blocking_recv() {
            self.beat();
            let key = (sample.host.clone(), sample.rrd.clone());
            match self.write(&sample) {
                // Health first, counters second: a reader that sees the count sees the health.
                Ok(admitted) => {
                    self.shared.health().remove(&key);
                    let counter = match admitted {
                        Admit::Write => &self.shared.written,
                        Admit::Coalesce => &self.shared.coalesced,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::warn!(host = %sample.host, rrd = %sample.rrd, error = %e, "rrd update failed");
                    self.shared.health().insert(key, e.to_string());
                    self.shared.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            self.beat();
        }
        tracing::debug!("rrd writer queue closed, thread exits");
    }

    /// Progress, for `RrdProbe`: at each sample taken, and after it is done.
    fn beat(&self) {
        if let Some(t) = self.shared.started {
            let ms = u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.shared.last_done.store(ms, Ordering::Relaxed);
        }
    }

    fn write(&mut self, s: &RrdSample) -> Result<Admit, RrdError> {
        validate_host(&s.host)?;
        let def = self
            .defs
            .get(&s.rrd)
            .ok_or_else(|| RrdError::UnknownRrd(s.rrd.clone()))?;
        if s.values.len() != def.ds.len() {
            return Err(RrdError::ValueCount {
                rrd: s.rrd.clone(),
                expected: def.ds.len(),
                got: s.values.len(),
            });
        }
        let dir = self.rrd_dir.join(&s.host);
        let path = dir.join(format!("{}.rrd", s.rrd));
        if !path.exists() {
            // New host, new file, or removed by `drop HOST`: forget what we knew.
            self.files.remove(&path);
            rrdfile::ensure_dir(&dir)?;
            if !path.exists() {
                rrdfile::create(&path, def, s.time)?;
                self.files
                    .insert(path.clone(), FileState { last_update: None });
            }
        }
        let state = match self.files.get_mut(&path) {
            Some(state) => state,
            None => {
                let last = rrdfile::check_layout(&path, def)?;
                self.files.entry(path.clone()).or_insert(FileState {
                    last_update: Some(last),
                })
            }
        };
        if admit(state.last_update, s.time) == Admit::Coalesce {
            return Ok(Admit::Coalesce);
        }
        rrdfile::update(&path, s.time, &s.values).inspect_err(|_| {
            // The file may have been replaced or damaged: re-check it next time.
            self.files.remove(&path);
        })?;
        if let Some(state) = self.files.get_mut(&path) {
            state.last_update = Some(s.time);
        }
        Ok(Admit::Write)
    }
}

/// Path of the file a sample goes to (for tests and diagnostics).
pub fn rrd_path(rrd_dir: &Path, host: &str, rrd: &str) -> Result<PathBuf, RrdError> {
    validate_host(host)?;
    Ok(rrd_dir.join(host).join(format!("{rrd}.rrd")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalescing() {
        let cases = [
            (None, 100, Admit::Write),
            (Some(99), 100, Admit::Write),
            (Some(100), 100, Admit::Coalesce),
            (Some(101), 100, Admit::Coalesce),
        ];
        for (last, t, want) in cases {
            assert_eq!(admit(last, t), want, "last {last:?} t {t}");
        }
    }

    #[test]
    fn rrd_path_rejects_escapes() {
        let dir = Path::new("/var/lib/xymon/rrd");
        assert_eq!(
            rrd_path(dir, "b.example.com", "mqtt.broker.octet").unwrap(),
            Path::new("/var/lib/xymon/rrd/b.example.com/mqtt.broker.octet.rrd")
        );
        assert!(rrd_path(dir, "../../etc", "x").is_err());
    }

    /// A hostile host, an unknown rrd and a wrong value count are reported per file and do
    /// not stop the thread; a good sample afterwards still lands.
    #[test]
    fn bad_samples_are_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let defs = RrdDefs::load_builtin().unwrap();
        let (w, h) = RrdWriter::start(dir.path().to_path_buf(), defs, 8).unwrap();
        let s = |host: &str, rrd: &str, values: Vec<f64>| RrdSample {
            host: host.into(),
            rrd: rrd.into(),
            time: 1_700_000_000,
            values,
        };
        assert!(w.submit(s("../evil", "value", vec![1.0])));
        assert!(w.submit(s("h", "nope", vec![1.0])));
        assert!(w.submit(s("h", "value", vec![1.0, 2.0])));
        assert!(w.submit(s("h", "value", vec![1.0])));
        let probe = w.clone();
        drop(w);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while probe.processed() < 4 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(probe
            .health("../evil", "value")
            .unwrap()
            .contains("invalid host"));
        assert!(probe.health("h", "nope").unwrap().contains("unknown rrd"));
        assert_eq!(
            probe.health("h", "value"),
            None,
            "cleared by the good sample"
        );
        assert_eq!((probe.written(), probe.failed()), (1, 3));
        assert!(!dir.path().parent().unwrap().join("evil").exists());
        drop(probe);
        h.join().unwrap();
    }
}
