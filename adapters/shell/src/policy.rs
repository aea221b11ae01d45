//! Which programs may run.
//!
//! A program is judged by its name, and the name must mean what it says:
//! a bare name is looked up on the configured PATH; a name with a slash
//! (`/usr/bin/rm`, `./ls`) must be the very file PATH finds for its last
//! component (so a symlink called `ls` that points at `rm` is refused).
//! `deny` always wins. Launchers (`env`, `nice`, `timeout`, `xargs`,
//! `find -exec`, `sh -c`, ...) are judged together with the program they
//! start; privilege changers are always refused; assignments that change
//! how programs are found or loaded (`PATH=`, `LD_PRELOAD=`) are refused.

use std::path::{Path, PathBuf};

use crate::parse::{self, SimpleCommand, is_assignment};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Allowlist,
    Denylist,
    Approval,
}

impl Mode {
    pub fn parse(s: &str) -> Mode {
        match s {
            "denylist" => Mode::Denylist,
            "approval" => Mode::Approval,
            _ => Mode::Allowlist,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub mode: Mode,
    pub allow: Vec<String>,
    pub deny: Vec<String>,
    pub allow_shell_syntax: bool,
    pub path: Vec<PathBuf>,
}

/// Why a command may not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("'{0}' is on the deny list")]
    Denied(String),
    #[error("'{0}' is not on the allow list ([shell] allow)")]
    NotAllowed(String),
    #[error(
        "'{0}' needs the user's approval ([shell] policy = \"approval\"); the user can run it with oictl tool shell_execute and \"approve\": true"
    )]
    NeedsApproval(String),
    #[error("'{0}' changes privileges and is never run")]
    Privileged(String),
    #[error("'{0}' is not a program on PATH ({1})")]
    NotFound(String, String),
    #[error("'{given}' is not the '{name}' found on PATH ({found}); refused")]
    Impostor {
        given: String,
        name: String,
        found: String,
    },
    #[error("shell syntax is not allowed ([shell] allow_shell_syntax = false): {0}")]
    ShellSyntax(String),
    #[error("{0}")]
    Syntax(String),
    #[error("setting {0} is refused: it changes which programs run")]
    Assignment(String),
    #[error("the program name comes from {0}; write it out")]
    Dynamic(&'static str),
    #[error("'{0}' would run a command the policy cannot see ({1})")]
    Opaque(String, &'static str),
}

const PRIVILEGED: &[&str] = &[
    "sudo", "su", "doas", "pkexec", "runuser", "setpriv", "chroot", "nsenter", "unshare", "capsh",
];
const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "fish", "ash", "busybox", "csh", "tcsh",
];
/// Builtins `sh` runs itself that start no program.
const HARMLESS_BUILTINS: &[&str] = &[
    "cd", ":", "test", "[", "true", "false", "exit", "wait", "read", "shift", "return", "pwd",
    "echo", "printf",
];
/// Builtins that can run or redefine anything.
const DANGEROUS_BUILTINS: &[&str] = &[
    "eval", "exec", "source", ".", "command", "builtin", "trap", "alias", "export", "set", "unset",
    "enable", "hash", "readonly", "local", "declare", "typeset",
];
const DANGEROUS_VARS: &[&str] = &[
    "PATH",
    "IFS",
    "ENV",
    "BASH_ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "PROMPT_COMMAND",
    "GCONV_PATH",
];

/// What the policy decided, and the programs it judged (for the result).
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    pub programs: Vec<String>,
    /// Programs that ran only because the user approved them.
    pub approved: Vec<String>,
}

impl Policy {
    /// Judges a command line. Returns how to run it: as an argv, or (with
    /// shell syntax allowed and used) through `sh -c`.
    pub fn judge(&self, line: &str, approve: bool) -> Result<(Plan, Verdict), Refusal> {
        let mut v = Verdict::default();
        match parse::argv(line) {
            Ok(words) => {
                // `NAME=value cmd`, as sh would: variables for that command.
                let n = words.iter().take_while(|w| is_assignment(w)).count();
                let mut env = Vec::new();
                for a in &words[..n] {
                    check_assignment(a)?;
                    if let Some((k, val)) = a.split_once('=') {
                        env.push((k.to_string(), val.to_string()));
                    }
                }
                let argv = words[n..].to_vec();
                if argv.is_empty() {
                    return Err(Refusal::Syntax(
                        "only variable assignments, no command".into(),
                    ));
                }
                self.check_argv(&argv, approve, &mut v, 0)?;
                Ok((Plan::Argv { argv, env }, v))
            }
            Err(e @ parse::ParseError::Syntax { .. }) => {
                if !self.allow_shell_syntax {
                    return Err(Refusal::ShellSyntax(e.to_string()));
                }
                self.check_line(line, approve, &mut v, 0)?;
                Ok((Plan::Shell(line.to_string()), v))
            }
            Err(e) => Err(Refusal::Syntax(e.to_string())),
        }
    }

    fn check_line(
        &self,
        line: &str,
        approve: bool,
        v: &mut Verdict,
        depth: usize,
    ) -> Result<(), Refusal> {
        let cmds = parse::commands(line).map_err(|e| Refusal::Syntax(e.to_string()))?;
        for c in cmds {
            self.check_simple(&c, approve, v, depth)?;
        }
        Ok(())
    }

    fn check_simple(
        &self,
        c: &SimpleCommand,
        approve: bool,
        v: &mut Verdict,
        depth: usize,
    ) -> Result<(), Refusal> {
        for a in &c.assignments {
            check_assignment(a)?;
        }
        if c.words.is_empty() {
            return Ok(());
        }
        if let Some(what) = c.dynamic_program {
            return Err(Refusal::Dynamic(what));
        }
        let name = c.words[0].as_str();
        if DANGEROUS_BUILTINS.contains(&name) {
            return Err(Refusal::Opaque(
                name.into(),
                "a shell builtin that runs or redefines commands",
            ));
        }
        if HARMLESS_BUILTINS.contains(&name) {
            if self.deny.iter().any(|d| d == name) {
                return Err(Refusal::Denied(name.into()));
            }
            return Ok(());
        }
        self.check_argv(&c.words, approve, v, depth)
    }

    /// Judges one program and whatever it launches.
    fn check_argv(
        &self,
        argv: &[String],
        approve: bool,
        v: &mut Verdict,
        depth: usize,
    ) -> Result<(), Refusal> {
        if depth > 8 {
            return Err(Refusal::Syntax("launchers nested too deep".into()));
        }
        let Some(given) = argv.first() else {
            return Ok(());
        };
        let name = self.program_name(given)?;
        let allowed = self.allow.contains(&name);
        match self.mode {
            Mode::Allowlist if !allowed => return Err(Refusal::NotAllowed(name)),
            Mode::Approval if !allowed => {
                if !approve {
                    return Err(Refusal::NeedsApproval(name));
                }
                v.approved.push(name.clone());
            }
            _ => {}
        }
        v.programs.push(name.clone());
        let args = &argv[1..];
        if SHELLS.contains(&name.as_str()) {
            return self.check_shell_args(&name, args, approve, v, depth);
        }
        for inner in launched(&name, args)? {
            self.check_argv(&inner, approve, v, depth + 1)?;
        }
        Ok(())
    }

    /// `sh -c '<line>'` is judged like the line itself; a shell reading a
    /// script or its input cannot be judged.
    fn check_shell_args(
        &self,
        name: &str,
        args: &[String],
        approve: bool,
        v: &mut Verdict,
        depth: usize,
    ) -> Result<(), Refusal> {
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if a == "-c" || (a.starts_with('-') && !a.starts_with("--") && a.contains('c')) {
                let Some(line) = it.next() else {
                    return Err(Refusal::Syntax(format!("{name} -c without a command")));
                };
                if !self.allow_shell_syntax {
                    return Err(Refusal::ShellSyntax(format!("{name} -c runs a shell line")));
                }
                return self.check_line(line, approve, v, depth + 1);
            }
            if !a.starts_with('-') {
                break;
            }
        }
        Err(Refusal::Opaque(
            name.into(),
            "a shell reading a script or its input",
        ))
    }

    /// The name a program is judged by; a path must be the file PATH finds
    /// for that name.
    pub fn program_name(&self, given: &str) -> Result<String, Refusal> {
        let name = Path::new(given)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.is_empty() {
            return Err(Refusal::NotFound(given.into(), self.path_text()));
        }
        // Refusals by name come first: they hold whether or not the
        // program is installed.
        if PRIVILEGED.contains(&name.as_str()) {
            return Err(Refusal::Privileged(name));
        }
        if self.deny.contains(&name) {
            return Err(Refusal::Denied(name));
        }
        let Some(found) = self.lookup(&name) else {
            return Err(Refusal::NotFound(given.into(), self.path_text()));
        };
        if given.contains('/') {
            let same = std::fs::canonicalize(given)
                .ok()
                .zip(std::fs::canonicalize(&found).ok())
                .is_some_and(|(a, b)| a == b);
            if !same {
                return Err(Refusal::Impostor {
                    given: given.into(),
                    name,
                    found: found.display().to_string(),
                });
            }
        }
        Ok(name)
    }

    /// The executable called `name` on PATH.
    pub fn lookup(&self, name: &str) -> Option<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        self.path.iter().map(|d| d.join(name)).find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    }

    fn path_text(&self) -> String {
        self.path
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    }
}

/// How an approved command runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Run directly; `env` are the line's leading `NAME=value` words.
    Argv {
        argv: Vec<String>,
        env: Vec<(String, String)>,
    },
    Shell(String),
}

fn check_assignment(a: &str) -> Result<(), Refusal> {
    let name = a.split_once('=').map_or(a, |(n, _)| n);
    if DANGEROUS_VARS.contains(&name) || name.starts_with("LD_") || name.starts_with("DYLD_") {
        return Err(Refusal::Assignment(name.into()));
    }
    Ok(())
}

/// Options of launchers that take a value (so the value is not mistaken
/// for the program).
fn options_with_value(launcher: &str) -> &'static [&'static str] {
    match launcher {
        "env" => &["-u", "--unset", "-C", "--chdir"],
        "nice" => &["-n", "--adjustment"],
        "timeout" => &["-s", "--signal", "-k", "--kill-after"],
        "stdbuf" => &["-i", "-o", "-e", "--input", "--output", "--error"],
        "ionice" => &["-c", "-n", "-p", "-P", "-u", "--class", "--classdata"],
        "xargs" => &[
            "-I",
            "-i",
            "-n",
            "-P",
            "-d",
            "-E",
            "-e",
            "-L",
            "-l",
            "-s",
            "-a",
            "--max-args",
            "--max-procs",
            "--delimiter",
            "--arg-file",
            "--max-lines",
            "--max-chars",
            "--replace",
            "--eof",
        ],
        "flock" => &["-w", "--timeout", "-E", "--conflict-exit-code"],
        "watch" => &["-n", "--interval", "-d"],
        _ => &[],
    }
}

/// Positional arguments a launcher takes before the program.
fn leading_positionals(launcher: &str) -> usize {
    match launcher {
        "timeout" | "taskset" | "chrt" | "flock" => 1,
        _ => 0,
    }
}

const LAUNCHERS: &[&str] = &[
    "env", "nice", "nohup", "timeout", "stdbuf", "setsid", "ionice", "time", "xargs", "taskset",
    "chrt", "flock", "watch", "strace", "ltrace", "unbuffer", "parallel", "script",
];

/// The commands a launcher would start, as argvs.
fn launched(name: &str, args: &[String]) -> Result<Vec<Vec<String>>, Refusal> {
    if name == "find" {
        let mut out = Vec::new();
        let mut i = 0;
        while i < args.len() {
            if matches!(args[i].as_str(), "-exec" | "-execdir" | "-ok" | "-okdir") {
                let end = args[i + 1..]
                    .iter()
                    .position(|a| a == ";" || a == "+")
                    .map_or(args.len(), |p| i + 1 + p);
                out.push(args[i + 1..end].to_vec());
                i = end;
            } else if matches!(
                args[i].as_str(),
                "-fprint" | "-fprintf" | "-fls" | "-delete"
            ) {
                return Err(Refusal::Opaque(
                    "find".into(),
                    "it writes or deletes files itself; use fs tools",
                ));
            }
            i += 1;
        }
        return Ok(out);
    }
    if !LAUNCHERS.contains(&name) {
        return Ok(Vec::new());
    }
    if matches!(name, "script" | "parallel" | "watch") {
        return Err(Refusal::Opaque(
            name.into(),
            "it runs commands given as text",
        ));
    }
    let with_value = options_with_value(name);
    let mut positionals = leading_positionals(name);
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        if a == "--" {
            i += 1;
            break;
        }
        if name == "env"
            && (a == "-S"
                || a.starts_with("--split-string")
                || (a.starts_with("-S") && a.len() > 2))
        {
            return Err(Refusal::Opaque(
                "env".into(),
                "env -S splits a string into a command",
            ));
        }
        if a.starts_with('-') && a.len() > 1 {
            let takes_value = with_value.contains(&a);
            i += if takes_value { 2 } else { 1 };
            continue;
        }
        if name == "env" && is_assignment(a) {
            check_assignment(a)?;
            i += 1;
            continue;
        }
        if positionals > 0 {
            positionals -= 1;
            i += 1;
            continue;
        }
        break;
    }
    if i >= args.len() {
        // `env` alone prints the environment; `xargs` alone runs echo.
        return Ok(if name == "xargs" {
            vec![vec!["echo".into()]]
        } else {
            Vec::new()
        });
    }
    Ok(vec![args[i..].to_vec()])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(mode: Mode, shell: bool) -> Policy {
        Policy {
            mode,
            allow: [
                "ls", "echo", "env", "timeout", "find", "cat", "nice", "xargs", "sh", "sort",
            ]
            .map(String::from)
            .to_vec(),
            deny: ["rm", "dd"].map(String::from).to_vec(),
            allow_shell_syntax: shell,
            path: vec!["/usr/bin".into(), "/bin".into()],
        }
    }

    fn refusal(p: &Policy, line: &str) -> Refusal {
        p.judge(line, false).map(|(plan, _)| plan).unwrap_err()
    }

    #[test]
    fn allowlist_runs_only_what_is_listed() {
        let p = policy(Mode::Allowlist, false);
        let (plan, v) = p.judge("ls -la", false).unwrap();
        assert_eq!(
            plan,
            Plan::Argv {
                argv: vec!["ls".into(), "-la".into()],
                env: vec![]
            }
        );
        let (plan, _) = p.judge("LC_ALL=C ls", false).unwrap();
        assert_eq!(
            plan,
            Plan::Argv {
                argv: vec!["ls".into()],
                env: vec![("LC_ALL".into(), "C".into())]
            }
        );
        assert_eq!(v.programs, ["ls"]);
        assert_eq!(refusal(&p, "uname -a"), Refusal::NotAllowed("uname".into()));
        assert_eq!(refusal(&p, "rm -rf /"), Refusal::Denied("rm".into()));
        assert!(matches!(
            refusal(&p, "no-such-program-xyz"),
            Refusal::NotFound(..)
        ));
    }

    #[test]
    fn bypass_attempts_are_refused() {
        let p = policy(Mode::Allowlist, false);
        assert!(matches!(
            refusal(&p, "ls $(rm -rf x)"),
            Refusal::ShellSyntax(_)
        ));
        assert!(matches!(refusal(&p, "ls; rm x"), Refusal::ShellSyntax(_)));
        assert!(matches!(refusal(&p, "ls `rm x`"), Refusal::ShellSyntax(_)));
        assert_eq!(refusal(&p, "env X=1 rm x"), Refusal::Denied("rm".into()));
        assert_eq!(
            refusal(&p, "env -u HOME rm x"),
            Refusal::Denied("rm".into())
        );
        assert_eq!(
            refusal(&p, "env PATH=/tmp ls"),
            Refusal::Assignment("PATH".into())
        );
        assert_eq!(
            refusal(&p, "env LD_PRELOAD=/x.so ls"),
            Refusal::Assignment("LD_PRELOAD".into())
        );
        assert!(matches!(refusal(&p, "env -S 'rm x'"), Refusal::Opaque(..)));
        assert_eq!(refusal(&p, "timeout 5 rm x"), Refusal::Denied("rm".into()));
        assert_eq!(
            refusal(&p, "nice -n 5 uname"),
            Refusal::NotAllowed("uname".into())
        );
        assert_eq!(
            refusal(&p, "find . -exec rm {} \\;"),
            Refusal::Denied("rm".into())
        );
        assert_eq!(refusal(&p, "xargs rm"), Refusal::Denied("rm".into()));
        assert_eq!(refusal(&p, "/bin/rm -rf x"), Refusal::Denied("rm".into()));
        assert_eq!(
            refusal(&p, "/usr/bin/../bin/rm x"),
            Refusal::Denied("rm".into())
        );
        assert!(matches!(
            refusal(&p, "sh -c 'rm x'"),
            Refusal::ShellSyntax(_)
        ));
        assert!(matches!(refusal(&p, "sh script.sh"), Refusal::Opaque(..)));
        assert_eq!(refusal(&p, "sudo ls"), Refusal::Privileged("sudo".into()));
    }

    #[test]
    fn a_renamed_program_is_not_the_one_on_path() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("ls");
        std::os::unix::fs::symlink(std::fs::canonicalize("/bin/sleep").unwrap(), &fake).unwrap();
        let p = policy(Mode::Allowlist, false);
        let e = refusal(&p, fake.to_str().unwrap());
        assert!(matches!(e, Refusal::Impostor { .. }), "{e}");
        assert!(
            e.to_string().contains("is not the 'ls' found on PATH"),
            "{e}"
        );
        // The real one by path is fine.
        let real = p.lookup("ls").unwrap();
        assert!(p.judge(real.to_str().unwrap(), false).is_ok());
    }

    #[test]
    fn shell_lines_are_judged_program_by_program() {
        let p = policy(Mode::Allowlist, true);
        let (plan, v) = p
            .judge("ls | sort > out.txt; echo $(cat x)", false)
            .unwrap();
        assert!(matches!(plan, Plan::Shell(_)));
        // echo is a builtin of sh here: it starts no program.
        assert_eq!(v.programs, ["ls", "sort", "cat"]);
        assert_eq!(refusal(&p, "ls; rm x"), Refusal::Denied("rm".into()));
        assert_eq!(refusal(&p, "echo $(rm x)"), Refusal::Denied("rm".into()));
        assert_eq!(
            refusal(&p, "ls | sh -c 'dd if=x'"),
            Refusal::Denied("dd".into())
        );
        assert_eq!(
            refusal(&p, "PATH=/tmp ls"),
            Refusal::Assignment("PATH".into())
        );
        assert!(matches!(
            refusal(&p, "ls; eval 'rm x'"),
            Refusal::Opaque(..)
        ));
        assert!(matches!(refusal(&p, "$X"), Refusal::Dynamic(_)));
        assert!(matches!(refusal(&p, "ls | uname"), Refusal::NotAllowed(_)));
    }

    #[test]
    fn denylist_and_approval_modes() {
        let p = policy(Mode::Denylist, false);
        assert!(p.judge("uname -a", false).is_ok());
        assert_eq!(refusal(&p, "env rm x"), Refusal::Denied("rm".into()));
        let p = policy(Mode::Approval, false);
        assert!(p.judge("ls", false).is_ok());
        assert_eq!(refusal(&p, "uname"), Refusal::NeedsApproval("uname".into()));
        let (_, v) = p.judge("uname", true).unwrap();
        assert_eq!(v.approved, ["uname"]);
        // Approval never overrides the deny list.
        assert_eq!(
            p.judge("rm x", true).unwrap_err(),
            Refusal::Denied("rm".into())
        );
    }
}
