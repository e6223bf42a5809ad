//! Which rotated files to delete: by count, total size and age.
//!
//! Only files whose names parse as this sink's rotated names are ever considered (see
//! [`rotation::parse_rotated`](crate::files::rotation::parse_rotated)); the active file and anything
//! else in the folder are never candidates.

use std::time::{Duration, SystemTime};

use crate::files::rotation::Position;

/// The retention limits; `None` means unlimited.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Retention {
    pub(crate) keep_files: Option<usize>,
    pub(crate) max_total_size: Option<u64>,
    pub(crate) max_age: Option<Duration>,
}

/// One rotated file (in whichever form it is, `.log` or `.log.gz`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub(crate) position: Position,
    /// The rotated `.log` name (the file may be there in its `.gz` form).
    pub(crate) name: String,
    pub(crate) size: u64,
    /// Its modification time: when its last event was written (compression keeps it).
    pub(crate) modified: SystemTime,
}

impl Retention {
    pub(crate) fn is_unlimited(&self) -> bool {
        self.keep_files.is_none() && self.max_total_size.is_none() && self.max_age.is_none()
    }

    /// The candidates to delete at `now`, oldest first. A file goes when it is beyond the
    /// newest `keep_files`, or when it and the newer files together exceed `max_total_size`,
    /// or when it was last written more than `max_age` ago.
    pub(crate) fn select(&self, mut files: Vec<Candidate>, now: SystemTime) -> Vec<Candidate> {
        files.sort_by_key(|f| std::cmp::Reverse(f.position)); // newest first
        let mut total = 0u64;
        let mut doomed: Vec<Candidate> = Vec::new();
        for (i, file) in files.into_iter().enumerate() {
            total = total.saturating_add(file.size);
            let too_many = self.keep_files.is_some_and(|keep| i >= keep);
            let too_big = self.max_total_size.is_some_and(|max| total > max);
            let too_old = self
                .max_age
                .is_some_and(|age| now.duration_since(file.modified).is_ok_and(|d| d > age));
            if too_many || too_big || too_old {
                doomed.push(file);
            }
        }
        doomed.reverse();
        doomed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    const DAY: u64 = 86_400;

    /// Ten files, one a day, 100 bytes each; file i last written on day i.
    fn files() -> Vec<Candidate> {
        (0..10)
            .map(|i| Candidate {
                position: (i as i64 * DAY as i64, 0),
                name: format!("f{i}"),
                size: 100,
                modified: UNIX_EPOCH + Duration::from_secs(i * DAY),
            })
            .collect()
    }

    fn names(c: Vec<Candidate>) -> Vec<String> {
        c.into_iter().map(|c| c.name).collect()
    }

    const NOW: u64 = 10 * DAY;

    fn select(r: Retention) -> Vec<String> {
        names(r.select(files(), UNIX_EPOCH + Duration::from_secs(NOW)))
    }

    /// Without limits nothing is selected for deletion.
    #[test]
    fn unlimited_keeps_everything() {
        assert!(Retention::default().is_unlimited());
        assert!(select(Retention::default()).is_empty());
    }

    /// `keep_files` keeps the newest files and selects the rest, oldest first.
    #[test]
    fn by_count_keeps_the_newest() {
        let r = Retention {
            keep_files: Some(3),
            ..Default::default()
        };
        assert_eq!(select(r), ["f0", "f1", "f2", "f3", "f4", "f5", "f6"]);
    }

    /// `max_total_size` keeps the newest files whose sizes fit together, no fewer.
    #[test]
    fn by_total_size_keeps_the_newest_that_fit() {
        let r = Retention {
            max_total_size: Some(250),
            ..Default::default()
        };
        assert_eq!(select(r), ["f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7"]);
        let r = Retention {
            max_total_size: Some(300),
            ..Default::default()
        };
        assert_eq!(select(r).len(), 7);
    }

    /// `max_age` selects the files last written longer ago than the limit.
    #[test]
    fn by_age_uses_the_last_write() {
        // Older than 3.5 days at day 10: last written on day 6 or before.
        let r = Retention {
            max_age: Some(Duration::from_secs(DAY * 7 / 2)),
            ..Default::default()
        };
        assert_eq!(select(r), ["f0", "f1", "f2", "f3", "f4", "f5", "f6"]);
    }

    /// Several limits together: the strictest decides.
    #[test]
    fn limits_combine_as_the_strictest() {
        let r = Retention {
            keep_files: Some(5),
            max_total_size: Some(10_000),
            max_age: Some(Duration::from_secs(DAY * 3 / 2)),
        };
        assert_eq!(select(r).len(), 9); // only day 9 is younger than 1.5 days
    }
}
