//! The filesystem operations behind the tools, on [`Roots`]. Every open
//! goes through `openat2` beneath a root (see `oi_sandbox::roots`).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::dir::{Dir, Type};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag, fstatat};
use oi_sandbox::roots::{PathError, Roots, name_text, open_beneath};
use serde::Serialize;

use crate::text::{binary_kind, cut_at_boundary, skip_continuation};

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("{0}")]
    Bad(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

fn io(path: &str) -> impl FnOnce(std::io::Error) -> FsError + '_ {
    move |source| FsError::Io {
        path: path.to_string(),
        source,
    }
}

fn errno(path: &str) -> impl FnOnce(Errno) -> FsError + '_ {
    move |e| FsError::Io {
        path: path.to_string(),
        source: std::io::Error::from(e),
    }
}

/// The result of `fs_read_file`.
#[derive(Debug, Serialize)]
pub struct ReadOut {
    pub path: String,
    pub size: u64,
    pub offset: u64,
    /// The text read; absent for binary files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    pub truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Reads up to `max` bytes of text from `offset`, cut on a character
/// boundary, with a note saying what was left out.
pub fn read(roots: &Roots, path: &str, offset: u64, max: usize) -> Result<ReadOut, FsError> {
    let loc = roots.locate(path)?;
    let shown = loc.display();
    let mut file = loc.open_read()?;
    let meta = file.metadata().map_err(io(&shown))?;
    if meta.is_dir() {
        return Err(FsError::Bad(format!(
            "'{shown}' is a directory; use fs_list_dir"
        )));
    }
    let size = meta.len();
    if offset > size {
        return Err(FsError::Bad(format!(
            "offset {offset} is past the end of '{shown}' ({size} bytes)"
        )));
    }
    file.seek(SeekFrom::Start(offset)).map_err(io(&shown))?;
    // Three extra bytes: a character cut at `max` can then be completed
    // or dropped, never split.
    let mut buf = Vec::with_capacity(max + 3);
    Read::by_ref(&mut file)
        .take(max as u64 + 3)
        .read_to_end(&mut buf)
        .map_err(io(&shown))?;
    let skip = if offset > 0 {
        skip_continuation(&buf)
    } else {
        0
    };
    let body = &buf[skip..];
    if let Some(kind) = binary_kind(&body[..body.len().min(max)]) {
        return Ok(ReadOut {
            path: shown.clone(),
            size,
            offset,
            content: None,
            truncated: false,
            next_offset: None,
            note: Some(format!(
                "'{shown}' is {kind} ({size} bytes); not shown as text"
            )),
        });
    }
    let n = cut_at_boundary(body, max);
    let end = offset + (skip + n) as u64;
    let content = String::from_utf8_lossy(&body[..n]).into_owned();
    let truncated = end < size;
    let note = truncated.then(|| {
        format!(
            "showing bytes {}..{end} of {size}; {} more bytes not shown: read further with offset={end}",
            offset + skip as u64,
            size - end
        )
    });
    Ok(ReadOut {
        path: shown,
        size,
        offset: offset + skip as u64,
        content: Some(content),
        truncated,
        next_offset: truncated.then_some(end),
        note,
    })
}

/// The result of `fs_write_file`.
#[derive(Debug, Serialize)]
pub struct WriteOut {
    pub path: String,
    pub bytes: u64,
    pub created: bool,
}

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Writes `content` atomically: a temporary file beside the target, synced,
/// then renamed over it. A symlink at the target is replaced, never
/// written through. With `append`, the old content comes first.
pub fn write(
    roots: &Roots,
    path: &str,
    content: &[u8],
    append: bool,
    create_dirs: bool,
) -> Result<WriteOut, FsError> {
    let loc = roots.locate(path)?;
    let shown = loc.display();
    let (dir, name) = loc.open_parent(create_dirs)?;
    let existing = match fstatat(dir.as_fd(), &name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Some(st),
        Err(Errno::ENOENT) => None,
        Err(e) => return Err(errno(&shown)(e)),
    };
    let mut mode = Mode::from_bits_truncate(0o644);
    if let Some(st) = &existing {
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        if kind == SFlag::S_IFDIR {
            return Err(FsError::Bad(format!("'{shown}' is a directory")));
        }
        if kind == SFlag::S_IFREG {
            mode = Mode::from_bits_truncate(st.st_mode & 0o7777);
        }
    }
    let mut data = Vec::new();
    if append && existing.is_some() {
        // Opened beneath the parent: a symlink at the name that leads out
        // of the root is refused like any other escape.
        let fd = open_beneath(
            dir.as_fd(),
            &name,
            OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::EXDEV => FsError::Path(PathError::Escapes {
                path: shown.clone(),
            }),
            e => errno(&shown)(e),
        })?;
        let mut f = File::from(fd);
        oi_sandbox::roots::regular_or_dir(&f, &shown)?;
        f.read_to_end(&mut data).map_err(io(&shown))?;
    }
    data.extend_from_slice(content);
    let tmp = format!(
        ".{}.oi-tmp-{}-{}",
        name.display(),
        std::process::id(),
        TMP_SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let fd = nix::fcntl::openat(
        dir.as_fd(),
        tmp.as_str(),
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        mode,
    )
    .map_err(errno(&shown))?;
    let result = finish_write(dir.as_fd(), fd, &tmp, &name, &data, &shown);
    if result.is_err() {
        let _ = nix::unistd::unlinkat(
            dir.as_fd(),
            tmp.as_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
    }
    result?;
    Ok(WriteOut {
        path: shown,
        bytes: data.len() as u64,
        created: existing.is_none(),
    })
}

fn finish_write(
    dir: BorrowedFd<'_>,
    fd: OwnedFd,
    tmp: &str,
    name: &Path,
    data: &[u8],
    shown: &str,
) -> Result<(), FsError> {
    let mut f = File::from(fd);
    f.write_all(data).map_err(io(shown))?;
    f.sync_all().map_err(io(shown))?;
    drop(f);
    nix::fcntl::renameat(dir, tmp, dir, name).map_err(errno(shown))?;
    // The rename is durable once the directory is.
    nix::unistd::fsync(dir).map_err(errno(shown))?;
    Ok(())
}

#[derive(Debug, Serialize)]
pub struct Entry {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub size: u64,
    /// Seconds since the Unix epoch.
    pub modified: i64,
}

#[derive(Debug, Serialize)]
pub struct ListOut {
    pub path: String,
    pub entries: Vec<Entry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

fn kind_of(mode: u32) -> &'static str {
    match SFlag::from_bits_truncate(mode) & SFlag::S_IFMT {
        SFlag::S_IFDIR => "dir",
        SFlag::S_IFREG => "file",
        SFlag::S_IFLNK => "symlink",
        _ => "other",
    }
}

/// Reads a directory's names (without `.` and `..`).
fn names(dir: &OwnedFd, shown: &str) -> Result<Vec<(std::ffi::OsString, Option<Type>)>, FsError> {
    let dup = dir.try_clone().map_err(io(shown))?;
    let mut d = Dir::from_fd(dup).map_err(errno(shown))?;
    let mut out = Vec::new();
    for e in d.iter() {
        let e = e.map_err(errno(shown))?;
        let name = e.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        out.push((
            <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(name).to_owned(),
            e.file_type(),
        ));
    }
    Ok(out)
}

/// Lists a directory: directories first, then by name; at most `max`.
pub fn list(roots: &Roots, path: &str, max: usize) -> Result<ListOut, FsError> {
    let loc = roots.locate(path)?;
    let shown = loc.display();
    let dir = loc.open_dir()?;
    let mut entries = Vec::new();
    for (name, _) in names(&dir, &shown)? {
        let Ok(st) = fstatat(dir.as_fd(), name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) else {
            continue; // removed while listing
        };
        entries.push(Entry {
            name: name_text(&name),
            kind: kind_of(st.st_mode),
            size: st.st_size as u64,
            modified: st.st_mtime,
        });
    }
    entries.sort_by(|a, b| (a.kind != "dir", &a.name).cmp(&(b.kind != "dir", &b.name)));
    let total = entries.len();
    entries.truncate(max);
    Ok(ListOut {
        path: shown,
        note: (total > max).then(|| format!("{} of {total} entries shown", max)),
        entries,
    })
}

#[derive(Debug, Serialize)]
pub struct Hit {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SearchOut {
    pub path: String,
    pub results: Vec<Hit>,
    pub truncated: bool,
    pub files_searched: u64,
}

/// What `fs_search` looks for.
pub struct Query<'a> {
    pub name: Option<&'a str>,
    pub content: Option<&'a str>,
    pub case_sensitive: bool,
    pub max_results: usize,
    pub max_file_bytes: u64,
}

/// Walks `path` (without following symlinks) for files whose name matches
/// and, when `content` is set, lists the lines containing it.
pub fn search(roots: &Roots, path: &str, q: &Query<'_>) -> Result<SearchOut, FsError> {
    if q.name.is_none() && q.content.is_none() {
        return Err(FsError::Bad(
            "fs_search needs 'name' (a pattern such as *.md) or 'content' (text to find), or both"
                .into(),
        ));
    }
    let loc = roots.locate(path)?;
    let shown = loc.display();
    let dir = loc.open_dir()?;
    let needle = q.content.map(|c| {
        if q.case_sensitive {
            c.to_string()
        } else {
            c.to_lowercase()
        }
    });
    let mut out = SearchOut {
        path: shown.clone(),
        results: Vec::new(),
        truncated: false,
        files_searched: 0,
    };
    let mut stack: Vec<(OwnedFd, String)> = vec![(dir, String::new())];
    let mut visited = 0u64;
    while let Some((dir, prefix)) = stack.pop() {
        let mut entries = names(&dir, &shown)?;
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, ty) in entries {
            visited += 1;
            if out.results.len() >= q.max_results || visited > 200_000 {
                out.truncated = true;
                return Ok(out);
            }
            let text = name_text(&name);
            let rel = if prefix.is_empty() {
                text.clone()
            } else {
                format!("{prefix}/{text}")
            };
            let ty = match ty {
                Some(t) => t,
                None => {
                    match fstatat(dir.as_fd(), name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
                        Ok(st) => match kind_of(st.st_mode) {
                            "dir" => Type::Directory,
                            "file" => Type::File,
                            _ => Type::Symlink,
                        },
                        Err(_) => continue,
                    }
                }
            };
            match ty {
                Type::Directory => {
                    let flags =
                        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
                    if let Ok(sub) =
                        open_beneath(dir.as_fd(), Path::new(&name), flags, Mode::empty())
                    {
                        stack.push((sub, rel));
                    }
                }
                Type::File => {
                    if q.name.is_some_and(|p| !oi_kernel::glob::matches(p, &text)) {
                        continue;
                    }
                    let Some(needle) = &needle else {
                        out.results.push(Hit {
                            path: rel,
                            line: None,
                            text: None,
                        });
                        continue;
                    };
                    out.files_searched += 1;
                    search_file(&dir, &name, &rel, needle, q, &mut out.results);
                }
                // Symlinks are not followed: what they point at is searched
                // where it really is, if it is inside the roots.
                _ => {}
            }
        }
    }
    Ok(out)
}

fn search_file(
    dir: &OwnedFd,
    name: &std::ffi::OsStr,
    rel: &str,
    needle: &str,
    q: &Query<'_>,
    hits: &mut Vec<Hit>,
) {
    // Without blocking: a FIFO must not hang the search; only regular
    // files are read.
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let Ok(fd) = open_beneath(dir.as_fd(), Path::new(name), flags, Mode::empty()) else {
        return;
    };
    let mut f = File::from(fd);
    if f.metadata()
        .map(|m| !m.is_file() || m.len() > q.max_file_bytes)
        .unwrap_or(true)
    {
        return;
    }
    let mut buf = Vec::new();
    if f.read_to_end(&mut buf).is_err() || binary_kind(&buf).is_some() {
        return;
    }
    let text = String::from_utf8_lossy(&buf);
    for (i, line) in text.lines().enumerate() {
        if hits.len() >= q.max_results {
            return;
        }
        let found = if q.case_sensitive {
            line.contains(needle)
        } else {
            line.to_lowercase().contains(needle)
        };
        if found {
            let trimmed = line.trim();
            let cut = cut_at_boundary(trimmed.as_bytes(), 300);
            hits.push(Hit {
                path: rel.to_string(),
                line: Some(i as u64 + 1),
                text: Some(trimmed[..cut].to_string()),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_refused_not_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        nix::unistd::mkfifo(
            &dir.path().join("pipe"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        std::fs::write(dir.path().join("note.txt"), "a pipe is here\n").unwrap();
        let roots = Roots::open(&[dir.path()]).unwrap();
        // Each of these blocked forever on a FIFO; a thread keeps the test
        // from hanging should one block again.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let read_err = read(&roots, "pipe", 0, 100).unwrap_err().to_string();
            let append_err = write(&roots, "pipe", b"x", true, false)
                .unwrap_err()
                .to_string();
            let q = Query {
                name: None,
                content: Some("pipe"),
                case_sensitive: false,
                max_results: 10,
                max_file_bytes: 1 << 20,
            };
            let found = search(&roots, ".", &q).unwrap().results.len();
            let _ = tx.send((read_err, append_err, found));
        });
        let (read_err, append_err, found) = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("a FIFO blocked the fs adapter");
        assert!(
            read_err.contains("is a FIFO, not a regular file"),
            "{read_err}"
        );
        assert!(
            append_err.contains("is a FIFO, not a regular file"),
            "{append_err}"
        );
        assert_eq!(found, 1, "the regular file is still searched");
    }

    #[test]
    fn readers_never_see_a_half_written_file() {
        let dir = tempfile::tempdir().unwrap();
        let roots = std::sync::Arc::new(Roots::open(&[dir.path()]).unwrap());
        let a = vec![b'a'; 256 * 1024];
        let b = vec![b'b'; 200 * 1024];
        write(&roots, "f.txt", &a, false, true).unwrap();
        let path = dir.path().join("f.txt");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut reads = 0;
                while !stop.load(Ordering::Relaxed) {
                    let got = std::fs::read(&path).unwrap();
                    let whole_a = got.len() == 256 * 1024 && got.iter().all(|c| *c == b'a');
                    let whole_b = got.len() == 200 * 1024 && got.iter().all(|c| *c == b'b');
                    assert!(whole_a || whole_b, "a torn file of {} bytes", got.len());
                    reads += 1;
                }
                reads
            })
        };
        for i in 0..200u32 {
            write(
                &roots,
                "f.txt",
                if i.is_multiple_of(2) { &b } else { &a },
                false,
                true,
            )
            .unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
        // No temporary files are left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["f.txt"]);
    }

    #[test]
    fn append_keeps_the_old_content_and_the_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let roots = Roots::open(&[dir.path()]).unwrap();
        write(&roots, "log.txt", b"one\n", false, true).unwrap();
        std::fs::set_permissions(
            dir.path().join("log.txt"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let w = write(&roots, "log.txt", b"two\n", true, true).unwrap();
        assert_eq!((w.bytes, w.created), (8, false));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("log.txt")).unwrap(),
            "one\ntwo\n"
        );
        let mode = std::fs::metadata(dir.path().join("log.txt"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
