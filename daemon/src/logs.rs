//! `zend logs [-f] [-n N]`: the tail of zend's newest log file.
//!
//! Logs rotate daily (`zend.YYYY-MM-DD.log`, see `logging`), so the newest file
//! is the greatest name. Following polls, because the file to follow changes:
//! at each rotation the rest of the old file is printed, then the new one from
//! its start. Reads the files only, so it works whether zend runs or not.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How often `-f` looks for new lines and a newer file.
const POLL: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    #[error("cannot read the log directory {path}: {source}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// zend's log files in `state_dir`, oldest first.
pub fn log_files(state_dir: &Path) -> Result<Vec<PathBuf>, LogsError> {
    let entries = match std::fs::read_dir(state_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(LogsError::Dir {
                path: state_dir.to_path_buf(),
                source,
            });
        }
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("zend.") && n.ends_with(".log"))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Prints the last `lines` lines of the newest log; with `follow`, keeps
/// printing what is appended (across rotations) until `stop` is cancelled.
pub async fn tail(
    state_dir: &Path,
    lines: usize,
    follow: bool,
    stop: CancellationToken,
    out: &mut (dyn Write + Send),
) -> Result<u8, LogsError> {
    let mut current = log_files(state_dir)?.pop();
    let mut offset = 0;
    match &current {
        Some(path) => {
            let (text, end) = last_lines(path, lines)?;
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
            offset = end;
        }
        None if !follow => {
            let _ = writeln!(out, "no zend log in {} yet", state_dir.display());
            return Ok(0);
        }
        None => {}
    }
    if !follow {
        return Ok(0);
    }
    loop {
        if let Some(path) = &current {
            offset = copy_from(path, offset, out)?;
        }
        let newest = log_files(state_dir)?.pop();
        if newest.is_some() && newest != current {
            // Rotation: the old file's rest was just printed; the new one is read whole.
            current = newest;
            offset = 0;
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = stop.cancelled() => return Ok(0),
        }
    }
}

/// The last `count` lines of `path`, and the file's length.
fn last_lines(path: &Path, count: usize) -> Result<(String, u64), LogsError> {
    let error = |source| LogsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(error)?;
    let len = file.metadata().map_err(error)?.len();
    // Read backwards in blocks until enough newlines are in hand.
    const BLOCK: u64 = 16 * 1024;
    let mut start = len;
    let mut buffer = Vec::new();
    while start > 0 {
        let from = start.saturating_sub(BLOCK);
        let mut block = vec![0; (start - from) as usize];
        file.seek(SeekFrom::Start(from)).map_err(error)?;
        file.read_exact(&mut block).map_err(error)?;
        block.extend_from_slice(&buffer);
        buffer = block;
        start = from;
        // One more newline than lines wanted: the one ending the line before them.
        if buffer.iter().filter(|b| **b == b'\n').count() > count {
            break;
        }
    }
    let text = String::from_utf8_lossy(&buffer);
    let body = text.strip_suffix('\n').unwrap_or(&text);
    let kept: Vec<&str> = body.rsplit('\n').take(count).collect();
    let mut tail: String = kept.into_iter().rev().collect::<Vec<_>>().join("\n");
    if !tail.is_empty() || (count > 0 && !body.is_empty()) {
        tail.push('\n');
    }
    Ok((tail, len))
}

/// Copies `path` from `offset` to `out`; returns the new offset. A file that
/// shrank (truncated by hand) is read again from its start.
fn copy_from(path: &Path, offset: u64, out: &mut (dyn Write + Send)) -> Result<u64, LogsError> {
    let error = |source| LogsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(offset),
        Err(source) => return Err(error(source)),
    };
    let len = file.metadata().map_err(error)?.len();
    let offset = if len < offset { 0 } else { offset };
    if len == offset {
        return Ok(offset);
    }
    file.seek(SeekFrom::Start(offset)).map_err(error)?;
    let mut bytes = Vec::new();
    file.take(len - offset)
        .read_to_end(&mut bytes)
        .map_err(error)?;
    let _ = out.write_all(&bytes);
    let _ = out.flush();
    Ok(offset + bytes.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn last_lines_of_small_and_large_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zend.2026-01-01.log");
        std::fs::write(&path, "a\nb\nc\n").unwrap();
        assert_eq!(last_lines(&path, 2).unwrap().0, "b\nc\n");
        assert_eq!(last_lines(&path, 10).unwrap().0, "a\nb\nc\n");
        assert_eq!(last_lines(&path, 0).unwrap().0, "");
        let big: String = (0..10_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, &big).unwrap();
        assert_eq!(
            last_lines(&path, 3).unwrap().0,
            "line 9997\nline 9998\nline 9999\n"
        );
    }

    #[test]
    fn files_sort_by_date_and_other_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["zend.2026-01-02.log", "zend.2025-12-31.log", "other.log"] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let names: Vec<String> = log_files(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["zend.2025-12-31.log", "zend.2026-01-02.log"]);
    }

    /// A writer the test can read while `tail` owns it.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        async fn wait_for(&self, needle: &str) {
            for _ in 0..200 {
                if String::from_utf8_lossy(&self.0.lock().unwrap()).contains(needle) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!(
                "{needle:?} never appeared in {:?}",
                String::from_utf8_lossy(&self.0.lock().unwrap())
            );
        }
    }

    #[tokio::test]
    async fn follow_prints_appended_lines_and_crosses_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let day1 = dir.path().join("zend.2026-01-01.log");
        std::fs::write(&day1, "old 1\nold 2\n").unwrap();
        let out = Shared::default();
        let stop = CancellationToken::new();
        let task = {
            let (dir, mut out, stop) = (dir.path().to_path_buf(), out.clone(), stop.clone());
            tokio::spawn(async move { tail(&dir, 1, true, stop, &mut out).await })
        };
        out.wait_for("old 2\n").await;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&day1)
            .unwrap();
        file.write_all(b"appended\n").unwrap();
        out.wait_for("appended\n").await;
        std::fs::write(dir.path().join("zend.2026-01-02.log"), "next day\n").unwrap();
        out.wait_for("next day\n").await;
        stop.cancel();
        assert_eq!(task.await.unwrap().unwrap(), 0);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text, "old 2\nappended\nnext day\n");
    }
}
