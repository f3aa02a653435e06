//! Keeping large blocks out of the heap, and handing freed heap back to the system
//! after a burst of start-ups or stops, and after the queues drain from a burst of
//! events (`actors::schedule::QueueMemory`).
//!
//! Starting thousands of subscriptions at once leaves megabytes of short-lived
//! allocations (rows, specs, subscribe futures) freed inside the allocator, as does a
//! drained burst, which glibc keeps as resident memory unless asked to return it.

/// Subscriptions started (or stopped) by one reload above which the garbage is worth
/// returning.
pub const RELEASE_AFTER_STARTS: usize = 256;

/// Allocations of this size or more get pages of their own, returned when freed.
/// Lower, the heap's churn of mid-sized buffers would become system calls; higher,
/// more of those buffers stay resident after a burst. 1 MiB cost 2 MB of idle
/// memory and nothing measurable in speed against glibc's moving threshold.
const OWN_PAGES_FROM: usize = 1 << 20;

/// Fix glibc's threshold for giving large allocations pages of their own. Left to
/// itself, glibc raises that threshold to the size of any large block freed (up to
/// 32 MiB), so a burst of password checks (argon2, about 19 MiB each) or of large
/// bodies leaves later large blocks inside thread arenas, at the top of their heaps,
/// where even `malloc_trim` cannot hand them back. A no-op where the allocator is not
/// glibc's. Call once, before threads start.
pub fn configure_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tuning parameter of the allocator; it takes no
    // pointer and is called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, OWN_PAGES_FROM as libc::c_int);
    }
}

/// Return free heap pages to the system; a no-op where the allocator is not glibc's.
pub fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes no
    // pointer of ours and is safe to call at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}
