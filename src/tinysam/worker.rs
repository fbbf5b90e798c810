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
//! - [`Worker::stop`] (also on drop) asks the thread to end and returns
//!   without waiting for a job: the caller cancels the run in progress first,
//!   but an execution provider that runs the whole encoder as one node
//!   (OpenVINO) finishes it anyway, up to a second later. A thread still in
//!   its job is left to finish it and joined later ([`FINISHING`]).

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// Threads of stopped workers that were still in a job: each ends when its
/// job does. At most [`MAX_FINISHING`] are left running, so that starting and
/// stopping elements quickly cannot pile up inferences; the process joins
/// the rest before it exits ([`join_finishing`]).
static FINISHING: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());

/// Stopped workers' jobs that may run on at once; a stop beyond that waits
/// for the oldest.
const MAX_FINISHING: usize = 2;

/// Joins every thread in [`FINISHING`]. Registered with `atexit` when the
/// first thread is left there, which is after its job has loaded ONNX
/// Runtime: `exit` runs handlers in the reverse order of registration, so
/// this runs before ONNX Runtime's static destructors, which must not run
/// under a live inference.
extern "C" fn join_finishing() {
    let threads = std::mem::take(&mut *lock_finishing());
    for thread in threads {
        // A panicking job ended its thread already; nothing more to do.
        let _ = thread.join();
    }
}

fn lock_finishing() -> MutexGuard<'static, Vec<JoinHandle<()>>> {
    FINISHING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Leaves `thread`, told to stop but still in its job, to end on its own.
fn finish_later(thread: JoinHandle<()>) {
    static AT_EXIT: std::sync::Once = std::sync::Once::new();
    AT_EXIT.call_once(|| {
        // SAFETY: registers a function without arguments that neither
        // unwinds nor calls exit; a failed registration (no slot left)
        // only means the process does not wait for these threads.
        unsafe {
            libc::atexit(join_finishing);
        }
    });
    let mut finishing = lock_finishing();
    let (ended, running): (Vec<_>, Vec<_>) = finishing.drain(..).partition(|t| t.is_finished());
    for thread in ended {
        let _ = thread.join();
    }
    *finishing = running;
    while finishing.len() >= MAX_FINISHING {
        let oldest = finishing.remove(0);
        let _ = oldest.join();
    }
    finishing.push(thread);
}

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
                    if mailbox.generation == generation && !mailbox.stopping {
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

    /// Ends the thread after its current job (cancel that first): joins it
    /// when it is idle, else leaves it to finish the job ([`FINISHING`]).
    pub fn stop(&mut self) {
        self.shut_down();
    }
}

impl<J, R> Worker<J, R> {
    fn shut_down(&mut self) {
        let in_job = {
            let mut mailbox = self.shared.lock();
            mailbox.stopping = true;
            mailbox.job = None;
            self.shared.wake.notify_all();
            mailbox.running
        };
        let Some(thread) = self.thread.take() else {
            return;
        };
        if in_job {
            finish_later(thread);
        } else {
            // Idle, it returns at once. A panicking job ended it already.
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

    fn finishing_holds(id: std::thread::ThreadId) -> bool {
        lock_finishing().iter().any(|t| t.thread().id() == id)
    }

    /// Taken by the tests that leave threads in FINISHING, which is global.
    static FINISHING_TESTS: Mutex<()> = Mutex::new(());

    /// A gated worker in its job: (worker, its thread's id, its gate).
    fn in_job() -> (Worker<u32, u32>, std::thread::ThreadId, mpsc::Sender<()>) {
        let (worker, release) = gated();
        assert!(worker.offer(1).is_ok());
        while !worker.shared.lock().running {
            std::thread::yield_now();
        }
        let id = worker.thread.as_ref().unwrap().thread().id();
        (worker, id, release)
    }

    #[test]
    fn stop_joins_an_idle_thread() {
        let (mut worker, release) = gated();
        assert!(worker.offer(1).is_ok());
        release.send(()).unwrap();
        worker.wait_idle();
        let id = worker.thread.as_ref().unwrap().thread().id();
        worker.stop();
        assert!(worker.thread.is_none());
        assert!(!finishing_holds(id), "an idle thread is joined, not left");
        assert_eq!(worker.offer(2), Err(2), "a stopped worker takes nothing");
    }

    #[test]
    fn stop_leaves_a_job_in_progress_to_finish_on_its_own() {
        let _serial = FINISHING_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        let (mut worker, id, release) = in_job();
        // The job blocks until released: a stop that waited would hang here.
        worker.stop();
        assert!(worker.thread.is_none());
        assert!(finishing_holds(id), "the thread is left to finish its job");
        assert_eq!(worker.take_result(), None);
        release.send(()).unwrap();
        join_finishing();
        assert!(!finishing_holds(id));
        assert_eq!(
            worker.take_result(),
            None,
            "a stopped worker's result is never handed out"
        );
    }

    #[test]
    fn stops_beyond_the_bound_wait_for_the_oldest_job() {
        let _serial = FINISHING_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        join_finishing();
        let mut jobs: Vec<_> = (0..=MAX_FINISHING).map(|_| in_job()).collect();
        let ids: Vec<_> = jobs.iter().map(|(_, id, _)| *id).collect();
        for (worker, _, _) in &mut jobs[..MAX_FINISHING] {
            worker.stop();
        }
        // The next stop has to wait for the oldest job, released a little later
        // (a stop that did not wait would leave one thread too many).
        let oldest = jobs[0].2.clone();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            oldest.send(()).unwrap();
        });
        jobs[MAX_FINISHING].0.stop();
        assert_eq!(lock_finishing().len(), MAX_FINISHING);
        assert!(!finishing_holds(ids[0]), "the oldest was joined");
        assert!(ids[1..].iter().all(|&id| finishing_holds(id)));
        releaser.join().unwrap();
        for (_, _, release) in &jobs {
            let _ = release.send(());
        }
        join_finishing();
    }
}
