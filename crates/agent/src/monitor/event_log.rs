//! Follows podman's event log file (`events_logger = "file"`) instead of its API event stream.
//!
//! The file holds the events of every podman process on the node: the API service, the CLI,
//! and the cleanup process that records a container's death. Reading it from where the agent
//! left off loses nothing between reads, and no podman process is kept busy streaming (a
//! stream keeps the API service working, and an idle service costs CPU of its own). A file
//! replaced (rotation, `podman system reset`) loses nothing: the rest of the old one is read
//! through the open handle first. One truncated in place may have lost events: that marks
//! the observed state unknown and wakes a full pass, as a reconnect of the stream does.
//!
//! The follower is a thread: it sleeps in `poll` on an inotify watch of the file's directory,
//! and looks at least every `LOOK_EVERY` as well (a directory removed and made again drops
//! the watch until it is added again).

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

use super::watch::{Wake, event_seen, events_missed};
use crate::deployer::{ContainerEvent, ObservedCache};
use runtime::podman::api::PodmanApi;

/// The longest the follower sleeps without looking at the file.
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// The most read in one look (the rest follows at once).
const READ_CHUNK: u64 = 1 << 20;

/// Where podman writes its event log by default: `<tmp_dir>/events/events.log`, `tmp_dir`
/// being `/run/libpod` for root and `$XDG_RUNTIME_DIR/libpod/tmp` otherwise.
pub fn default_path() -> Option<PathBuf> {
    if nix::unistd::geteuid().is_root() {
        return Some(PathBuf::from("/run/libpod/events/events.log"));
    }
    let runtime_dir = std::env::var_os("XDG_RUNTIME_DIR")?;
    Some(Path::new(&runtime_dir).join("libpod/tmp/events/events.log"))
}

/// The event log to follow: `configured`, else podman's default one when podman says it
/// logs events to a file, its global arguments leave the default place (no `--tmpdir` or
/// `--events-backend`), and the file exists (podman writes one at its first command after
/// boot). `None`: the caller follows the API's event stream instead.
pub async fn locate(
    configured: Option<&Path>,
    api: &PodmanApi,
    podman_args: &[String],
) -> Option<PathBuf> {
    if let Some(path) = configured {
        return Some(path.to_path_buf());
    }
    let moved = podman_args.iter().any(|arg| {
        ["--tmpdir", "--events-backend"]
            .iter()
            .any(|flag| arg == flag || arg.starts_with(&format!("{flag}=")))
    });
    if moved {
        return None;
    }
    let logger = api
        .event_logger()
        .await
        .map_err(|error| tracing::debug!(%error, "podman's event logger unknown"))
        .ok()?;
    let path = default_path().filter(|path| path.is_file());
    path.filter(|_| logger == "file")
}

/// Starts following `path` until `stop`: each of our containers' events is applied to
/// `observed` and wakes the monitor. `connected` is set while following (the monitor then
/// reconciles on its slow timer).
pub fn spawn(
    path: PathBuf,
    wake: mpsc::Sender<Wake>,
    connected: Arc<AtomicBool>,
    observed: Arc<ObservedCache>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("podman-event-log".into())
        .spawn(move || follow(&path, &wake, &connected, &observed, &stop))
}

fn follow(
    path: &Path,
    wake: &mpsc::Sender<Wake>,
    connected: &AtomicBool,
    observed: &ObservedCache,
    stop: &watch::Receiver<bool>,
) {
    let mut log = LogReader::at_end(path);
    let mut changes = DirWatch::new(path);
    // What happened before is the startup reconcile's to find.
    events_missed(observed, wake);
    connected.store(true, Ordering::SeqCst);
    tracing::info!(path = %path.display(), "podman's events: following its event log");
    while !*stop.borrow() {
        changes.wait(LOOK_EVERY);
        let read = log.read_new();
        if read.restarted {
            tracing::info!(path = %path.display(), "podman's event log was truncated; reconciling");
            events_missed(observed, wake);
        }
        for line in read.lines {
            if let Some(event) = ContainerEvent::parse_logged(&line) {
                event_seen(event, observed, wake);
            }
        }
    }
    connected.store(false, Ordering::SeqCst);
}

/// An inotify watch of the log's directory; without one (no inotify, no directory yet) the
/// follower just looks every `LOOK_EVERY`.
struct DirWatch {
    dir: PathBuf,
    inotify: Option<Inotify>,
    watch: Option<WatchDescriptor>,
}

impl DirWatch {
    fn new(path: &Path) -> Self {
        let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
            .map_err(|error| tracing::debug!(%error, "no inotify: the event log is polled"))
            .ok();
        let mut watch = Self {
            dir,
            inotify,
            watch: None,
        };
        watch.add();
        watch
    }

    fn add(&mut self) {
        if let (Some(inotify), None) = (&self.inotify, &self.watch) {
            self.watch = inotify
                .add_watch(
                    &self.dir,
                    AddWatchFlags::IN_MODIFY
                        | AddWatchFlags::IN_CREATE
                        | AddWatchFlags::IN_MOVED_TO
                        | AddWatchFlags::IN_DELETE_SELF,
                )
                .ok();
        }
    }

    /// Returns when something in the directory changed, or after `most`.
    fn wait(&mut self, most: Duration) {
        let Some(inotify) = &self.inotify else {
            std::thread::sleep(most);
            return;
        };
        if self.watch.is_none() {
            std::thread::sleep(most);
            self.add();
            return;
        }
        let timeout = PollTimeout::try_from(most).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(inotify.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, timeout).is_err() {
            std::thread::sleep(most);
        }
        let mut gone = false;
        while let Ok(events) = inotify.read_events() {
            if events.is_empty() {
                break;
            }
            gone |= events
                .iter()
                .any(|e| e.mask.contains(AddWatchFlags::IN_IGNORED));
        }
        if gone {
            // The directory went away: watch it again once it is back.
            self.watch = None;
            self.add();
        }
    }
}

/// What one look at the log found.
#[derive(Debug, Default, PartialEq, Eq)]
struct NewLines {
    lines: Vec<Vec<u8>>,
    /// The file was truncated in place since the last look: events may be lost.
    restarted: bool,
}

/// Reads a growing file line by line from where it left off, across replacement and
/// truncation.
struct LogReader {
    path: PathBuf,
    /// The file being read and its inode; `None` until it exists.
    file: Option<(File, u64)>,
    offset: u64,
    /// The start of a line not yet complete.
    partial: Vec<u8>,
    /// The file's first bytes as first read: a file truncated and written again past the
    /// offset keeps its size growing, but not its beginning.
    head: Vec<u8>,
}

/// How much of the file's beginning identifies it.
const HEAD_LEN: usize = 64;

impl LogReader {
    /// A reader that starts at the current end of `path`, or at the start of the file
    /// once it appears.
    fn at_end(path: &Path) -> Self {
        let mut reader = Self {
            path: path.to_path_buf(),
            file: None,
            offset: 0,
            partial: Vec::new(),
            head: Vec::new(),
        };
        if let Ok(file) = File::open(path)
            && let Ok(meta) = file.metadata()
        {
            reader.offset = meta.len();
            reader.file = Some((file, meta.ino()));
            reader.head = reader.read_head();
        }
        reader
    }

    /// Up to `HEAD_LEN` bytes from the start of the open file.
    fn read_head(&mut self) -> Vec<u8> {
        let mut head = Vec::new();
        if let Some((file, _)) = &mut self.file {
            let _ = file
                .seek(SeekFrom::Start(0))
                .and_then(|_| file.by_ref().take(HEAD_LEN as u64).read_to_end(&mut head));
        }
        head
    }

    fn read_new(&mut self) -> NewLines {
        let mut found = NewLines::default();
        let current = std::fs::metadata(&self.path).ok();
        match (&self.file, current) {
            (Some((_, inode)), Some(meta)) if *inode == meta.ino() => {
                let head = self.read_head();
                if meta.len() < self.offset || !head.starts_with(&self.head) {
                    found.restarted = true;
                    self.offset = 0;
                    self.partial.clear();
                    self.head.clear();
                }
            }
            (_, Some(_)) => {
                // Replaced (renamed away, or removed and made again): what the old file got
                // since the last look is still read through the open handle and comes
                // first, so nothing is lost.
                self.read_rest(&mut found.lines);
                self.file = File::open(&self.path)
                    .ok()
                    .and_then(|file| Some((file.metadata().ok()?.ino(), file)))
                    .map(|(inode, file)| (file, inode));
                self.offset = 0;
                self.partial.clear();
                self.head.clear();
            }
            // Gone for now: a new one is noticed when it appears.
            (_, None) => {}
        }
        self.read_rest(&mut found.lines);
        if self.head.len() < HEAD_LEN {
            self.head = self.read_head();
        }
        found
    }

    /// Reads from `offset` to the end of the open file, splitting complete lines.
    fn read_rest(&mut self, lines: &mut Vec<Vec<u8>>) {
        let Some((file, _)) = &mut self.file else {
            return;
        };
        loop {
            let mut chunk = Vec::new();
            let read = file
                .seek(SeekFrom::Start(self.offset))
                .and_then(|_| file.by_ref().take(READ_CHUNK).read_to_end(&mut chunk));
            let n = match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            self.offset += n as u64;
            self.partial.extend_from_slice(&chunk);
            while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
                let rest = self.partial.split_off(end + 1);
                let mut line = std::mem::replace(&mut self.partial, rest);
                line.pop();
                lines.push(line);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(path: &Path, text: &str) {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        file.write_all(text.as_bytes()).unwrap();
    }

    fn lines(read: &NewLines) -> Vec<&str> {
        read.lines
            .iter()
            .map(|l| std::str::from_utf8(l).unwrap())
            .collect()
    }

    #[test]
    fn starts_at_the_end_and_reads_whole_lines_as_they_come() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        append(&path, "old\n");
        let mut log = LogReader::at_end(&path);
        assert_eq!(log.read_new(), NewLines::default());
        append(&path, "one\ntw");
        assert_eq!(lines(&log.read_new()), ["one"]);
        append(&path, "o\nthree\n");
        let read = log.read_new();
        assert_eq!(
            (lines(&read), read.restarted),
            (vec!["two", "three"], false)
        );
    }

    #[test]
    fn a_file_that_appears_later_is_read_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        let mut log = LogReader::at_end(&path);
        assert_eq!(log.read_new(), NewLines::default());
        append(&path, "first\n");
        let read = log.read_new();
        assert_eq!((lines(&read), read.restarted), (vec!["first"], false));
    }

    #[test]
    fn a_replaced_file_loses_nothing_and_a_truncated_one_is_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        append(&path, "a\n");
        let mut log = LogReader::at_end(&path);
        append(&path, "b\n");
        // Rotated: the old file got "b" before it was replaced.
        std::fs::rename(&path, dir.path().join("events.log.1")).unwrap();
        append(&path, "c\n");
        let read = log.read_new();
        assert_eq!((lines(&read), read.restarted), (vec!["b", "c"], false));
        // Removed and made again: likewise.
        append(&path, "c2\n");
        std::fs::remove_file(&path).unwrap();
        append(&path, "c3\n");
        let read = log.read_new();
        assert_eq!((lines(&read), read.restarted), (vec!["c2", "c3"], false));
        // Truncated in place, then written again: shorter, or as long as before.
        std::fs::write(&path, "d\n").unwrap();
        let read = log.read_new();
        assert_eq!((lines(&read), read.restarted), (vec!["d"], true));
        append(&path, "e\n");
        assert_eq!(lines(&log.read_new()), ["e"]);
        std::fs::write(&path, "f\ng\nh\n").unwrap();
        let read = log.read_new();
        assert_eq!((lines(&read), read.restarted), (vec!["f", "g", "h"], true));
    }
}
