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

use crate::options;
use crate::parse::{self, SimpleCommand, is_assignment};

/// The policy's mode: the config's own type, so a value the config
/// accepts is one the adapter knows (no fallback).
pub use crate::config::ShellPolicy as Mode;

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
    #[error("'{0}' needs the user's approval ([shell] policy = \"approval\")")]
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
    #[error("'{0} {1}' is refused: {2}")]
    Option(String, String, &'static str),
    #[error("'{0}': {1}")]
    Launcher(String, String),
    #[error(
        "'{0}' is a relative path in a shell line, where `cd` may move it; name the program or its full path"
    )]
    Relative(String),
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
    /// Judges a command line that will run in `cwd`. Returns how to run
    /// it: as an argv, or (with shell syntax allowed and used) through
    /// `sh -c`.
    pub fn judge(&self, line: &str, approve: bool, cwd: &Path) -> Result<(Plan, Verdict), Refusal> {
        let mut v = Verdict::default();
        let j = Judging {
            approve,
            cwd: Some(cwd),
        };
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
                self.check_argv(&argv, &j, &mut v, 0)?;
                // Run the very file that was judged: a relative path is
                // fixed to where it leads now.
                let program = self.resolve(&argv[0], j.cwd)?;
                let program = if Path::new(&argv[0]).is_relative() && argv[0].contains('/') {
                    std::fs::canonicalize(&program)
                        .map_err(|_| Refusal::NotFound(argv[0].clone(), self.path_text()))?
                } else {
                    program
                };
                Ok((Plan::Argv { program, argv, env }, v))
            }
            Err(e @ parse::ParseError::Syntax { .. }) => {
                if !self.allow_shell_syntax {
                    return Err(Refusal::ShellSyntax(e.to_string()));
                }
                // `cd` in the line moves where relative paths lead, so a
                // shell line may name programs only by name or full path.
                let j = Judging { cwd: None, ..j };
                self.check_line(line, &j, &mut v, 0)?;
                Ok((Plan::Shell(line.to_string()), v))
            }
            Err(e) => Err(Refusal::Syntax(e.to_string())),
        }
    }

    fn check_line(
        &self,
        line: &str,
        j: &Judging<'_>,
        v: &mut Verdict,
        depth: usize,
    ) -> Result<(), Refusal> {
        let cmds = parse::commands(line).map_err(|e| Refusal::Syntax(e.to_string()))?;
        for c in cmds {
            self.check_simple(&c, j, v, depth)?;
        }
        Ok(())
    }

    fn check_simple(
        &self,
        c: &SimpleCommand,
        j: &Judging<'_>,
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
        self.check_argv(&c.words, j, v, depth)
    }

    /// Judges one program and whatever it launches.
    fn check_argv(
        &self,
        argv: &[String],
        j: &Judging<'_>,
        v: &mut Verdict,
        depth: usize,
    ) -> Result<(), Refusal> {
        if depth > 8 {
            return Err(Refusal::Syntax("launchers nested too deep".into()));
        }
        let Some(given) = argv.first() else {
            return Ok(());
        };
        let approve = j.approve;
        let name = self.program_name(given, j.cwd)?;
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
            return self.check_shell_args(&name, args, j, v, depth);
        }
        if let Some((option, why)) = options::dangerous(&name, args) {
            return Err(Refusal::Option(name, option, why));
        }
        if let Some(why) = options::writes_operand(&name, args) {
            return Err(Refusal::Opaque(name, why));
        }
        for inner in launched(&name, args)? {
            self.check_argv(&inner, j, v, depth + 1)?;
        }
        Ok(())
    }

    /// `sh -c '<line>'` is judged like the line itself; a shell reading a
    /// script or its input cannot be judged.
    fn check_shell_args(
        &self,
        name: &str,
        args: &[String],
        j: &Judging<'_>,
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
                let j = Judging { cwd: None, ..*j };
                return self.check_line(line, &j, v, depth + 1);
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

    /// The file `given` names: PATH's for a bare name; for a path, the
    /// file it leads to from `cwd`, where the command will run (`None`:
    /// relative paths cannot be judged, as in a shell line).
    fn resolve(&self, given: &str, cwd: Option<&Path>) -> Result<PathBuf, Refusal> {
        if !given.contains('/') {
            return self
                .lookup(given)
                .ok_or_else(|| Refusal::NotFound(given.into(), self.path_text()));
        }
        let path = Path::new(given);
        if path.is_absolute() {
            return Ok(path.to_path_buf());
        }
        match cwd {
            Some(cwd) => Ok(cwd.join(path)),
            None => Err(Refusal::Relative(given.into())),
        }
    }

    /// The name a program is judged by; a path must be the file PATH finds
    /// for that name, resolved from the directory the command runs in.
    pub fn program_name(&self, given: &str, cwd: Option<&Path>) -> Result<String, Refusal> {
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
            let same = std::fs::canonicalize(self.resolve(given, cwd)?)
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
    /// `program` is the very file that was judged (`argv[0]` is passed
    /// as given).
    Argv {
        program: PathBuf,
        argv: Vec<String>,
        env: Vec<(String, String)>,
    },
    Shell(String),
}

/// What a judgement depends on besides the words.
#[derive(Debug, Clone, Copy)]
struct Judging<'a> {
    approve: bool,
    /// Where relative program paths lead from; `None` in shell lines.
    cwd: Option<&'a Path>,
}

fn check_assignment(a: &str) -> Result<(), Refusal> {
    let name = a.split_once('=').map_or(a, |(n, _)| n);
    if DANGEROUS_VARS.contains(&name) || name.starts_with("LD_") || name.starts_with("DYLD_") {
        return Err(Refusal::Assignment(name.into()));
    }
    Ok(())
}

/// The commands a launcher would start, as argvs.
fn launched(name: &str, args: &[String]) -> Result<Vec<Vec<String>>, Refusal> {
    if name == "find" {
        return find_commands(args);
    }
    if options::OPAQUE_LAUNCHERS.contains(&name) {
        return Err(Refusal::Opaque(
            name.into(),
            "it runs commands in a way the policy cannot follow",
        ));
    }
    let Some(l) = options::launcher(name) else {
        return Ok(Vec::new());
    };
    let launch = options::launch(l, args).map_err(|why| Refusal::Launcher(name.into(), why))?;
    for a in &launch.assignments {
        check_assignment(a)?;
    }
    if let (Some(r), Some(program)) = (&launch.replace, launch.command.first())
        && program.contains(r.as_str())
    {
        return Err(Refusal::Dynamic("xargs input (-I)"));
    }
    Ok(if launch.command.is_empty() {
        Vec::new()
    } else {
        vec![launch.command]
    })
}

/// `find`'s actions: the commands of `-exec`, `-execdir`, `-ok` and
/// `-okdir`; actions that write or delete files are refused. find's
/// expression is whole words, so every word is looked at, even one that
/// is really a test's value: that can only refuse more.
fn find_commands(args: &[String]) -> Result<Vec<Vec<String>>, Refusal> {
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
            "-fprint" | "-fprint0" | "-fprintf" | "-fls" | "-delete"
        ) {
            return Err(Refusal::Opaque(
                "find".into(),
                "it writes or deletes files itself; use fs tools",
            ));
        }
        i += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(mode: Mode, shell: bool) -> Policy {
        Policy {
            mode,
            allow: [
                "ls", "echo", "env", "timeout", "find", "cat", "nice", "xargs", "sh", "sort",
                "uniq",
            ]
            .map(String::from)
            .to_vec(),
            deny: ["rm", "dd"].map(String::from).to_vec(),
            allow_shell_syntax: shell,
            path: vec!["/usr/bin".into(), "/bin".into()],
        }
    }

    fn refusal(p: &Policy, line: &str) -> Refusal {
        p.judge(line, false, Path::new("/"))
            .map(|(plan, _)| plan)
            .unwrap_err()
    }

    #[test]
    fn allowlist_runs_only_what_is_listed() {
        let p = policy(Mode::Allowlist, false);
        let (plan, v) = p.judge("ls -la", false, Path::new("/")).unwrap();
        assert_eq!(
            plan,
            Plan::Argv {
                program: p.lookup("ls").unwrap(),
                argv: vec!["ls".into(), "-la".into()],
                env: vec![]
            }
        );
        let (plan, _) = p.judge("LC_ALL=C ls", false, Path::new("/")).unwrap();
        assert_eq!(
            plan,
            Plan::Argv {
                program: p.lookup("ls").unwrap(),
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
        assert!(matches!(
            refusal(&p, "env -S 'rm x'"),
            Refusal::Launcher(..)
        ));
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
        assert!(
            p.judge(real.to_str().unwrap(), false, Path::new("/"))
                .is_ok()
        );
    }

    #[test]
    fn shell_lines_are_judged_program_by_program() {
        let p = policy(Mode::Allowlist, true);
        let (plan, v) = p
            .judge("ls | sort > out.txt; echo $(cat x)", false, Path::new("/"))
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
        assert!(p.judge("uname -a", false, Path::new("/")).is_ok());
        assert_eq!(refusal(&p, "env rm x"), Refusal::Denied("rm".into()));
        let p = policy(Mode::Approval, false);
        assert!(p.judge("ls", false, Path::new("/")).is_ok());
        assert_eq!(refusal(&p, "uname"), Refusal::NeedsApproval("uname".into()));
        let (_, v) = p.judge("uname", true, Path::new("/")).unwrap();
        assert_eq!(v.approved, ["uname"]);
        // Approval never overrides the deny list.
        assert_eq!(
            p.judge("rm x", true, Path::new("/")).unwrap_err(),
            Refusal::Denied("rm".into())
        );
    }

    #[test]
    fn the_issues_bypasses_are_refused() {
        let p = policy(Mode::Allowlist, false);
        for line in [
            "env -vSid",
            "env \"-iSid\"",
            "env --sp=id",
            "env --split=id",
        ] {
            let e = refusal(&p, line);
            assert!(matches!(e, Refusal::Launcher(..)), "{line}: {e}");
            assert!(e.to_string().contains("env -S splits"), "{line}: {e}");
        }
        // `--un` is `--unset`, which takes `ls`: the program is `id`.
        assert_eq!(
            refusal(&p, "env --un ls id"),
            Refusal::NotAllowed("id".into())
        );
        assert_eq!(refusal(&p, "env -uls id"), Refusal::NotAllowed("id".into()));
        let e = refusal(&p, "sort -S 4k -T . --compress-program=sh s.txt");
        assert!(matches!(e, Refusal::Option(..)), "{e}");
        assert!(e.to_string().contains("--compress-program"), "{e}");
        for line in [
            "sort --comp sh s.txt",
            "sort -o x y",
            "find . -fprint0 out",
            "uniq a b",
        ] {
            let e = refusal(&p, line);
            assert!(
                matches!(e, Refusal::Option(..) | Refusal::Opaque(..)),
                "{line}: {e}"
            );
        }
        // Ordinary uses still run.
        for line in [
            "env -i LC_ALL=C ls",
            "sort -k2 -n data.csv",
            "timeout 5 ls",
            "uniq -c a",
        ] {
            assert!(p.judge(line, false, Path::new("/")).is_ok(), "{line}");
        }
    }

    /// Marker programs on a PATH of their own: each appends its name to
    /// `ran` when it runs.
    fn markers(dir: &Path) -> Policy {
        use std::os::unix::fs::PermissionsExt;
        for m in ["p1", "p2", "p3"] {
            let f = dir.join(m);
            std::fs::write(
                &f,
                format!("#!/bin/sh\necho {m} >> {}\n", dir.join("ran").display()),
            )
            .unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Policy {
            mode: Mode::Allowlist,
            allow: ["env", "p1", "p2", "p3"].map(String::from).to_vec(),
            deny: vec![],
            allow_shell_syntax: false,
            path: vec![dir.to_path_buf(), "/usr/bin".into(), "/bin".into()],
        }
    }

    /// Runs the real GNU env with `args`; the marker it started, if any.
    fn real_env(dir: &Path, args: &[String]) -> Option<String> {
        let _ = std::fs::remove_file(dir.join("ran"));
        let status = std::process::Command::new("/usr/bin/env")
            .args(args)
            .env_clear()
            .env("PATH", dir)
            .current_dir(dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("GNU env (coreutils) is needed for this test");
        let _ = status;
        std::fs::read_to_string(dir.join("ran"))
            .ok()
            .and_then(|s| s.lines().next().map(String::from))
    }

    /// What the policy says `env args` runs: Ok(the marker), Ok(None) for
    /// nothing, Err for a refusal.
    fn judged_env(p: &Policy, args: &[String]) -> Result<Option<String>, Refusal> {
        let mut argv = vec!["env".to_string()];
        argv.extend(args.iter().cloned());
        let j = Judging {
            approve: false,
            cwd: Some(Path::new("/")),
        };
        let mut v = Verdict::default();
        p.check_argv(&argv, &j, &mut v, 0)?;
        Ok(v.programs.get(1).cloned())
    }

    fn env_word() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let longs = [
            "ignore-environment",
            "null",
            "unset",
            "chdir",
            "split-string",
            "block-signal",
            "default-signal",
            "ignore-signal",
            "list-signal-handling",
            "debug",
            "help",
            "version",
        ];
        prop_oneof![
            // A cluster of short options, some unknown.
            proptest::collection::vec(
                proptest::sample::select(vec!['i', '0', 'u', 'C', 'S', 'v', 'x']),
                1..4
            )
            .prop_map(|cs| format!("-{}", cs.into_iter().collect::<String>())),
            // A long option abbreviated anywhere, with or without a value.
            (
                proptest::sample::select(longs.to_vec()),
                1usize..20,
                proptest::option::of(proptest::sample::select(vec!["p1", "p2", "INT"]))
            )
                .prop_map(|(l, n, v)| {
                    let name = &l[..n.min(l.len())];
                    match v {
                        Some(v) => format!("--{name}={v}"),
                        None => format!("--{name}"),
                    }
                }),
            Just("-".to_string()),
            Just("--".to_string()),
            Just("A=1".to_string()),
            proptest::sample::select(vec!["p1", "p2", "p3", "INT"]).prop_map(String::from),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
        /// Whatever the spelling, the program GNU env really starts is the
        /// one the policy judged (or the policy refused the line).
        #[test]
        fn env_runs_only_what_the_policy_judged(args in proptest::collection::vec(env_word(), 0..6)) {
            let dir = tempfile::tempdir().unwrap();
            let p = markers(dir.path());
            let ran = real_env(dir.path(), &args);
            let judged = judged_env(&p, &args);
            if let (Some(ran), Ok(judged)) = (ran, &judged) {
                // A refusal is always safe; a pass must name what ran.
                proptest::prop_assert_eq!(
                    judged.clone(),
                    Some(ran.clone()),
                    "env {:?} ran {} but the policy judged {:?}",
                    args,
                    ran,
                    judged
                );
            }
        }
    }

    #[test]
    fn the_env_oracle_is_not_vacuous() {
        // The property above only bites if real runs happen: these do.
        let dir = tempfile::tempdir().unwrap();
        let p = markers(dir.path());
        for (args, runs) in [
            ("--un p1 p2", "p2"),
            ("-u p1 p2", "p2"),
            ("-- --i=p1 p1", "p1"),
            ("-- p1", "p1"),
            ("A=1 B=2 p3", "p3"),
            ("-v p2", "p2"),
        ] {
            let args: Vec<String> = args.split(' ').map(String::from).collect();
            assert_eq!(
                real_env(dir.path(), &args).as_deref(),
                Some(runs),
                "{args:?}"
            );
            assert_eq!(
                judged_env(&p, &args).unwrap().as_deref(),
                Some(runs),
                "{args:?}"
            );
        }
    }

    #[test]
    fn sort_never_runs_a_compress_program_the_policy_passed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("zz");
        std::fs::write(
            &marker,
            format!(
                "#!/bin/sh\necho ran >> {}\nexec cat\n",
                dir.path().join("ran").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&marker, std::fs::Permissions::from_mode(0o755)).unwrap();
        let data: String = (0..20_000)
            .map(|i| format!("{}\n", (i * 7919) % 10_007))
            .collect();
        std::fs::write(dir.path().join("in.txt"), data).unwrap();
        let p = policy(Mode::Allowlist, false);
        let mut ran_somewhere = false;
        for spelling in [
            "--compress-program=zz",
            "--compress-program zz",
            "--compress=zz",
            "--comp zz",
            "--compress-p=zz",
            "--co=zz",
        ] {
            let line = format!("sort -S 16k -T . {spelling} in.txt");
            let words: Vec<String> = line.split(' ').map(String::from).collect();
            let _ = std::fs::remove_file(dir.path().join("ran"));
            let o = std::process::Command::new("sort")
                .args(&words[1..])
                .env("PATH", format!("{}:/usr/bin:/bin", dir.path().display()))
                .current_dir(dir.path())
                .output()
                .unwrap();
            let ran = dir.path().join("ran").exists();
            ran_somewhere |= ran;
            let judged = p.judge(&line, false, Path::new("/"));
            assert!(
                !ran || judged.is_err(),
                "{line}: sort ran zz ({o:?}) but the policy passed it"
            );
        }
        assert!(
            ran_somewhere,
            "sort never used the compress program: the test proves nothing"
        );
    }
}
