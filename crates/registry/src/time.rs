//! Wall-clock time as unix seconds, the unit every timestamp column uses.

use std::time::{SystemTime, UNIX_EPOCH};

/// Current time in unix seconds. A clock before 1970 yields 0 rather than failing a deploy:
/// timestamps are informational, never used for ordering (event ids are).
pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
