// SPDX-License-Identifier: Apache-2.0
//! Taking turns at something several engines share, such as one ONNX
//! Runtime session (`ort` runs a session through `&mut`).
//!
//! [`Turns`] is a first-come, first-served lock whose waiters give up when
//! their own [`Canceller`] fires, so a pipeline stopping while another
//! pipeline's inference holds the session does not wait for that inference.
//! First come, first served: streams sharing a session get their turns in
//! order, and none is starved by one that asks again right after its run.
//! An engine holds one turn at a time (its runs are sequential), so turns
//! at different sessions cannot deadlock.

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::segment::error::Error;
use crate::segment::onnx::cancel::Canceller;

/// How often a waiter looks at its cancel flag: a canceller does not know
/// which session its engine waits for, so it cannot wake the waiter itself.
const CANCEL_POLL: Duration = Duration::from_millis(5);

/// A value used by one holder at a time, in the order they asked.
pub(crate) struct Turns<T> {
    value: Mutex<T>,
    queue: Mutex<Queue>,
    /// Signalled when the holder is done or a waiter gives up.
    changed: Condvar,
}

#[derive(Default)]
struct Queue {
    busy: bool,
    /// Tickets of the waiters, first come first.
    waiting: VecDeque<u64>,
    next_ticket: u64,
}

/// The current turn; the value is free again when it drops.
pub(crate) struct Turn<'a, T> {
    // Fields drop in order: the value is unlocked before the next waiter is
    // told, so the waiter finds it free.
    value: MutexGuard<'a, T>,
    _end: EndOfTurn<'a, T>,
}

struct EndOfTurn<'a, T>(&'a Turns<T>);

impl<T> Drop for EndOfTurn<'_, T> {
    fn drop(&mut self) {
        self.0.queue().busy = false;
        self.0.changed.notify_all();
    }
}

impl<T> Deref for Turn<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for Turn<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T> Turns<T> {
    pub(crate) fn new(value: T) -> Self {
        Turns {
            value: Mutex::new(value),
            queue: Mutex::new(Queue::default()),
            changed: Condvar::new(),
        }
    }

    /// Waits for the value; `Err(Cancelled)` as soon as `cancel` fires.
    pub(crate) fn take(&self, cancel: &Canceller) -> Result<Turn<'_, T>, Error> {
        self.take_unless(|| cancel.is_cancelled())
            .ok_or(Error::Cancelled)
    }

    /// Waits for the value; `None` as soon as `cancelled()` is true.
    fn take_unless(&self, cancelled: impl Fn() -> bool) -> Option<Turn<'_, T>> {
        if cancelled() {
            return None;
        }
        let mut queue = self.queue();
        if queue.busy || !queue.waiting.is_empty() {
            let ticket = queue.next_ticket;
            queue.next_ticket = queue.next_ticket.wrapping_add(1);
            queue.waiting.push_back(ticket);
            loop {
                queue = self
                    .changed
                    .wait_timeout(queue, CANCEL_POLL)
                    .map_or_else(|e| e.into_inner().0, |(guard, _)| guard);
                if cancelled() {
                    queue.waiting.retain(|&t| t != ticket);
                    drop(queue);
                    // The next in line may be waiting for this one to go.
                    self.changed.notify_all();
                    return None;
                }
                if !queue.busy && queue.waiting.front() == Some(&ticket) {
                    queue.waiting.pop_front();
                    break;
                }
            }
        }
        queue.busy = true;
        drop(queue);
        // Only the holder of the turn locks the value: this never waits.
        let value = self.value.lock().unwrap_or_else(PoisonError::into_inner);
        Some(Turn {
            value,
            _end: EndOfTurn(self),
        })
    }

    /// How many wait for their turn.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.queue().waiting.len()
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::thread;

    fn wait_until(condition: impl Fn() -> bool) {
        while !condition() {
            thread::yield_now();
        }
    }

    #[test]
    fn a_cancelled_waiter_gives_up_while_the_holder_keeps_its_turn() {
        let turns = Arc::new(Turns::new(0u32));
        let mut turn = turns.take_unless(|| false).unwrap();
        let cancelled = Arc::new(AtomicBool::new(false));
        let waiter = {
            let (turns, cancelled) = (Arc::clone(&turns), Arc::clone(&cancelled));
            thread::spawn(move || {
                turns
                    .take_unless(|| cancelled.load(Ordering::SeqCst))
                    .is_some()
            })
        };
        wait_until(|| turns.waiting() == 1);
        cancelled.store(true, Ordering::SeqCst);
        assert!(!waiter.join().unwrap(), "the cancelled waiter got a turn");
        assert_eq!(turns.waiting(), 0);
        *turn += 1;
        drop(turn);
        assert_eq!(*turns.take_unless(|| false).unwrap(), 1);
    }

    #[test]
    fn turns_go_in_the_order_asked_and_skip_those_who_gave_up() {
        let turns = Arc::new(Turns::new(Vec::new()));
        let first = turns.take_unless(|| false).unwrap();
        let give_up = Arc::new(AtomicBool::new(false));
        let mut waiters = Vec::new();
        for id in 0..4 {
            let (theirs, give_up) = (Arc::clone(&turns), Arc::clone(&give_up));
            waiters.push(thread::spawn(move || {
                let cancelled = || id == 1 && give_up.load(Ordering::SeqCst);
                if let Some(mut turn) = theirs.take_unless(cancelled) {
                    turn.push(id);
                }
            }));
            wait_until(|| turns.waiting() == id + 1);
        }
        give_up.store(true, Ordering::SeqCst);
        wait_until(|| turns.waiting() == 3);
        drop(first);
        for waiter in waiters {
            waiter.join().unwrap();
        }
        assert_eq!(*turns.take_unless(|| false).unwrap(), [0, 2, 3]);
    }

    #[test]
    fn an_already_cancelled_caller_does_not_queue() {
        let turns = Turns::new(());
        assert!(turns.take_unless(|| true).is_none());
        assert_eq!(turns.waiting(), 0);
        assert!(turns.take_unless(|| false).is_some());
    }
}
