//! Handing freed heap back to the system after a burst of start-ups or stops, and
//! after the queues drain from a burst of events (`actors::schedule::QueueMemory`).
//!
//! Starting thousands of subscriptions at once leaves megabytes of short-lived
//! allocations (rows, specs, subscribe futures) freed inside the allocator, as does a
//! drained burst, which glibc keeps as resident memory unless asked to return it.

/// Subscriptions started (or stopped) by one reload above which the garbage is worth
/// returning.
pub const RELEASE_AFTER_STARTS: usize = 256;

/// Return free heap pages to the system; a no-op where the allocator is not glibc's.
pub fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes no
    // pointer of ours and is safe to call at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}
