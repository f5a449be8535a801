//! The relay loop's timer and stop, polled only when they may be ready.
//!
//! Each is asked on every poll of the loop's `select!`, not once when the
//! `select!` is entered: a branch's `if` precondition is read only on entry,
//! so a timer or a stop that fires while the loop waits for the next event
//! would go unseen until that event came (no heartbeat in a silence, a
//! `DELETE` noticed only at the next token).

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;

use tokio::time::Sleep;
use tokio_util::sync::WaitForCancellationFutureOwned;

/// `timer`, polled when it is not `armed` (not polled since it was made or
/// reset, so it may not hold this task's waker) or once the wheel has fired
/// it; otherwise pending without a poll. Polling an armed timer only
/// registered the same waker again: ~200 instructions a token under
/// callgrind (`benches/instructions.sh`).
pub fn fired(mut timer: Pin<&mut Sleep>, armed: bool) -> impl Future<Output = ()> + '_ {
    poll_fn(move |cx| match !armed || timer.is_elapsed() {
        true => timer.as_mut().poll(cx),
        false => Poll::Pending,
    })
}

/// `stopped`, polled when it is not `armed` (see `relay::body`) or once
/// `cancelled()` says its token fired.
pub fn stopped<'a>(
    mut stopped: Pin<&'a mut WaitForCancellationFutureOwned>,
    armed: bool,
    cancelled: impl Fn() -> bool + 'a,
) -> impl Future<Output = ()> + 'a {
    poll_fn(move |cx| match !armed || cancelled() {
        true => stopped.as_mut().poll(cx),
        false => Poll::Pending,
    })
}
