//! Small formatting helpers shared by the CLI and tools.

use std::time::Duration;

/// "3d 4h", "2h 5m", "4m 2s", "12s".
pub fn human_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_secs(12)), "12s");
        assert_eq!(human_duration(Duration::from_secs(242)), "4m 2s");
        assert_eq!(human_duration(Duration::from_secs(7500)), "2h 5m");
        assert_eq!(
            human_duration(Duration::from_secs(3 * 86_400 + 4 * 3600)),
            "3d 4h"
        );
    }
}
