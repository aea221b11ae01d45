//! The socket file: its lock, and the removal of one a crash left behind.

use super::*;

/// Takes the exclusive lock on the file beside the socket, or says that
/// another broker holds it.
pub(super) fn lock_socket(socket: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, BrokerError> {
    let mut name = socket.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(|source| BrokerError::Lock {
            path: lock_path.clone(),
            source,
        })?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
        match e {
            nix::errno::Errno::EWOULDBLOCK => BrokerError::AlreadyRunning(socket.to_path_buf()),
            e => BrokerError::Lock {
                path: lock_path.clone(),
                source: io::Error::from(e),
            },
        }
    })
}

pub(super) async fn remove_stale_socket(path: &Path) -> Result<(), BrokerError> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(BrokerError::RemoveStale {
                path: path.to_path_buf(),
                source,
            });
        }
        Ok(_) => {}
    }
    if UnixStream::connect(path).await.is_ok() {
        return Err(BrokerError::AlreadyRunning(path.to_path_buf()));
    }
    info!(socket = %path.display(), "removing stale bus socket left by an earlier run");
    std::fs::remove_file(path).map_err(|source| BrokerError::RemoveStale {
        path: path.to_path_buf(),
        source,
    })
}
