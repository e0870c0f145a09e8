//! Giving freed heap memory back to the system (part of the `zend` binary, not the library).
//!
//! glibc's malloc keeps memory that sessions freed: after 256 sessions come and go zend's RSS
//! stays near its peak (45 MiB against 17 MiB idle, creeping up round after round), although
//! `malloc_trim(0)` run by hand brings it back to 22 MiB. It is free memory inside the heaps
//! (fragmentation), not a leak: fewer arenas (`M_ARENA_MAX`) and lower trim/mmap thresholds do not
//! change it, because glibc only returns the top of a heap on its own, while `malloc_trim` also
//! releases the free pages in the middle. BENCHMARKS.md ("Memory", "Load and soak") has the figures.
//!
//! So serve starts one small thread that every [`EVERY`] reads how many bytes malloc holds free
//! and zend's resident size, and trims when malloc holds at least [`SLACK`] free and something
//! happened since the last trim: the free bytes grew by [`SLACK`] (sessions closed) or the resident
//! size moved by [`MOVED`] (memory was used again). An idle zend is never trimmed twice, and a
//! steady load at most once per tick. Linux with glibc only; elsewhere this does nothing.

use std::time::Duration;

/// How often the trimmer looks.
pub const EVERY: Duration = Duration::from_secs(5);
/// Free bytes inside malloc worth a trim.
pub const SLACK: u64 = 4 * 1024 * 1024;
/// A change of the resident size that says memory was used since the last trim.
pub const MOVED: u64 = 1024 * 1024;

/// When to trim, from successive readings of (resident bytes, malloc's free bytes).
#[derive(Debug)]
pub struct Policy {
    slack: u64,
    moved: u64,
    /// The readings right after the last trim.
    last: Option<(u64, u64)>,
}

impl Policy {
    pub fn new(slack: u64, moved: u64) -> Self {
        Self {
            slack,
            moved,
            last: None,
        }
    }

    /// Whether to trim now, given the readings now.
    pub fn should_trim(&self, resident: u64, free: u64) -> bool {
        if free < self.slack {
            return false;
        }
        match self.last {
            None => true,
            Some((last_resident, last_free)) => {
                resident.abs_diff(last_resident) > self.moved || free > last_free + self.slack
            }
        }
    }

    /// After a trim, with the readings right after it.
    pub fn trimmed(&mut self, resident: u64, free: u64) {
        self.last = Some((resident, free));
    }
}

/// Starts the trimmer thread (Linux with glibc; elsewhere nothing).
pub fn start_trimmer() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let spawned = std::thread::Builder::new()
            .name("zend-malloc-trim".into())
            .stack_size(64 * 1024)
            .spawn(|| {
                let mut policy = Policy::new(SLACK, MOVED);
                loop {
                    std::thread::sleep(EVERY);
                    if policy.should_trim(glibc::resident_bytes(), glibc::free_bytes()) {
                        glibc::trim();
                        policy.trimmed(glibc::resident_bytes(), glibc::free_bytes());
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start the malloc trimmer ({e}); freed memory stays with zend");
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    /// Bytes malloc holds free in all its arenas (`mallinfo().fordblks`). `mallinfo` rather
    /// than `mallinfo2` so zend still loads on glibc < 2.33; its `int` fields wrap past 2 GiB
    /// of free memory, far above what zend holds, and read as unsigned they stay ordered.
    pub fn free_bytes() -> u64 {
        // SAFETY: mallinfo takes no arguments and returns a struct by value; it only takes
        // each arena's lock while it counts.
        let info = unsafe { libc::mallinfo() };
        u64::from(info.fordblks as u32)
    }

    /// zend's resident set (the second field of /proc/self/statm, in pages); 0 if unreadable.
    pub fn resident_bytes() -> u64 {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as u64;
        std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map_or(0, |pages| pages * page)
    }

    /// Returns every free page of every arena to the system.
    pub fn trim() {
        // SAFETY: malloc_trim(0) takes each arena's lock in turn and madvises free pages
        // away; it is safe to call from any thread at any time.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn trims_when_sessions_freed_memory_or_it_was_used_again_not_when_idle() {
        let policy = |last| Policy {
            slack: 4 * MIB,
            moved: MIB,
            last,
        };
        let fresh = policy(None);
        assert!(
            !fresh.should_trim(20 * MIB, 3 * MIB),
            "too little free to bother"
        );
        assert!(
            fresh.should_trim(20 * MIB, 5 * MIB),
            "never trimmed, enough free"
        );

        let mut after = policy(None);
        after.trimmed(22 * MIB, 28 * MIB);
        assert!(
            !after.should_trim(22 * MIB, 28 * MIB),
            "idle since the trim"
        );
        assert!(
            !after.should_trim(22 * MIB + MIB / 2, 30 * MIB),
            "small moves"
        );
        assert!(
            after.should_trim(30 * MIB, 28 * MIB),
            "resident grew: used again"
        );
        assert!(
            after.should_trim(22 * MIB, 33 * MIB),
            "free grew: sessions closed"
        );
        assert!(!after.should_trim(30 * MIB, 2 * MIB), "in use, not free");
    }
}
