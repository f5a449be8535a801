//! Pause and step (contract section 14): a running generation's frames can
//! be held back (`POST /v1/generations/GEN/pause`), let through a few at a
//! time (`.../step?n=N`) and let go (`.../resume`), so a developer can look
//! at a half-rendered UI.
//!
//! The gate is only state: the relay that writes the generation reads it
//! before it takes the next event, and while the gate is shut it takes none,
//! so the mock stops generating and an upstream stops being read (its
//! connection's buffers fill, and it waits).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::futures::Notified;
use tokio::sync::Notify;

/// Whether a generation's frames flow.
#[derive(Default)]
pub struct Gate {
    paused: AtomicBool,
    /// Frames let through while paused.
    credits: AtomicU64,
    changed: Notify,
}

impl Gate {
    pub fn pause(&self) {
        self.credits.store(0, Ordering::Release);
        self.paused.store(true, Ordering::Release);
        self.changed.notify_waiters();
    }

    pub fn resume(&self) {
        self.paused.store(false, Ordering::Release);
        self.changed.notify_waiters();
    }

    /// Lets `n` more frames through a paused gate.
    pub fn step(&self, n: u64) {
        self.credits.fetch_add(n, Ordering::AcqRel);
        self.changed.notify_waiters();
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    /// Whether the next event may be taken.
    pub fn open(&self) -> bool {
        !self.is_paused() || self.credits.load(Ordering::Acquire) > 0
    }

    /// A frame went through: one credit is spent, when paused.
    pub fn passed(&self) {
        if self.is_paused() {
            let _ = self
                .credits
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        }
    }

    /// Resolves when the gate changes; made before [`Gate::open`] is
    /// asked, so no change between the two is missed.
    pub fn changed(&self) -> Notified<'_> {
        self.changed.notified()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paused_gate_lets_through_what_steps_release() {
        let gate = Gate::default();
        assert!(gate.open());
        gate.pause();
        assert!(!gate.open());
        gate.step(2);
        assert!(gate.open());
        gate.passed();
        assert!(gate.open());
        gate.passed();
        assert!(!gate.open());
        gate.passed();
        assert!(!gate.open(), "no credit goes below zero");
        gate.resume();
        assert!(gate.open());
        gate.passed();
        gate.pause();
        assert!(!gate.open(), "a pause forgets old credits");
    }
}
