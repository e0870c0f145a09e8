//! Giving heap memory that closed sessions freed back to the system.
//!
//! glibc's malloc keeps memory that sessions freed inside its heaps (fragmentation, not a leak:
//! it only returns the top of a heap on its own), so after many sessions come and go zend's
//! resident size stays near its peak. `malloc_trim(0)` also releases the free pages in the
//! middle. zend calls it when the last live session closes: that is when most of what sessions
//! allocated has just been freed, and nobody is waiting on zend. Linux with glibc only; elsewhere
//! this does nothing.

/// Returns free heap pages to the system, off the async threads (it walks every arena).
pub fn trim_when_idle() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn_blocking(|| {
                // SAFETY: malloc_trim(0) takes each arena's lock in turn and madvises free
                // pages away; it may be called from any thread at any time.
                unsafe {
                    libc::malloc_trim(0);
                }
            });
        }
    }
}
