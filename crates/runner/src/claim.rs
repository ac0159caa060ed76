//! Claims: which worker runs a cell, so that several `reusebench run`
//! processes (on one machine or on a cluster's nodes) can share one results
//! folder and run every cell once between them.
//!
//! A worker claims a cell by creating `claim.json` in the cell's folder
//! exclusively (`create_new`: the filesystem lets one creator win), with its
//! host, pid, start time and Slurm job. While the cell runs, a heartbeat
//! thread touches the file. A claim is stale when its holder is gone: a pid
//! that no longer exists on this host, or a heartbeat older than the
//! timeout (any host). A stale claim is taken over by renaming it away
//! (one rename wins; the loser sees the file gone) and claiming afresh.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::RunnerError;

pub const CLAIM_FILE: &str = "claim.json";

/// Who holds a claim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    /// Unix seconds when the claim was made.
    pub started: u64,
    /// `SLURM_JOB_ID` (with `_TASK` for an array task) when run under Slurm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm_job: Option<String>,
}

impl Holder {
    /// This process.
    pub fn me() -> Self {
        Self {
            host: hostname(),
            pid: std::process::id(),
            started: unix_now(),
            slurm_job: slurm_job(),
        }
    }

    pub fn describe(&self) -> String {
        let job = self
            .slurm_job
            .as_ref()
            .map(|j| format!(", Slurm job {j}"))
            .unwrap_or_default();
        format!("{} pid {}{job}", self.host, self.pid)
    }
}

/// The machine's name (`/proc/sys/kernel/hostname`, else `HOSTNAME`).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}

/// The Slurm job of this process: `ARRAYJOB_TASK` in an array, else the job id.
pub fn slurm_job() -> Option<String> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (var("SLURM_ARRAY_JOB_ID"), var("SLURM_ARRAY_TASK_ID")) {
        (Some(job), Some(task)) => Some(format!("{job}_{task}")),
        _ => var("SLURM_JOB_ID"),
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A claim as found on disk: its holder and the age of its heartbeat.
#[derive(Debug, Clone)]
pub struct Found {
    pub holder: Holder,
    pub heartbeat_age: Duration,
}

pub fn read(dir: &Path) -> Option<Found> {
    let path = dir.join(CLAIM_FILE);
    let text = std::fs::read_to_string(&path).ok()?;
    let holder: Holder = serde_json::from_str(&text).ok()?;
    let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
    let heartbeat_age = SystemTime::now()
        .duration_since(modified)
        .unwrap_or_default();
    Some(Found {
        holder,
        heartbeat_age,
    })
}

impl Found {
    /// Why the holder is gone, if it is.
    pub fn stale(&self, timeout: Duration) -> Option<String> {
        let h = &self.holder;
        if h.host == hostname() {
            if !pid_alive(h.pid) {
                return Some(format!("process {} on {} is gone", h.pid, h.host));
            }
            // This process never finds its own live claim (it claims a cell
            // once, and releases it): one with its pid is an earlier
            // process's whose pid came round again.
            if h.pid == std::process::id() {
                return Some(format!(
                    "left by an earlier process {} on {}",
                    h.pid, h.host
                ));
            }
        }
        if self.heartbeat_age > timeout {
            return Some(format!(
                "no heartbeat from {} for {}s (timeout {}s)",
                h.describe(),
                self.heartbeat_age.as_secs(),
                timeout.as_secs()
            ));
        }
        None
    }
}

fn pid_alive(pid: u32) -> bool {
    // Linux: a live process has its /proc folder. Elsewhere the heartbeat
    // timeout alone decides.
    if Path::new("/proc/self").exists() {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

/// What trying to claim a cell gave.
pub enum Attempt {
    /// Ours; with the stale claim it replaced, if any, and why it was stale.
    Claimed(Claim, Option<(Holder, String)>),
    /// Another worker's, alive.
    Held(Found),
}

/// The claims this process holds (path and holder), for
/// [`release_all_held`]: a worker told to leave (Slurm's preemption
/// signal) exits without unwinding, so no `Drop` runs.
static HELD: std::sync::Mutex<Vec<(PathBuf, Holder)>> = std::sync::Mutex::new(Vec::new());

/// Removes every claim this process holds that is still its own, so that
/// another worker (the requeued job, perhaps on another node, where this
/// pid means nothing) takes the cells over at once instead of waiting for
/// the heartbeat to go stale. For a process about to exit.
pub fn release_all_held() -> usize {
    let held = HELD.lock().map(|h| h.clone()).unwrap_or_default();
    held.iter()
        .filter(|(path, me)| remove_if_ours(path, me))
        .count()
}

fn remove_if_ours(path: &Path, me: &Holder) -> bool {
    let ours = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<Holder>(&t).ok())
        .is_some_and(|h| &h == me);
    ours && std::fs::remove_file(path).is_ok()
}

/// A held claim: released (the file removed) when dropped; a heartbeat
/// thread touches the file meanwhile.
pub struct Claim {
    path: PathBuf,
    me: Holder,
    stop: Arc<AtomicBool>,
    heartbeat: Option<JoinHandle<()>>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.heartbeat.take() {
            let _ = h.join();
        }
        // Remove it only while it is still ours (a worker that took it over
        // after a missed heartbeat owns it now).
        remove_if_ours(&self.path, &self.me);
        if let Ok(mut held) = HELD.lock() {
            held.retain(|(p, _)| p != &self.path);
        }
    }
}

/// Tries to claim the cell in `dir` (created if needed). `timeout`: how old
/// a heartbeat may be before its claim counts as abandoned; the heartbeat
/// beats four times per timeout.
pub fn try_claim(dir: &Path, timeout: Duration) -> Result<Attempt, RunnerError> {
    std::fs::create_dir_all(dir).map_err(|e| RunnerError::io(dir, e))?;
    let path = dir.join(CLAIM_FILE);
    let me = Holder::me();
    let mut replaced = None;
    // Two rounds: a stale claim moved away leaves room for one more try.
    for _ in 0..2 {
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                let bytes = serde_json::to_vec_pretty(&me)
                    .map_err(|e| RunnerError::Store(e.to_string()))?;
                f.write_all(&bytes).map_err(|e| RunnerError::io(&path, e))?;
                f.sync_all().map_err(|e| RunnerError::io(&path, e))?;
                let claim = Claim::start(path, me, timeout);
                return Ok(Attempt::Claimed(claim, replaced));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let Some(found) = read(dir) else {
                    // Being written, or removed just now: try again.
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                };
                let Some(why) = found.stale(timeout) else {
                    return Ok(Attempt::Held(found));
                };
                // One rename wins; whoever loses finds the file gone or new.
                let aside = dir.join(format!(
                    "claim.stale-{}-{}.json",
                    me.host,
                    std::process::id()
                ));
                if std::fs::rename(&path, &aside).is_ok() {
                    let _ = std::fs::remove_file(&aside);
                    replaced = Some((found.holder, why));
                }
            }
            Err(e) => return Err(RunnerError::io(&path, e)),
        }
    }
    match read(dir) {
        Some(found) => Ok(Attempt::Held(found)),
        None => Err(RunnerError::Store(format!(
            "{}: could not claim the cell",
            dir.display()
        ))),
    }
}

impl Claim {
    fn start(path: PathBuf, me: Holder, timeout: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let beat = (timeout / 4).max(Duration::from_millis(200));
        let (p, s) = (path.clone(), Arc::clone(&stop));
        let heartbeat = std::thread::spawn(move || {
            let tick = Duration::from_millis(100).min(beat);
            let mut since = Duration::ZERO;
            while !s.load(Ordering::Relaxed) {
                std::thread::sleep(tick);
                since += tick;
                if since >= beat {
                    since = Duration::ZERO;
                    if let Ok(f) = OpenOptions::new().write(true).open(&p) {
                        let _ = f.set_modified(SystemTime::now());
                    }
                }
            }
        });
        if let Ok(mut held) = HELD.lock() {
            held.push((path.clone(), me.clone()));
        }
        Self {
            path,
            me,
            stop,
            heartbeat: Some(heartbeat),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process leaving on a signal removes the claims it holds (and only
    /// its own): the next worker claims at once.
    #[test]
    fn release_all_held_frees_this_process_claims() {
        let tmp = tempfile::tempdir().unwrap();
        let timeout = Duration::from_secs(60);
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        let Attempt::Claimed(held, None) = try_claim(&a, timeout).unwrap() else {
            panic!("claimed")
        };
        // b's claim belongs to another worker now: left alone.
        let Attempt::Claimed(other, None) = try_claim(&b, timeout).unwrap() else {
            panic!("claimed")
        };
        let mut theirs = Holder::me();
        theirs.host = "elsewhere".into();
        std::fs::write(b.join(CLAIM_FILE), serde_json::to_vec(&theirs).unwrap()).unwrap();
        assert!(release_all_held() >= 1);
        assert!(!a.join(CLAIM_FILE).exists(), "ours: released");
        assert!(b.join(CLAIM_FILE).exists(), "another worker's: kept");
        let Attempt::Claimed(again, None) = try_claim(&a, timeout).unwrap() else {
            panic!("a released cell is claimed at once")
        };
        drop((held, other, again));
    }

    #[test]
    fn one_claim_wins_and_a_dead_holder_is_taken_over() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cell");
        let timeout = Duration::from_secs(60);
        let Attempt::Claimed(first, None) = try_claim(&dir, timeout).unwrap() else {
            panic!("the first claim wins")
        };
        drop(first);
        assert!(!dir.join(CLAIM_FILE).exists(), "released");

        // A live holder on this host (pid 1 is always alive): held.
        let live = Holder {
            pid: 1,
            ..Holder::me()
        };
        std::fs::write(dir.join(CLAIM_FILE), serde_json::to_vec(&live).unwrap()).unwrap();
        assert!(matches!(
            try_claim(&dir, timeout).unwrap(),
            Attempt::Held(_)
        ));

        // A holder on this host whose pid is gone: taken over.
        let dead = Holder {
            pid: u32::MAX - 1,
            ..Holder::me()
        };
        std::fs::write(dir.join(CLAIM_FILE), serde_json::to_vec(&dead).unwrap()).unwrap();
        match try_claim(&dir, timeout).unwrap() {
            Attempt::Claimed(_, Some((holder, why))) => {
                assert_eq!(holder.pid, dead.pid);
                assert!(why.contains("is gone"), "{why}");
            }
            _ => panic!("a dead holder's claim is taken over"),
        }
    }

    #[test]
    fn another_hosts_claim_is_stale_only_after_the_timeout() {
        let found = |age| Found {
            holder: Holder {
                host: "elsewhere".into(),
                pid: 1,
                started: 0,
                slurm_job: Some("7_3".into()),
            },
            heartbeat_age: Duration::from_secs(age),
        };
        let timeout = Duration::from_secs(600);
        assert!(found(10).stale(timeout).is_none());
        let why = found(900).stale(timeout).unwrap();
        assert!(
            why.contains("no heartbeat from elsewhere pid 1, Slurm job 7_3"),
            "{why}"
        );
    }
}
