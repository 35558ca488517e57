//! A librdkafka queue handle that wakes a task when the empty queue gets an op, and releases the
//! queue when dropped: what a partition's queue ([`super::queue`]) and a commit's reply queue
//! ([`super::commit`]) both read without blocking a thread.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::ptr::{null_mut, NonNull};
use std::task::Waker;

use futures::task::AtomicWaker;
use rdkafka::bindings as rd;

/// A queue whose not-empty callback wakes the last registered task. The owner keeps the
/// librdkafka handle the queue belongs to alive for longer: librdkafka's queues must go first.
pub(super) struct WakingQueue {
    queue: NonNull<rd::rd_kafka_queue_t>,
    /// Boxed so its address, which librdkafka holds, does not move.
    waker: Box<AtomicWaker>,
}

// SAFETY: librdkafka's queues may be used from any thread, and the waker is thread-safe.
unsafe impl Send for WakingQueue {}
unsafe impl Sync for WakingQueue {}

/// librdkafka's call when the empty queue gets an op (under the queue's lock, on its thread).
unsafe extern "C" fn queue_not_empty(_rk: *mut rd::rd_kafka_t, opaque: *mut c_void) {
    // SAFETY: `opaque` is the `AtomicWaker` of a live `WakingQueue`: its drop disables this
    // callback (under the same lock) before the waker goes.
    let waker = unsafe { &*(opaque as *const AtomicWaker) };
    waker.wake();
}

impl WakingQueue {
    /// Take over `queue` (a handle of ours, released on drop) and start waking on it.
    ///
    /// # Safety
    /// `queue` is a valid queue handle that nothing else releases.
    pub unsafe fn new(queue: NonNull<rd::rd_kafka_queue_t>) -> Self {
        let waker = Box::new(AtomicWaker::new());
        // SAFETY: `queue` is valid (the caller's promise); the waker outlives the callback (see
        // `Drop`).
        unsafe {
            rd::rd_kafka_queue_cb_event_enable(
                queue.as_ptr(),
                Some(queue_not_empty),
                &*waker as *const AtomicWaker as *mut c_void,
            );
        }
        Self { queue, waker }
    }

    /// The queue, for librdkafka's calls.
    pub fn as_ptr(&self) -> *mut rd::rd_kafka_queue_t {
        self.queue.as_ptr()
    }

    /// Wake `waker` when the empty queue next gets an op. The caller looks at the queue again
    /// after registering: an op that came before the registration woke nobody.
    pub fn register(&self, waker: &Waker) {
        self.waker.register(waker);
    }
}

impl Drop for WakingQueue {
    fn drop(&mut self) {
        // SAFETY: disabling takes the queue's lock, under which the callback runs, so no callback
        // is running or will run once it returns; then our handle is released, once (an op still
        // to come to a queue librdkafka also references is freed with its reference).
        unsafe {
            rd::rd_kafka_queue_cb_event_enable(self.queue.as_ptr(), None, null_mut());
            rd::rd_kafka_queue_destroy(self.queue.as_ptr());
        }
    }
}
