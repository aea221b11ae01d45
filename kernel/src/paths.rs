//! Where OpenIntentOS keeps its files.
//!
//! By default the XDG base directories: config in
//! `$XDG_CONFIG_HOME/openintent/config.toml`, data in
//! `$XDG_DATA_HOME/openintent/`, runtime (sockets) in
//! `$XDG_RUNTIME_DIR/openintent/` (or `/tmp/openintent-<uid>/`). With
//! `OPENINTENT_HOME=<dir>` or `--home <dir>` all three live under one
//! directory: `<dir>/config.toml`, `<dir>/data/`, `<dir>/run/`.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const ENV_HOME: &str = "OPENINTENT_HOME";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub config_file: PathBuf,
    pub data_dir: PathBuf,
    pub runtime_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum PathsError {
    #[error("cannot create directory {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error(
        "runtime directory {path} belongs to uid {owner}, not to you (uid {uid}); remove it or choose another with --home"
    )]
    WrongOwner { path: PathBuf, owner: u32, uid: u32 },
    #[error("cannot secure runtime directory {path} (chmod 0700): {source}")]
    Chmod { path: PathBuf, source: io::Error },
    #[error("neither --home, OPENINTENT_HOME nor HOME is set; pass --home <dir>")]
    NoHome,
}

impl Paths {
    /// All three directories under one root.
    pub fn under(home: &Path) -> Paths {
        Paths {
            config_file: home.join("config.toml"),
            data_dir: home.join("data"),
            runtime_dir: home.join("run"),
        }
    }

    /// `--home` if given, else `OPENINTENT_HOME`, else XDG.
    pub fn resolve(home: Option<&Path>) -> Result<Paths, PathsError> {
        if let Some(home) = home {
            return Ok(Paths::under(&absolute(home)));
        }
        if let Some(home) = std::env::var_os(ENV_HOME).filter(|v| !v.is_empty()) {
            return Ok(Paths::under(&absolute(Path::new(&home))));
        }
        let user_home = std::env::var_os("HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let xdg = |var: &str, fallback: &str| -> Result<PathBuf, PathsError> {
            match std::env::var_os(var).filter(|v| !v.is_empty()) {
                Some(dir) => Ok(PathBuf::from(dir)),
                None => user_home
                    .as_ref()
                    .map(|h| h.join(fallback))
                    .ok_or(PathsError::NoHome),
            }
        };
        let runtime_dir = match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
            Some(dir) => PathBuf::from(dir).join("openintent"),
            None => std::env::temp_dir().join(format!("openintent-{}", nix::unistd::geteuid())),
        };
        Ok(Paths {
            config_file: xdg("XDG_CONFIG_HOME", ".config")?
                .join("openintent")
                .join("config.toml"),
            data_dir: xdg("XDG_DATA_HOME", ".local/share")?.join("openintent"),
            runtime_dir,
        })
    }

    pub fn bus_socket(&self) -> PathBuf {
        self.runtime_dir.join("bus.sock")
    }

    /// The configuration the supervisor runs, as services read it: the
    /// user's file merged over the defaults and validated. Services never
    /// parse the user's file, so a broken edit cannot reach a restarting
    /// service.
    pub fn effective_config(&self) -> PathBuf {
        self.runtime_dir.join("config.effective.toml")
    }

    pub fn pid_file(&self) -> PathBuf {
        self.runtime_dir.join("openintentd.pid")
    }

    /// Creates the data directory and the private runtime directory (0700,
    /// owned by us; a directory owned by someone else is refused).
    pub fn prepare(&self) -> Result<(), PathsError> {
        create_private_dir(&self.data_dir)?;
        create_private_dir(&self.runtime_dir)?;
        Ok(())
    }
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

/// Creates `dir` (and parents) with mode 0700 and checks it is ours and
/// private, tightening the mode when we own it.
pub fn create_private_dir(dir: &Path) -> Result<(), PathsError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| PathsError::Create {
            path: dir.to_path_buf(),
            source,
        })?;
    let meta = fs::metadata(dir).map_err(|source| PathsError::Create {
        path: dir.to_path_buf(),
        source,
    })?;
    let uid = nix::unistd::geteuid().as_raw();
    if meta.uid() != uid {
        return Err(PathsError::WrongOwner {
            path: dir.to_path_buf(),
            owner: meta.uid(),
            uid,
        });
    }
    if meta.mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|source| {
            PathsError::Chmod {
                path: dir.to_path_buf(),
                source,
            }
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_puts_everything_under_one_directory() {
        let p = Paths::resolve(Some(Path::new("/srv/oi"))).unwrap();
        assert_eq!(p.config_file, Path::new("/srv/oi/config.toml"));
        assert_eq!(p.data_dir, Path::new("/srv/oi/data"));
        assert_eq!(p.runtime_dir, Path::new("/srv/oi/run"));
        assert_eq!(p.bus_socket(), Path::new("/srv/oi/run/bus.sock"));
    }

    #[test]
    fn prepare_makes_private_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("run");
        fs::DirBuilder::new().mode(0o755).create(&run).unwrap();
        let p = Paths::under(tmp.path());
        p.prepare().unwrap();
        for d in [&p.runtime_dir, &p.data_dir] {
            assert_eq!(
                fs::metadata(d).unwrap().mode() & 0o777,
                0o700,
                "{}",
                d.display()
            );
        }
    }
}
