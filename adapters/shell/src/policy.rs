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
mod tests;
