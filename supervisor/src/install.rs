//! Installing openintentd as a systemd or launchd service.
//!
//! The unit files in `systemd/` and `launchd/` are the templates; rendering
//! fills in the real binary path and data directory, after checking that
//! neither can inject anything into the file.

use std::path::{Path, PathBuf};

pub const SYSTEMD_SYSTEM: &str = include_str!("../../systemd/openintentd.service");
pub const SYSTEMD_USER: &str = include_str!("../../systemd/openintentd-user.service");
pub const LAUNCHD: &str = include_str!("../../launchd/org.openintentos.openintentd.plist");
pub const LAUNCHD_LABEL: &str = "org.openintentos.openintentd";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Platform {
    Systemd,
    Launchd,
}

impl Platform {
    pub fn native() -> Platform {
        if cfg!(target_os = "macos") {
            Platform::Launchd
        } else {
            Platform::Systemd
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InstallError {
    #[error(
        "{what} {value:?} contains {ch:?}, which cannot be written safely into a {format}; install under a path made of letters, digits and / . _ + @ -"
    )]
    Unsafe {
        what: &'static str,
        value: String,
        ch: char,
        format: &'static str,
    },
    #[error("{what} must be an absolute path, not {value:?}")]
    Relative { what: &'static str, value: String },
    #[error("cannot find your home directory (HOME is not set)")]
    NoHome,
    #[error(
        "'{0}' is not a user name useradd takes (a lowercase letter or _ first, then a-z, 0-9, _ or -; at most 32)"
    )]
    UserName(String),
}

/// What `oictl service install` will do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub platform: Platform,
    pub user: bool,
    /// Where the unit file goes.
    pub file: PathBuf,
    pub contents: String,
    /// Commands that enable and start it, in order.
    pub enable: Vec<Vec<String>>,
    /// Commands that stop and disable it, in order (before the file is removed).
    pub disable: Vec<Vec<String>>,
    /// Commands run before the unit is written: the system unit's user and
    /// its data directory.
    pub prepare: Vec<Vec<String>>,
    /// What the person installing should know (printed, not refused).
    pub warnings: Vec<String>,
}

/// The system unit's user when `--user-name` is not given.
pub const SERVICE_USER: &str = "openintent";

/// The user a system unit runs as, and whether it exists already.
#[derive(Debug, Clone)]
pub struct ServiceUser {
    pub name: String,
    pub exists: bool,
}

/// A name `useradd` takes: a lowercase letter or `_` first, then
/// lowercase letters, digits, `_` and `-`; at most 32.
fn valid_user_name(name: &str) -> bool {
    let mut b = name.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_lowercase() || c == b'_')
        && name.len() <= 32
        && b.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
}

fn check_path(
    what: &'static str,
    p: &Path,
    format: &'static str,
    allowed: fn(char) -> bool,
) -> Result<String, InstallError> {
    let s = p.to_string_lossy().into_owned();
    if !p.is_absolute() {
        return Err(InstallError::Relative { what, value: s });
    }
    if let Some(ch) = s.chars().find(|c| !allowed(*c)) {
        return Err(InstallError::Unsafe {
            what,
            value: s,
            ch,
            format,
        });
    }
    Ok(s)
}

/// systemd unit values: no whitespace, quotes, `%` specifiers, `$`
/// expansions, backslashes or control characters.
fn systemd_safe(c: char) -> bool {
    c.is_ascii_alphanumeric() || "/._+@-".contains(c)
}

/// plist strings are XML-escaped; only control characters are refused.
fn plist_safe(c: char) -> bool {
    !c.is_control()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn cmd(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// Renders the unit for `platform`. `home` is the `--home` directory to
/// run with; a system install defaults to `/var/lib/openintent`.
pub fn plan(
    platform: Platform,
    user: bool,
    exe: &Path,
    home: Option<&Path>,
    user_home: Option<&Path>,
    uid: u32,
    service_user: &ServiceUser,
) -> Result<Plan, InstallError> {
    match platform {
        Platform::Systemd => {
            let exe_s = check_path(
                "the openintentd binary path",
                exe,
                "systemd unit",
                systemd_safe,
            )?;
            let mut prepare = Vec::new();
            let mut warnings = Vec::new();
            let (file, contents, scope) = if user {
                let config = std::env::var_os("XDG_CONFIG_HOME")
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
                    .or_else(|| user_home.map(|h| h.join(".config")))
                    .ok_or(InstallError::NoHome)?;
                let exec = match home {
                    Some(h) => format!(
                        "{exe_s} --home {}",
                        check_path("the home directory", h, "systemd unit", systemd_safe)?
                    ),
                    None => exe_s,
                };
                (
                    config.join("systemd/user/openintentd.service"),
                    SYSTEMD_USER.replace("@EXEC@", &exec),
                    vec!["--user"],
                )
            } else {
                let h = home.unwrap_or(Path::new("/var/lib/openintent"));
                let h = check_path("the home directory", h, "systemd unit", systemd_safe)?;
                let name = service_user.name.as_str();
                if !valid_user_name(name) {
                    return Err(InstallError::UserName(name.to_string()));
                }
                if !service_user.exists {
                    prepare.push(cmd(&[
                        "useradd",
                        "--system",
                        "--user-group",
                        "--no-create-home",
                        "--home-dir",
                        &h,
                        "--shell",
                        "/usr/sbin/nologin",
                        name,
                    ]));
                }
                prepare.push(cmd(&[
                    "install", "-d", "-m", "0700", "-o", name, "-g", name, &h,
                ]));
                if Path::new(&h).starts_with("/tmp") || Path::new(&h).starts_with("/var/tmp") {
                    warnings.push(format!(
                        "the data directory {h} is under a temporary directory: with the unit's PrivateTmp=yes the service sees its own, empty {} and its data goes when it stops; choose a directory such as /var/lib/openintent",
                        if h.starts_with("/tmp") { "/tmp" } else { "/var/tmp" }
                    ));
                }
                (
                    PathBuf::from("/etc/systemd/system/openintentd.service"),
                    SYSTEMD_SYSTEM
                        .replace("@EXEC@", &format!("{exe_s} --home {h}"))
                        .replace("@HOME@", &h)
                        .replace("@USER@", name),
                    vec![],
                )
            };
            let sc = |rest: &[&str]| {
                let mut v = vec!["systemctl"];
                v.extend(&scope);
                v.extend(rest);
                cmd(&v)
            };
            Ok(Plan {
                platform,
                user,
                file,
                contents,
                enable: vec![
                    sc(&["daemon-reload"]),
                    sc(&["enable", "--now", "openintentd.service"]),
                ],
                disable: vec![sc(&["disable", "--now", "openintentd.service"])],
                prepare,
                warnings,
            })
        }
        Platform::Launchd => {
            let exe_s = check_path(
                "the openintentd binary path",
                exe,
                "launchd property list",
                plist_safe,
            )?;
            let uh = user_home.ok_or(InstallError::NoHome);
            let h = match home {
                Some(h) => h.to_path_buf(),
                None if user => uh
                    .as_ref()
                    .map_err(|_| InstallError::NoHome)?
                    .join(".openintent"),
                None => PathBuf::from("/usr/local/var/openintent"),
            };
            let h = check_path(
                "the home directory",
                &h,
                "launchd property list",
                plist_safe,
            )?;
            let file = if user {
                uh?.join(format!("Library/LaunchAgents/{LAUNCHD_LABEL}.plist"))
            } else {
                PathBuf::from(format!("/Library/LaunchDaemons/{LAUNCHD_LABEL}.plist"))
            };
            let domain = if user {
                format!("gui/{uid}")
            } else {
                "system".to_string()
            };
            let file_s = file.to_string_lossy().into_owned();
            Ok(Plan {
                platform,
                user,
                contents: LAUNCHD
                    .replace("@EXE@", &xml_escape(&exe_s))
                    .replace("@HOME@", &xml_escape(&h)),
                enable: vec![cmd(&["launchctl", "bootstrap", &domain, &file_s])],
                disable: vec![cmd(&[
                    "launchctl",
                    "bootout",
                    &format!("{domain}/{LAUNCHD_LABEL}"),
                ])],
                prepare: Vec::new(),
                warnings: Vec::new(),
                file,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default user, already there.
    fn su() -> ServiceUser {
        ServiceUser {
            name: SERVICE_USER.into(),
            exists: true,
        }
    }

    #[test]
    fn the_system_unit_runs_as_its_own_user_created_when_missing() {
        let exe = Path::new("/usr/local/bin/openintentd");
        let p = plan(Platform::Systemd, false, exe, None, None, 0, &su()).unwrap();
        assert!(
            p.contents.lines().any(|l| l == "User=openintent"),
            "{}",
            p.contents
        );
        assert!(p.contents.lines().any(|l| l == "Group=openintent"));
        assert_eq!(
            p.prepare,
            [cmd(&[
                "install",
                "-d",
                "-m",
                "0700",
                "-o",
                "openintent",
                "-g",
                "openintent",
                "/var/lib/openintent"
            ])]
        );
        let missing = ServiceUser {
            name: "oi-bot".into(),
            exists: false,
        };
        let p = plan(Platform::Systemd, false, exe, None, None, 0, &missing).unwrap();
        assert_eq!(
            p.prepare[0],
            cmd(&[
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/var/lib/openintent",
                "--shell",
                "/usr/sbin/nologin",
                "oi-bot"
            ])
        );
        assert!(p.contents.lines().any(|l| l == "User=oi-bot"));
        assert!(p.warnings.is_empty());
        let bad = ServiceUser {
            name: "Root;x".into(),
            exists: true,
        };
        let e = plan(Platform::Systemd, false, exe, None, None, 0, &bad).unwrap_err();
        assert!(
            e.to_string().contains("is not a user name useradd takes"),
            "{e}"
        );
        // A data directory under /tmp is lost behind PrivateTmp=yes: said.
        let p = plan(
            Platform::Systemd,
            false,
            exe,
            Some(Path::new("/tmp/oi")),
            None,
            0,
            &su(),
        )
        .unwrap();
        assert!(p.warnings[0].contains("PrivateTmp=yes"), "{:?}", p.warnings);
        // A user unit runs as the user: no User= line, nothing to prepare.
        let p = plan(
            Platform::Systemd,
            true,
            exe,
            None,
            Some(Path::new("/home/ann")),
            1000,
            &su(),
        )
        .unwrap();
        assert!(!p.contents.contains("User="));
        assert!(p.prepare.is_empty());
    }

    #[test]
    fn system_unit_has_the_real_paths_and_the_required_settings() {
        let p = plan(
            Platform::Systemd,
            false,
            Path::new("/usr/local/bin/openintentd"),
            None,
            None,
            0,
            &su(),
        )
        .unwrap();
        assert_eq!(p.file, Path::new("/etc/systemd/system/openintentd.service"));
        assert!(
            p.contents
                .contains("\nExecStart=/usr/local/bin/openintentd --home /var/lib/openintent\n")
        );
        assert!(
            p.contents
                .contains("\nReadWritePaths=/var/lib/openintent\n")
        );
        for line in [
            "Type=notify",
            "NotifyAccess=main",
            "WatchdogSec=30",
            "Restart=on-failure",
            "RestartPreventExitStatus=78",
            "StartLimitBurst=5",
            "StartLimitIntervalSec=600",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "PrivateTmp=yes",
        ] {
            assert!(p.contents.lines().any(|l| l == line), "missing {line}");
        }
        assert!(
            !p.contents.contains('@'),
            "placeholder left:\n{}",
            p.contents
        );
        assert_eq!(
            p.enable[1],
            ["systemctl", "enable", "--now", "openintentd.service"]
        );
    }

    #[test]
    fn user_unit_uses_the_user_manager() {
        let p = plan(
            Platform::Systemd,
            true,
            Path::new("/home/ann/.cargo/bin/openintentd"),
            Some(Path::new("/home/ann/oi")),
            Some(Path::new("/home/ann")),
            1000,
            &su(),
        )
        .unwrap();
        assert!(p.file.ends_with("systemd/user/openintentd.service"));
        assert!(
            p.contents
                .contains("\nExecStart=/home/ann/.cargo/bin/openintentd --home /home/ann/oi\n")
        );
        assert!(p.contents.contains("WantedBy=default.target"));
        assert_eq!(p.enable[0], ["systemctl", "--user", "daemon-reload"]);
    }

    #[test]
    fn injection_attempts_are_refused() {
        for bad in [
            "/opt/oi\nExecStartPre=/bin/rm -rf /",
            "/opt/o i",
            "/opt/%h",
            "/opt/$HOME",
            "/opt/\"x",
            "/opt/a\\b",
            "/opt/a;b",
        ] {
            let err = plan(
                Platform::Systemd,
                false,
                Path::new(bad),
                None,
                None,
                0,
                &su(),
            )
            .unwrap_err();
            assert!(
                matches!(err, InstallError::Unsafe { .. }),
                "{bad:?} accepted"
            );
            let err = plan(
                Platform::Systemd,
                false,
                Path::new("/usr/bin/openintentd"),
                Some(Path::new(bad)),
                None,
                0,
                &su(),
            )
            .unwrap_err();
            assert!(
                matches!(err, InstallError::Unsafe { .. }),
                "home {bad:?} accepted"
            );
        }
        let err = plan(
            Platform::Launchd,
            true,
            Path::new("/opt/oi\n</string>"),
            None,
            Some(Path::new("/Users/ann")),
            501,
            &su(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("cannot be written safely"),
            "{err}"
        );
        assert!(matches!(
            plan(
                Platform::Systemd,
                false,
                Path::new("bin/openintentd"),
                None,
                None,
                0,
                &su()
            ),
            Err(InstallError::Relative { .. })
        ));
    }

    #[test]
    fn plist_escapes_xml_and_names_the_domain() {
        let p = plan(
            Platform::Launchd,
            true,
            Path::new("/Applications/Open Intent & Co/openintentd"),
            None,
            Some(Path::new("/Users/ann")),
            501,
            &su(),
        )
        .unwrap();
        assert!(
            p.contents
                .contains("<string>/Applications/Open Intent &amp; Co/openintentd</string>")
        );
        assert!(
            p.contents
                .contains("<string>/Users/ann/.openintent</string>")
        );
        assert_eq!(p.enable[0][2], "gui/501");
        assert!(!p.contents.contains("@EXE@") && !p.contents.contains("@HOME@"));
    }
}
