//! Progress of the long jobs that the archive runs inside one call (a backup, a
//! disposition), so that the caller can show count, rate and time remaining by polling
//! `GetLedgerStatus` while the call runs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Progress of one running job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    pub done: u64,
    pub total: u64,
    pub started_at: i64,
}

/// The jobs running on this archive process; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct JobBoard {
    jobs: Arc<Mutex<BTreeMap<&'static str, Job>>>,
}

impl JobBoard {
    /// Lists a job until the returned guard is dropped.
    pub fn start(&self, name: &'static str, total: u64, started_at: i64) -> JobGuard {
        let job = Job {
            done: 0,
            total,
            started_at,
        };
        self.lock().insert(name, job);
        JobGuard {
            board: self.clone(),
            name,
        }
    }

    /// Returns the running jobs by name.
    pub fn snapshot(&self) -> Vec<(&'static str, Job)> {
        self.lock()
            .iter()
            .map(|(name, job)| (*name, *job))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, Job>> {
        // A panic while the lock was held leaves only counters behind, so they stay usable.
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A listed job; dropping it removes the job from the board.
#[derive(Debug)]
pub struct JobGuard {
    board: JobBoard,
    name: &'static str,
}

impl JobGuard {
    /// Records that `done` of `total` units are finished.
    pub fn update(&self, done: u64, total: u64) {
        if let Some(job) = self.board.lock().get_mut(self.name) {
            job.done = done;
            job.total = total;
        }
    }
}

impl Drop for JobGuard {
    fn drop(&mut self) {
        self.board.lock().remove(self.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_are_listed_until_their_guard_drops() {
        let board = JobBoard::default();
        let guard = board.start("backup", 0, 7);
        guard.update(40, 100);
        assert_eq!(
            board.snapshot(),
            [(
                "backup",
                Job {
                    done: 40,
                    total: 100,
                    started_at: 7
                }
            )]
        );
        drop(guard);
        assert!(board.snapshot().is_empty());
    }
}
