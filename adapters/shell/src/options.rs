//! What programs do with their options: the launchers' option tables (so
//! the program a launcher starts is found exactly where it will find it),
//! and, for other programs, the options that run another program or write
//! a file the policy did not see.
//!
//! Launchers are parsed with [`getopt`] against their GNU tables; an
//! option not in the table is refused, since the real program would either
//! reject it or mean something the policy cannot know.
//!
//! Dangerous options of ordinary programs are found by a scan that is
//! wider than any parse: every word that starts with `-` is taken as an
//! option cluster, every word that starts with `--` as a long option that
//! may be abbreviated, whatever the word before it was. A word getopt
//! would read as a value may be refused needlessly; a word getopt would
//! read as the dangerous option is never missed.

use crate::getopt::{self, Arg, Opt, Spec, opt};

/// How a launcher finds the command it starts.
pub struct Launcher {
    pub name: &'static str,
    pub spec: Spec,
    /// Operands before the command (timeout's DURATION).
    pub leading_operands: usize,
    /// Options that are refused, with why.
    pub refused: &'static [(&'static str, &'static str)],
    /// Options after which nothing runs (`--help`).
    pub terminal: &'static [&'static str],
}

const HELP: [Opt; 2] = [opt(' ', "help", Arg::No), opt(' ', "version", Arg::No)];

/// GNU coreutils 9 `env` (`+C:iS:u:v0`).
const ENV: &[Opt] = &[
    opt('i', "ignore-environment", Arg::No),
    opt('0', "null", Arg::No),
    opt('u', "unset", Arg::Required),
    opt('C', "chdir", Arg::Required),
    opt('S', "split-string", Arg::Required),
    opt(' ', "block-signal", Arg::Optional),
    opt(' ', "default-signal", Arg::Optional),
    opt(' ', "ignore-signal", Arg::Optional),
    opt(' ', "list-signal-handling", Arg::No),
    opt('v', "debug", Arg::No),
    HELP[0],
    HELP[1],
];

/// GNU `timeout` (`+k:s:v`).
const TIMEOUT: &[Opt] = &[
    opt('k', "kill-after", Arg::Required),
    opt('s', "signal", Arg::Required),
    opt('v', "verbose", Arg::No),
    opt(' ', "preserve-status", Arg::No),
    opt(' ', "foreground", Arg::No),
    HELP[0],
    HELP[1],
];

/// GNU `nice` (`+n:`; `-N` adjustments are handled before parsing).
const NICE: &[Opt] = &[opt('n', "adjustment", Arg::Required), HELP[0], HELP[1]];

/// GNU `nohup`.
const NOHUP: &[Opt] = &[HELP[0], HELP[1]];

/// GNU `stdbuf` (`+i:o:e:`).
const STDBUF: &[Opt] = &[
    opt('i', "input", Arg::Required),
    opt('o', "output", Arg::Required),
    opt('e', "error", Arg::Required),
    HELP[0],
    HELP[1],
];

/// util-linux `setsid` (`+cfw`).
const SETSID: &[Opt] = &[
    opt('c', "ctty", Arg::No),
    opt('f', "fork", Arg::No),
    opt('w', "wait", Arg::No),
    opt('h', "help", Arg::No),
    opt('V', "version", Arg::No),
];

/// GNU findutils 4.9 `xargs` (`+0a:E:e::I:i::L:l::n:prP:s:txd:`).
const XARGS: &[Opt] = &[
    opt('0', "null", Arg::No),
    opt('a', "arg-file", Arg::Required),
    opt('d', "delimiter", Arg::Required),
    opt('E', "", Arg::Required),
    opt('e', "eof", Arg::Optional),
    opt('I', "", Arg::Required),
    opt('i', "replace", Arg::Optional),
    opt('L', "", Arg::Required),
    opt('l', "max-lines", Arg::Optional),
    opt('n', "max-args", Arg::Required),
    opt('o', "open-tty", Arg::No),
    opt('p', "interactive", Arg::No),
    opt('r', "no-run-if-empty", Arg::No),
    opt('P', "max-procs", Arg::Required),
    opt('s', "max-chars", Arg::Required),
    opt('t', "verbose", Arg::No),
    opt('x', "exit", Arg::No),
    opt(' ', "process-slot-var", Arg::Required),
    opt(' ', "show-limits", Arg::No),
    HELP[0],
    HELP[1],
];

const LAUNCHERS: &[Launcher] = &[
    Launcher {
        name: "env",
        spec: Spec {
            opts: ENV,
            stop_at_operand: true,
        },
        leading_operands: 0,
        refused: &[
            ("split-string", "env -S splits a string into a command"),
            (
                "chdir",
                "env -C changes where the command is found; use the cwd argument",
            ),
        ],
        terminal: &["help", "version"],
    },
    Launcher {
        name: "timeout",
        spec: Spec {
            opts: TIMEOUT,
            stop_at_operand: true,
        },
        leading_operands: 1,
        refused: &[],
        terminal: &["help", "version"],
    },
    Launcher {
        name: "nice",
        spec: Spec {
            opts: NICE,
            stop_at_operand: true,
        },
        leading_operands: 0,
        refused: &[],
        terminal: &["help", "version"],
    },
    Launcher {
        name: "nohup",
        spec: Spec {
            opts: NOHUP,
            stop_at_operand: true,
        },
        leading_operands: 0,
        refused: &[],
        terminal: &["help", "version"],
    },
    Launcher {
        name: "stdbuf",
        spec: Spec {
            opts: STDBUF,
            stop_at_operand: true,
        },
        leading_operands: 0,
        refused: &[],
        terminal: &["help", "version"],
    },
    Launcher {
        name: "setsid",
        spec: Spec {
            opts: SETSID,
            stop_at_operand: true,
        },
        leading_operands: 0,
        refused: &[],
        terminal: &["help", "version"],
    },
    Launcher {
        name: "xargs",
        spec: Spec {
            opts: XARGS,
            stop_at_operand: true,
        },
        leading_operands: 0,
        refused: &[
            (
                "arg-file",
                "xargs -a reads its commands' arguments from a file",
            ),
            ("open-tty", "xargs -o gives the command the terminal"),
        ],
        terminal: &["help", "version", "show-limits"],
    },
];

/// Launchers that run commands given as text, or that the policy has no
/// option table for: refused whole.
pub const OPAQUE_LAUNCHERS: &[&str] = &[
    "script", "parallel", "watch", "strace", "ltrace", "unbuffer", "ionice", "time", "taskset",
    "chrt", "flock",
];

pub fn launcher(name: &str) -> Option<&'static Launcher> {
    LAUNCHERS.iter().find(|l| l.name == name)
}

/// What a launcher's arguments mean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// `NAME=value` words `env` sets before the command.
    pub assignments: Vec<String>,
    /// The command it starts (empty: none).
    pub command: Vec<String>,
    /// `xargs -I`/`-i`: the string replaced in the command by input.
    pub replace: Option<String>,
}

/// Parses a launcher's arguments; `Err` says why it is refused.
pub fn launch(l: &Launcher, args: &[String]) -> Result<Launch, String> {
    let mut args = args.to_vec();
    // `nice -5 cmd`, `nice --5`, `nice -+5`: the obsolete adjustment.
    if l.name == "nice" {
        args.retain({
            let mut leading = true;
            move |a| {
                let b = a.as_bytes();
                let skip = b.get(1).is_some_and(|c| *c == b'-' || *c == b'+') as usize;
                let obsolete = leading
                    && b.first() == Some(&b'-')
                    && b.get(1 + skip).is_some_and(u8::is_ascii_digit);
                leading &= obsolete;
                !obsolete
            }
        });
    }
    let parsed = getopt::parse(&l.spec, &args).map_err(|e| format!("{}: {e}", l.name))?;
    let mut replace = None;
    for o in &parsed.options {
        if let Some((_, why)) = l.refused.iter().find(|(n, _)| *n == o.name) {
            return Err((*why).to_string());
        }
        if l.terminal.contains(&o.name.as_str()) {
            return Ok(Launch {
                assignments: Vec::new(),
                command: Vec::new(),
                replace: None,
            });
        }
        match (l.name, o.name.as_str()) {
            ("xargs", "I") => replace = o.value.clone(),
            ("xargs", "replace") => replace = Some(o.value.clone().unwrap_or_else(|| "{}".into())),
            _ => {}
        }
    }
    let mut rest = parsed.operands.as_slice();
    let mut assignments = Vec::new();
    if l.name == "env" {
        // "A mere - implies -i."
        if rest.first().is_some_and(|a| a == "-") {
            rest = &rest[1..];
        }
        // env takes every word with a `=` for an assignment, whatever is
        // before it (`--i=x` too), as glibc's putenv is handed it.
        while let Some(a) = rest.first().filter(|a| a.contains('=')) {
            assignments.push(a.clone());
            rest = &rest[1..];
        }
    }
    if rest.len() < l.leading_operands {
        return Ok(Launch {
            assignments,
            command: Vec::new(),
            replace,
        });
    }
    let mut command = rest[l.leading_operands..].to_vec();
    if l.name == "xargs" && command.is_empty() {
        command = vec!["echo".into()];
    }
    Ok(Launch {
        assignments,
        command,
        replace,
    })
}

/// Short options that take a value, by program: in a cluster, the rest
/// of the word after one is its value, not more options. Only letters
/// known to take a value are listed; a missing one only makes the scan
/// refuse more.
const VALUE_LETTERS: &[(&str, &str)] = &[("sort", "kotSTy"), ("date", "dfIr"), ("tail", "cns")];

/// Options of ordinary programs that run another program or write a file
/// of their own choosing: (program, long name, short letter, why).
const DANGEROUS: &[(&str, &str, Option<char>, &str)] = &[
    (
        "sort",
        "compress-program",
        None,
        "it runs a program on sort's data",
    ),
    (
        "sort",
        "output",
        Some('o'),
        "it writes a file; use the fs tools",
    ),
    ("diff", "paginate", Some('l'), "it runs pr"),
    ("file", "compile", Some('C'), "it writes a magic file"),
    ("date", "set", Some('s'), "it sets the system clock"),
    ("tail", "pid", None, "it watches another process"),
];

/// The first dangerous option `args` of `program` may contain.
pub fn dangerous(program: &str, args: &[String]) -> Option<(String, &'static str)> {
    let mine: Vec<_> = DANGEROUS.iter().filter(|d| d.0 == program).collect();
    if mine.is_empty() {
        return None;
    }
    for a in args {
        if let Some(body) = a.strip_prefix("--") {
            let name = body.split_once('=').map_or(body, |(n, _)| n);
            if let Some(d) = mine
                .iter()
                .find(|d| !name.is_empty() && d.1.starts_with(name))
            {
                return Some((format!("--{}", d.1), d.3));
            }
        } else if let Some(cluster) = a.strip_prefix('-') {
            let takes_value = VALUE_LETTERS
                .iter()
                .find(|(p, _)| *p == program)
                .map_or("", |(_, l)| *l);
            for c in cluster.chars() {
                if let Some(d) = mine.iter().find(|d| d.2 == Some(c)) {
                    return Some((format!("-{c}"), d.3));
                }
                if takes_value.contains(c) {
                    break;
                }
            }
        }
    }
    None
}

/// Operands that some programs write to (`uniq IN OUT`).
pub fn writes_operand(program: &str, args: &[String]) -> Option<&'static str> {
    if program != "uniq" {
        return None;
    }
    // A wide count: every word that is not an option counts, even one that
    // is really an option's value, so a second operand is never missed.
    let operands = args
        .iter()
        .filter(|a| !a.starts_with('-') || a.as_str() == "-")
        .count();
    (operands >= 2).then_some("uniq writes its second operand; use the fs tools")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn cmd(name: &str, args: &str) -> Result<Vec<String>, String> {
        launch(launcher(name).unwrap(), &words(args)).map(|l| l.command)
    }

    #[test]
    fn the_issues_env_bypasses_are_seen() {
        assert!(cmd("env", "-vSid").unwrap_err().contains("-S"));
        assert!(cmd("env", "-iSid").unwrap_err().contains("-S"));
        assert!(cmd("env", "--sp=id").unwrap_err().contains("-S"));
        assert!(cmd("env", "--split=id").unwrap_err().contains("-S"));
        assert_eq!(cmd("env", "--un ls id").unwrap(), ["id"]);
        assert_eq!(cmd("env", "-u ls id -x").unwrap(), ["id", "-x"]);
        assert_eq!(cmd("env", "- A=1 B=2 id").unwrap(), ["id"]);
        assert!(cmd("env", "-C /tmp ./id").is_err());
        assert!(cmd("env", "--bogus id").is_err());
        assert_eq!(cmd("env", "--help id").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn other_launchers() {
        assert_eq!(cmd("timeout", "-s KILL 5 id").unwrap(), ["id"]);
        assert_eq!(cmd("timeout", "--sig KILL 5 id").unwrap(), ["id"]);
        assert_eq!(cmd("timeout", "-k1 5 id -u").unwrap(), ["id", "-u"]);
        assert_eq!(cmd("nice", "-5 id").unwrap(), ["id"]);
        assert_eq!(cmd("nice", "-n 5 id").unwrap(), ["id"]);
        assert_eq!(cmd("nice", "--adj=5 id").unwrap(), ["id"]);
        assert_eq!(cmd("xargs", "-0 -n1").unwrap(), ["echo"]);
        let l = launch(launcher("xargs").unwrap(), &words("-I% % -x")).unwrap();
        assert_eq!(l.replace.as_deref(), Some("%"));
        assert_eq!(l.command, ["%", "-x"]);
    }

    #[test]
    fn dangerous_options_in_any_spelling() {
        for args in [
            "-S 4k -T . --compress-program=sh s.txt",
            "--compress-prog sh s.txt",
            "--comp=sh",
            "-o out.txt in.txt",
            "-ruo out.txt",
            "--out=x",
        ] {
            assert!(dangerous("sort", &words(args)).is_some(), "{args}");
        }
        assert!(dangerous("sort", &words("-k2 -n -t, data.csv")).is_none());
        assert!(dangerous("diff", &words("-ul a b")).is_some());
        assert!(dangerous("date", &words("--se=now")).is_some());
        assert!(dangerous("date", &words("+%s")).is_none());
        assert!(dangerous("date", &words("-Iseconds")).is_none());
        assert!(dangerous("date", &words("-us now")).is_some());
        assert!(dangerous("sort", &words("-k1,1o")).is_none());
        assert!(writes_operand("uniq", &words("-c in out")).is_some());
        assert!(writes_operand("uniq", &words("-c in")).is_none());
    }
}
