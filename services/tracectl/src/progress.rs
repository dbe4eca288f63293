//! Progress of long jobs on stderr, so that stdout keeps only results. On a terminal an
//! `indicatif` bar shows the count, the rate and the time remaining. Otherwise a log line with
//! the same figures is written every [`LOG_INTERVAL`] and when the job ends.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Time between two progress log lines when stderr is not a terminal.
pub const LOG_INTERVAL: Duration = Duration::from_secs(5);

const SPINNER_TEMPLATE: &str = "{spinner} {msg} {elapsed}";

/// Progress of one job.
#[derive(Debug)]
pub struct Progress {
    job: &'static str,
    unit: &'static str,
    total: u64,
    done: u64,
    started: Instant,
    last_line: Option<Instant>,
    bar: Option<ProgressBar>,
}

/// Rate per second and estimated seconds remaining after `done` of `total` in `elapsed`;
/// the estimate is `None` until something is done.
pub fn rate_and_remaining(done: u64, total: u64, elapsed: Duration) -> (f64, Option<u64>) {
    let seconds = elapsed.as_secs_f64().max(0.001);
    let rate = done as f64 / seconds;
    if done == 0 {
        return (rate, None);
    }
    let left = total.saturating_sub(done) as f64;
    (rate, Some((left / rate).ceil() as u64))
}

impl Progress {
    /// Starts progress of a job that counts `unit`s towards a total known later through
    /// [`update`](Self::update).
    pub fn counted(job: &'static str, unit: &'static str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            let template = format!(
                "{{msg}} [{{wide_bar}}] {{human_pos}}/{{human_len}} {unit}, {{per_sec}}, \
                 remaining {{eta}}"
            );
            let style = ProgressStyle::with_template(&template)
                .expect("valid progress template")
                .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(job);
            bar
        });
        Self {
            job,
            unit,
            total: 0,
            done: 0,
            started: Instant::now(),
            last_line: None,
            bar,
        }
    }

    /// Starts progress of a job that the archive runs in one call, which reports no count
    /// until it ends: a spinner with the elapsed time, or one log line.
    pub fn waiting(job: &'static str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(SPINNER_TEMPLATE).expect("valid progress template"),
            );
            bar.set_message(format!("{job}: waiting for the archive"));
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        if bar.is_none() {
            tracing::info!(job, "waiting for the archive to finish");
        }
        Self {
            job,
            unit: "",
            total: 0,
            done: 0,
            started: Instant::now(),
            last_line: None,
            bar,
        }
    }

    /// Records that `done` of `total` units are finished.
    pub fn update(&mut self, done: u64, total: u64) {
        self.done = done;
        self.total = total;
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_position(done);
            return;
        }
        let due = self
            .last_line
            .is_none_or(|last| last.elapsed() >= LOG_INTERVAL);
        if due {
            self.log_line();
        }
    }

    fn log_line(&mut self) {
        let (rate, remaining) = rate_and_remaining(self.done, self.total, self.started.elapsed());
        tracing::info!(
            job = self.job,
            unit = self.unit,
            done = self.done,
            total = self.total,
            rate_per_second = format!("{rate:.0}"),
            remaining_secs = remaining,
            "progress"
        );
        self.last_line = Some(Instant::now());
    }

    /// Clears the bar, or writes the last log line with the final count.
    pub fn finish(mut self) {
        match self.bar.take() {
            Some(bar) => bar.finish_and_clear(),
            None if self.unit.is_empty() => {
                let elapsed_secs = self.started.elapsed().as_secs();
                tracing::info!(job = self.job, elapsed_secs, "finished");
            }
            None => self.log_line(),
        }
    }
}

/// Runs `call`, a long job that the archive runs as `job`, and meanwhile polls the
/// archive's job list every [`POLL_INTERVAL`] to show the job's count, rate and time
/// remaining. A failed poll only skips one update.
pub async fn archive_job<R, E>(
    address: &str,
    identity: &crate::Identity,
    job: &'static str,
    call: impl Future<Output = Result<R, E>>,
) -> Result<R, E> {
    let mut progress = Progress::counted(job, "entries");
    let mut status = crate::archive::connect(address).await.ok();
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tokio::pin!(call);
    loop {
        tokio::select! {
            result = &mut call => {
                // The job ended between two polls; a success means every unit is done.
                if result.is_ok() {
                    progress.done = progress.total;
                }
                progress.finish();
                return result;
            }
            _ = tick.tick() => {
                let Some(client) = status.as_mut() else { continue };
                let request = identity.request(trace_proto::archive::v1::GetLedgerStatusRequest {});
                if let Ok(response) = client.get_ledger_status(request).await
                    && let Some(found) = response.into_inner().jobs.iter().find(|running| running.job == job)
                {
                    progress.update(found.done, found.total);
                }
            }
        }
    }
}

/// Time between two polls of the archive's job list.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_time_follows_the_rate() {
        let (rate, remaining) = rate_and_remaining(250, 1_000, Duration::from_secs(5));
        assert_eq!(rate, 50.0);
        assert_eq!(remaining, Some(15));
    }

    #[test]
    fn nothing_done_has_no_estimate() {
        let (rate, remaining) = rate_and_remaining(0, 1_000, Duration::from_secs(5));
        assert_eq!(rate, 0.0);
        assert_eq!(remaining, None);
    }

    #[test]
    fn finished_job_has_nothing_remaining() {
        let (_, remaining) = rate_and_remaining(1_000, 1_000, Duration::from_secs(2));
        assert_eq!(remaining, Some(0));
    }
}
