// SPDX-License-Identifier: Apache-2.0
//! The asynchronous inference worker: one thread of the element that runs
//! jobs (a frame's model input and what to segment in it) while frames keep
//! flowing, and keeps the newest result for the streaming thread to attach.
//!
//! - At most one job runs and none waits: [`Worker::offer`] hands a job over
//!   only when the worker is idle, so the job is always the newest frame it
//!   can take and frames it cannot keep up with are skipped for inference
//!   (never held or dropped from the stream).
//! - Every job carries the generation it was offered in; [`Worker::flush`]
//!   starts a new generation, so no result computed before a flush, seek or
//!   caps change is handed out after it.
//! - [`Worker::stop`] (also on drop) asks the thread to end and joins it; the
//!   caller cancels the run in progress first, so that does not wait for a
//!   whole inference.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

struct Mailbox<J, R> {
    job: Option<(u64, J)>,
    running: bool,
    result: Option<R>,
    generation: u64,
    stopping: bool,
}

struct Shared<J, R> {
    mailbox: Mutex<Mailbox<J, R>>,
    wake: Condvar,
}

impl<J, R> Shared<J, R> {
    fn lock(&self) -> MutexGuard<'_, Mailbox<J, R>> {
        self.mailbox.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A worker thread running `J`s into `R`s.
pub struct Worker<J, R> {
    shared: Arc<Shared<J, R>>,
    thread: Option<JoinHandle<()>>,
}

impl<J: Send + 'static, R: Send + 'static> Worker<J, R> {
    /// Starts the thread; `run` turns each job into its result.
    pub fn spawn(
        name: &str,
        mut run: impl FnMut(J) -> R + Send + 'static,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            mailbox: Mutex::new(Mailbox {
                job: None,
                running: false,
                result: None,
                generation: 0,
                stopping: false,
            }),
            wake: Condvar::new(),
        });
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                loop {
                    let (generation, job) = {
                        let mut mailbox = theirs.lock();
                        loop {
                            if mailbox.stopping {
                                return;
                            }
                            if let Some(job) = mailbox.job.take() {
                                mailbox.running = true;
                                break job;
                            }
                            mailbox = theirs.wake.wait(mailbox).unwrap_or_else(|e| e.into_inner());
                        }
                    };
                    let result = run(job);
                    let mut mailbox = theirs.lock();
                    mailbox.running = false;
                    if mailbox.generation == generation {
                        mailbox.result = Some(result);
                    }
                    theirs.wake.notify_all();
                }
            })?;
        Ok(Worker {
            shared,
            thread: Some(thread),
        })
    }

    /// Whether a job is running or waiting.
    pub fn is_busy(&self) -> bool {
        let mailbox = self.shared.lock();
        mailbox.running || mailbox.job.is_some()
    }

    /// Hands `job` over if the worker is idle; returns it back otherwise.
    pub fn offer(&self, job: J) -> Result<(), J> {
        let mut mailbox = self.shared.lock();
        if mailbox.running || mailbox.job.is_some() || mailbox.stopping {
            return Err(job);
        }
        mailbox.job = Some((mailbox.generation, job));
        self.shared.wake.notify_all();
        Ok(())
    }

    /// The result finished since the last call, if any.
    pub fn take_result(&self) -> Option<R> {
        self.shared.lock().result.take()
    }

    /// Forgets the waiting job and the result, and makes the running job's
    /// result be dropped when it ends.
    pub fn flush(&self) {
        let mut mailbox = self.shared.lock();
        mailbox.generation += 1;
        mailbox.job = None;
        mailbox.result = None;
    }

    /// Waits until no job runs or waits.
    #[cfg(test)]
    pub fn wait_idle(&self) {
        let mut mailbox = self.shared.lock();
        while mailbox.running || mailbox.job.is_some() {
            mailbox = self
                .shared
                .wake
                .wait(mailbox)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Ends the thread after its current job (cancel that first) and joins it.
    pub fn stop(&mut self) {
        self.shut_down();
    }
}

impl<J, R> Worker<J, R> {
    fn shut_down(&mut self) {
        {
            let mut mailbox = self.shared.lock();
            mailbox.stopping = true;
            mailbox.job = None;
            self.shared.wake.notify_all();
        }
        if let Some(thread) = self.thread.take() {
            // A panicking job ended the thread already; nothing more to do.
            let _ = thread.join();
        }
    }
}

impl<J, R> Drop for Worker<J, R> {
    fn drop(&mut self) {
        self.shut_down();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// A worker whose jobs block until the test releases them.
    fn gated() -> (Worker<u32, u32>, mpsc::Sender<()>) {
        let (release, gate) = mpsc::channel::<()>();
        let gate = Mutex::new(gate);
        let worker = Worker::spawn("test-worker", move |job: u32| {
            let _ = gate.lock().unwrap().recv_timeout(Duration::from_secs(10));
            job * 10
        })
        .unwrap();
        (worker, release)
    }

    #[test]
    fn a_busy_worker_refuses_jobs_and_the_result_comes_once() {
        let (worker, release) = gated();
        assert!(worker.offer(1).is_ok());
        assert_eq!(worker.offer(2), Err(2), "busy: the frame is skipped");
        assert!(worker.is_busy());
        release.send(()).unwrap();
        worker.wait_idle();
        assert_eq!(worker.take_result(), Some(10));
        assert_eq!(worker.take_result(), None);
        assert!(worker.offer(3).is_ok());
        release.send(()).unwrap();
        worker.wait_idle();
        assert_eq!(worker.take_result(), Some(30));
    }

    #[test]
    fn results_from_before_a_flush_are_dropped() {
        let (worker, release) = gated();
        assert!(worker.offer(1).is_ok());
        worker.flush();
        release.send(()).unwrap();
        worker.wait_idle();
        assert_eq!(worker.take_result(), None);
    }

    #[test]
    fn stop_joins_the_thread() {
        let (mut worker, release) = gated();
        assert!(worker.offer(1).is_ok());
        release.send(()).unwrap();
        worker.stop();
        assert!(worker.thread.is_none());
        assert_eq!(worker.offer(2), Err(2), "a stopped worker takes nothing");
    }
}
