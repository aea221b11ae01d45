//! GNU `getopt_long`, as glibc parses a command's arguments.
//!
//! The policy must see the words the way the program will: option
//! clusters (`-vSid` is `-v -S id`), values glued on or in the next word
//! (`-uHOME`, `-u HOME`, `--unset=HOME`, `--unset HOME`), and long options
//! abbreviated to any unique prefix (`--un` is `--unset`). An unknown or
//! ambiguous option, or one missing its value, is an error here as it is
//! for the program (which then runs nothing), and the policy refuses it.

/// Whether an option takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    No,
    /// In the same word or the next one.
    Required,
    /// Only in the same word (`-xVALUE`, `--name=VALUE`).
    Optional,
}

/// One option: its short letter, its long name, or both.
#[derive(Debug, Clone, Copy)]
pub struct Opt {
    pub short: Option<char>,
    pub long: Option<&'static str>,
    pub arg: Arg,
}

/// Shorthand for tables.
pub const fn opt(short: char, long: &'static str, arg: Arg) -> Opt {
    Opt {
        short: if short == ' ' { None } else { Some(short) },
        long: if long.is_empty() { None } else { Some(long) },
        arg,
    }
}

/// How a program parses its arguments.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub opts: &'static [Opt],
    /// Options end at the first operand (`+` in the short-option string,
    /// as launchers use, so the command's own options stay its own).
    /// Otherwise options and operands mix, as in most GNU programs.
    pub stop_at_operand: bool,
}

/// One option as the program sees it: the option (by its table entry)
/// and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The long name if it has one, else the short letter.
    pub name: String,
    pub value: Option<String>,
}

/// What a program's arguments mean.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub options: Vec<Found>,
    pub operands: Vec<String>,
}

impl Opt {
    fn name(&self) -> String {
        match (self.long, self.short) {
            (Some(l), _) => l.to_string(),
            (None, Some(c)) => c.to_string(),
            (None, None) => String::new(),
        }
    }
}

/// Parses `args` (without the program's name) as `getopt_long` would.
pub fn parse(spec: &Spec, args: &[String]) -> Result<Parsed, String> {
    let mut out = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        i += 1;
        if a == "--" {
            out.operands.extend(args[i..].iter().cloned());
            return Ok(out);
        }
        if let Some(body) = a.strip_prefix("--") {
            let (name, glued) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let o = long_option(spec, name)?;
            let value = match (o.arg, glued) {
                (Arg::No, Some(_)) => {
                    return Err(format!("option '--{}' doesn't allow an argument", o.name()));
                }
                (Arg::No, None) => None,
                (Arg::Optional, v) => v,
                (Arg::Required, Some(v)) => Some(v),
                (Arg::Required, None) => {
                    let Some(v) = args.get(i) else {
                        return Err(format!("option '--{}' requires an argument", o.name()));
                    };
                    i += 1;
                    Some(v.clone())
                }
            };
            out.options.push(Found {
                name: o.name(),
                value,
            });
            continue;
        }
        if a.len() > 1 && a.starts_with('-') {
            let cluster: Vec<char> = a[1..].chars().collect();
            let mut k = 0;
            while k < cluster.len() {
                let c = cluster[k];
                k += 1;
                let Some(o) = spec.opts.iter().find(|o| o.short == Some(c)) else {
                    return Err(format!("invalid option -- '{c}'"));
                };
                let rest: String = cluster[k..].iter().collect();
                let value = match o.arg {
                    Arg::No => None,
                    Arg::Optional => {
                        k = cluster.len();
                        (!rest.is_empty()).then_some(rest)
                    }
                    Arg::Required => {
                        k = cluster.len();
                        if rest.is_empty() {
                            let Some(v) = args.get(i) else {
                                return Err(format!("option requires an argument -- '{c}'"));
                            };
                            i += 1;
                            Some(v.clone())
                        } else {
                            Some(rest)
                        }
                    }
                };
                out.options.push(Found {
                    name: o.name(),
                    value,
                });
            }
            continue;
        }
        // An operand ("-" alone is one too).
        out.operands.push(a.to_string());
        if spec.stop_at_operand {
            out.operands.extend(args[i..].iter().cloned());
            return Ok(out);
        }
    }
    Ok(out)
}

/// The long option `name` stands for: an exact match, else the one option
/// it is a prefix of. Several different options is ambiguous (glibc takes
/// the first only when all candidates are the same option).
fn long_option<'a>(spec: &'a Spec, name: &str) -> Result<&'a Opt, String> {
    if name.is_empty() {
        return Err("'--=' is not an option".into());
    }
    let longs = spec.opts.iter().filter(|o| o.long.is_some());
    if let Some(o) = longs.clone().find(|o| o.long == Some(name)) {
        return Ok(o);
    }
    let matches: Vec<&Opt> = longs
        .filter(|o| o.long.is_some_and(|l| l.starts_with(name)))
        .collect();
    match matches.as_slice() {
        [] => Err(format!("unrecognized option '--{name}'")),
        [o] => Ok(o),
        many => Err(format!(
            "option '--{name}' is ambiguous; possibilities: {}",
            many.iter()
                .map(|o| format!("'--{}'", o.name()))
                .collect::<Vec<_>>()
                .join(" ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENVLIKE: Spec = Spec {
        opts: &[
            opt('i', "ignore-environment", Arg::No),
            opt('u', "unset", Arg::Required),
            opt('S', "split-string", Arg::Required),
            opt(' ', "block-signal", Arg::Optional),
            opt(' ', "debug", Arg::No),
            opt('v', "", Arg::No),
        ],
        stop_at_operand: true,
    };

    fn p(args: &[&str]) -> Result<Parsed, String> {
        parse(
            &ENVLIKE,
            &args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
    }

    fn found(name: &str, value: Option<&str>) -> Found {
        Found {
            name: name.into(),
            value: value.map(String::from),
        }
    }

    #[test]
    fn clusters_values_and_abbreviations() {
        let r = p(&["-vSid", "x"]).unwrap();
        assert_eq!(
            r.options,
            [found("v", None), found("split-string", Some("id"))]
        );
        assert_eq!(r.operands, ["x"]);
        let r = p(&["--un", "ls", "id"]).unwrap();
        assert_eq!(r.options, [found("unset", Some("ls"))]);
        assert_eq!(r.operands, ["id"]);
        let r = p(&["--sp=id"]).unwrap();
        assert_eq!(r.options, [found("split-string", Some("id"))]);
        let r = p(&["-uHOME", "--block-signal", "ls", "-i"]).unwrap();
        assert_eq!(
            r.options,
            [found("unset", Some("HOME")), found("block-signal", None)]
        );
        assert_eq!(r.operands, ["ls", "-i"]);
        let r = p(&["-", "-i"]).unwrap();
        assert_eq!(r.operands, ["-", "-i"]);
        let r = p(&["--", "-i"]).unwrap();
        assert_eq!(r.operands, ["-i"]);
    }

    #[test]
    fn errors_are_what_getopt_reports() {
        assert!(p(&["-x"]).unwrap_err().contains("invalid option"));
        assert!(p(&["--nope"]).unwrap_err().contains("unrecognized"));
        assert!(p(&["-u"]).unwrap_err().contains("requires an argument"));
        assert!(p(&["--debug=1"]).unwrap_err().contains("doesn't allow"));
        const AMBIGUOUS: &[Opt] = &[opt(' ', "debug", Arg::No), opt(' ', "delete", Arg::No)];
        let spec = Spec {
            opts: AMBIGUOUS,
            stop_at_operand: false,
        };
        let e = parse(&spec, &["--de".to_string()]).unwrap_err();
        assert!(e.contains("ambiguous"), "{e}");
        // An exact name wins over being a prefix of another.
        const EXACT: &[Opt] = &[opt(' ', "check", Arg::No), opt(' ', "checks", Arg::No)];
        let spec = Spec {
            opts: EXACT,
            stop_at_operand: false,
        };
        let r = parse(&spec, &["--check".to_string()]).unwrap();
        assert_eq!(r.options, [found("check", None)]);
    }

    #[test]
    fn permuting_programs_take_options_after_operands() {
        const OUTPUT: &[Opt] = &[opt('o', "output", Arg::Required)];
        let spec = Spec {
            opts: OUTPUT,
            stop_at_operand: false,
        };
        let args: Vec<String> = ["a", "-ofile", "b"].map(String::from).to_vec();
        let r = parse(&spec, &args).unwrap();
        assert_eq!(r.options, [found("output", Some("file"))]);
        assert_eq!(r.operands, ["a", "b"]);
    }
}
