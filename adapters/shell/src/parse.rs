//! Command lines into words, and into the programs they would run.
//!
//! Two uses: without `allow_shell_syntax` a line must be a plain argv
//! (quotes and backslashes are fine; anything the shell would interpret is
//! refused, with what and where); with it, the line goes to `sh -c` and
//! every program it names, including those in `$(...)` and backticks, is
//! found so that the policy can judge each one.

/// Where and what shell syntax was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("{what} at column {col}")]
    Syntax { what: String, col: usize },
    #[error("unterminated {what} starting at column {col}")]
    Unterminated { what: &'static str, col: usize },
    #[error("the command is empty")]
    Empty,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Word {
        text: String,
        col: usize,
        /// `$VAR`, `${...}`, `*`, `?`, `[`, or a leading `~` outside single
        /// quotes: the shell would change this word.
        expands: Option<&'static str>,
    },
    /// `;`, `&`, `&&`, `|`, `||`, `(`, `)`, newline.
    Sep { op: String, col: usize },
    /// `<`, `>`, `>>`, `<&`, `>&`, `&>`, `<<<`: the next word is a target.
    Redirect { op: String, col: usize },
    /// `$(...)` or backticks: a command line of its own.
    Subst { line: String, col: usize },
    /// A here-document (`<<`), whose body the parser cannot follow.
    HereDoc { col: usize },
}

/// Splits a line into tokens as `sh` would see them.
pub fn tokenize(line: &str) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<char> = line.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut word = String::new();
    let mut word_col = 0;
    let mut in_word = false;
    let mut expands: Option<&'static str> = None;

    macro_rules! flush {
        () => {
            if in_word {
                out.push(Token::Word {
                    text: std::mem::take(&mut word),
                    col: word_col,
                    expands: expands.take(),
                });
                in_word = false;
            }
        };
    }
    macro_rules! start {
        () => {
            if !in_word {
                in_word = true;
                word_col = i + 1;
            }
        };
    }

    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        match c {
            ' ' | '\t' => {
                flush!();
                i += 1;
            }
            '#' if !in_word => break,
            '\\' => {
                start!();
                match chars.get(i + 1) {
                    Some('\n') => {}
                    Some(n) => word.push(*n),
                    None => word.push('\\'),
                }
                i += 2;
            }
            '\'' => {
                start!();
                let end = chars[i + 1..].iter().position(|c| *c == '\'').ok_or(
                    ParseError::Unterminated {
                        what: "single quote",
                        col,
                    },
                )?;
                word.extend(&chars[i + 1..i + 1 + end]);
                i += end + 2;
            }
            '"' => {
                start!();
                i += 1;
                loop {
                    let Some(&d) = chars.get(i) else {
                        return Err(ParseError::Unterminated {
                            what: "double quote",
                            col,
                        });
                    };
                    match d {
                        '"' => {
                            i += 1;
                            break;
                        }
                        '\\' if matches!(chars.get(i + 1), Some('$' | '`' | '"' | '\\' | '\n')) => {
                            word.push(chars[i + 1]);
                            i += 2;
                        }
                        '$' if chars.get(i + 1) == Some(&'(') => {
                            let (inner, next) = balanced(&chars, i + 2, i + 1)?;
                            out.push(Token::Subst {
                                line: inner,
                                col: i + 1,
                            });
                            expands.get_or_insert("command substitution $(...)");
                            i = next;
                        }
                        '`' => {
                            let (inner, next) = backtick(&chars, i + 1, i + 1)?;
                            out.push(Token::Subst {
                                line: inner,
                                col: i + 1,
                            });
                            expands.get_or_insert("command substitution `...`");
                            i = next;
                        }
                        '$' if chars.get(i + 1).is_some_and(|n| {
                            n.is_ascii_alphanumeric() || "_{@*#?$!-".contains(*n)
                        }) =>
                        {
                            expands.get_or_insert("variable expansion $");
                            word.push('$');
                            i += 1;
                        }
                        d => {
                            word.push(d);
                            i += 1;
                        }
                    }
                }
            }
            '$' if chars.get(i + 1) == Some(&'(') => {
                flush!();
                let (inner, next) = balanced(&chars, i + 2, col)?;
                out.push(Token::Subst { line: inner, col });
                i = next;
            }
            '`' => {
                flush!();
                let (inner, next) = backtick(&chars, i + 1, col)?;
                out.push(Token::Subst { line: inner, col });
                i = next;
            }
            '$' if chars
                .get(i + 1)
                .is_some_and(|n| n.is_ascii_alphanumeric() || "_{@*#?$!-".contains(*n)) =>
            {
                start!();
                expands.get_or_insert("variable expansion $");
                word.push('$');
                i += 1;
            }
            '*' | '?' | '[' => {
                start!();
                expands.get_or_insert("a glob pattern");
                word.push(c);
                i += 1;
            }
            '~' if !in_word => {
                start!();
                expands.get_or_insert("tilde expansion ~");
                word.push(c);
                i += 1;
            }
            ';' | '&' | '|' | '(' | ')' | '\n' => {
                // `2>&1`: `>&` is a redirection, handled below.
                if c == '&' && chars.get(i + 1) == Some(&'>') {
                    flush!();
                    let len = if chars.get(i + 2) == Some(&'>') { 3 } else { 2 };
                    out.push(Token::Redirect {
                        op: chars[i..i + len].iter().collect(),
                        col,
                    });
                    i += len;
                    continue;
                }
                flush!();
                let two = chars.get(i + 1) == Some(&c) && matches!(c, '&' | '|' | ';');
                let len = if two { 2 } else { 1 };
                out.push(Token::Sep {
                    op: chars[i..i + len].iter().collect(),
                    col,
                });
                i += len;
            }
            '<' | '>' => {
                // A word of digits right before it is a file descriptor.
                if in_word
                    && !word.is_empty()
                    && word.chars().all(|d| d.is_ascii_digit())
                    && expands.is_none()
                {
                    word.clear();
                    in_word = false;
                }
                flush!();
                let rest: String = chars[i..chars.len().min(i + 3)].iter().collect();
                if rest.starts_with("<<<") {
                    out.push(Token::Redirect {
                        op: "<<<".into(),
                        col,
                    });
                    i += 3;
                } else if rest.starts_with("<<") {
                    out.push(Token::HereDoc { col });
                    i += 2;
                } else {
                    let len = if matches!(chars.get(i + 1), Some('>' | '&' | '|')) {
                        2
                    } else {
                        1
                    };
                    out.push(Token::Redirect {
                        op: chars[i..i + len].iter().collect(),
                        col,
                    });
                    i += len;
                }
            }
            c => {
                start!();
                word.push(c);
                i += 1;
            }
        }
    }
    if in_word {
        out.push(Token::Word {
            text: word,
            col: word_col,
            expands,
        });
    }
    Ok(out)
}

/// The text of `$( ... )` from `start` (just inside) to its closing
/// parenthesis, honouring quotes and nesting.
fn balanced(chars: &[char], start: usize, col: usize) -> Result<(String, usize), ParseError> {
    let mut depth = 1;
    let mut i = start;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 1,
            '\'' => {
                i += chars[i + 1..]
                    .iter()
                    .position(|c| *c == '\'')
                    .map_or(chars.len(), |p| p + 1);
            }
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Ok((chars[start..i].iter().collect(), i + 1));
                }
            }
            _ => {}
        }
        i += 1;
    }
    Err(ParseError::Unterminated { what: "$(", col })
}

fn backtick(chars: &[char], start: usize, col: usize) -> Result<(String, usize), ParseError> {
    let mut i = start;
    let mut s = String::new();
    while i < chars.len() {
        match chars[i] {
            '\\' if i + 1 < chars.len() => {
                s.push(chars[i + 1]);
                i += 2;
                continue;
            }
            '`' => return Ok((s, i + 1)),
            c => s.push(c),
        }
        i += 1;
    }
    Err(ParseError::Unterminated {
        what: "backtick",
        col,
    })
}

/// A line with no shell syntax: its words, or what was found and where.
pub fn argv(line: &str) -> Result<Vec<String>, ParseError> {
    let mut words = Vec::new();
    for t in tokenize(line)? {
        match t {
            Token::Word {
                text,
                col,
                expands: None,
            } => {
                let _ = col;
                words.push(text)
            }
            Token::Word {
                expands: Some(what),
                col,
                ..
            } => {
                return Err(ParseError::Syntax {
                    what: what.into(),
                    col,
                });
            }
            Token::Sep { op, col } => {
                let what = match op.as_str() {
                    "\n" => "a newline (a second command)".to_string(),
                    "|" => "a pipe |".to_string(),
                    "(" | ")" => format!("a subshell {op}"),
                    _ => format!("the command separator {op}"),
                };
                return Err(ParseError::Syntax { what, col });
            }
            Token::Redirect { op, col } => {
                return Err(ParseError::Syntax {
                    what: format!("the redirection {op}"),
                    col,
                });
            }
            Token::Subst { col, .. } => {
                return Err(ParseError::Syntax {
                    what: "command substitution".into(),
                    col,
                });
            }
            Token::HereDoc { col } => {
                return Err(ParseError::Syntax {
                    what: "a here-document <<".into(),
                    col,
                });
            }
        }
    }
    if words.is_empty() {
        return Err(ParseError::Empty);
    }
    Ok(words)
}

/// Keywords after which a command follows.
const LEADING_KEYWORDS: &[&str] = &[
    "if", "then", "else", "elif", "while", "until", "do", "!", "{", "}", "fi", "done", "time",
];
/// Constructs whose commands the parser does not follow: refused.
const OPAQUE: &[&str] = &["for", "case", "select", "function", "esac", "in"];

/// One simple command of a shell line: its words as written (assignments
/// in front, redirection targets and substitutions removed), and the
/// assignments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimpleCommand {
    pub assignments: Vec<String>,
    pub words: Vec<String>,
    /// The program name is produced by an expansion.
    pub dynamic_program: Option<&'static str>,
    pub col: usize,
}

/// Every simple command in a shell line, substitutions included (they come
/// after the command they appear in).
pub fn commands(line: &str) -> Result<Vec<SimpleCommand>, ParseError> {
    let mut out = Vec::new();
    collect(line, &mut out, 0)?;
    if out.is_empty() {
        return Err(ParseError::Empty);
    }
    Ok(out)
}

fn collect(line: &str, out: &mut Vec<SimpleCommand>, depth: usize) -> Result<(), ParseError> {
    if depth > 8 {
        return Err(ParseError::Syntax {
            what: "substitutions nested too deep".into(),
            col: 1,
        });
    }
    let tokens = tokenize(line)?;
    let mut nested = Vec::new();
    let mut cur: Option<SimpleCommand> = None;
    let mut skip_target = false;
    for t in tokens {
        match t {
            Token::Word { text, col, expands } => {
                if skip_target {
                    skip_target = false;
                    continue;
                }
                let c = cur.get_or_insert_with(|| SimpleCommand {
                    assignments: Vec::new(),
                    words: Vec::new(),
                    dynamic_program: None,
                    col,
                });
                if c.words.is_empty() {
                    if is_assignment(&text) {
                        c.assignments.push(text);
                        continue;
                    }
                    if LEADING_KEYWORDS.contains(&text.as_str()) && expands.is_none() {
                        continue;
                    }
                    if OPAQUE.contains(&text.as_str()) {
                        return Err(ParseError::Syntax {
                            what: format!(
                                "'{text}' (the parser does not follow its commands; write them out)"
                            ),
                            col,
                        });
                    }
                    c.dynamic_program = expands;
                    c.col = col;
                }
                c.words.push(text);
            }
            Token::Sep { .. } => {
                skip_target = false;
                if let Some(c) = cur
                    .take()
                    .filter(|c| !c.words.is_empty() || !c.assignments.is_empty())
                {
                    out.push(c);
                }
            }
            Token::Redirect { .. } => skip_target = true,
            Token::Subst { line, .. } => nested.push(line),
            Token::HereDoc { col } => {
                return Err(ParseError::Syntax {
                    what: "a here-document <<".into(),
                    col,
                });
            }
        }
    }
    if let Some(c) = cur.filter(|c| !c.words.is_empty() || !c.assignments.is_empty()) {
        out.push(c);
    }
    for n in nested {
        collect(&n, out, depth + 1)?;
    }
    Ok(())
}

/// `NAME=value`
pub fn is_assignment(word: &str) -> bool {
    match word.split_once('=') {
        Some((name, _)) => {
            !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_split_like_sh() {
        assert_eq!(argv("ls -la  /tmp").unwrap(), ["ls", "-la", "/tmp"]);
        assert_eq!(
            argv(r#"grep "a b" 'c $d' e\ f"#).unwrap(),
            ["grep", "a b", "c $d", "e f"]
        );
        assert_eq!(argv("echo 'it''s'").unwrap(), ["echo", "its"]);
        assert_eq!(argv("echo done # a comment").unwrap(), ["echo", "done"]);
    }

    #[test]
    fn shell_syntax_is_named_with_its_column() {
        let err = |l: &str| argv(l).unwrap_err().to_string();
        assert_eq!(err("ls; rm -rf x"), "the command separator ; at column 3");
        assert_eq!(err("ls && rm x"), "the command separator && at column 4");
        assert_eq!(err("cat a | sh"), "a pipe | at column 7");
        assert_eq!(err("echo $(rm x)"), "command substitution at column 6");
        assert_eq!(err("echo `rm x`"), "command substitution at column 6");
        assert_eq!(err("echo \"$(rm x)\""), "command substitution at column 7");
        assert_eq!(err("ls > out"), "the redirection > at column 4");
        assert_eq!(err("ls 2>&1"), "the redirection >& at column 5");
        assert_eq!(err("echo $HOME"), "variable expansion $ at column 6");
        assert_eq!(err("ls *.rs"), "a glob pattern at column 4");
        assert_eq!(err("ls ~"), "tilde expansion ~ at column 4");
        assert_eq!(err("ls\nrm x"), "a newline (a second command) at column 3");
        assert_eq!(
            err("echo 'x"),
            "unterminated single quote starting at column 6"
        );
        assert_eq!(argv("  "), Err(ParseError::Empty));
    }

    #[test]
    fn every_program_of_a_shell_line_is_found() {
        let progs = |l: &str| -> Vec<String> {
            commands(l)
                .unwrap()
                .into_iter()
                .map(|c| c.words[0].clone())
                .collect()
        };
        assert_eq!(
            progs("ls -l | grep x > out.txt; echo done"),
            ["ls", "grep", "echo"]
        );
        assert_eq!(progs("X=1 Y=2 env | sort"), ["env", "sort"]);
        assert_eq!(progs("echo $(whoami) `date`"), ["echo", "whoami", "date"]);
        assert_eq!(progs("echo \"$(cat $(ls))\""), ["echo", "cat", "ls"]);
        assert_eq!(progs("if true; then rm x; fi"), ["true", "rm"]);
        assert_eq!(progs("(cd /; rm x) && ls 2>/dev/null"), ["cd", "rm", "ls"]);
        assert_eq!(progs("cat <in.txt >>out.txt"), ["cat"]);
        let c = commands("$CMD x").unwrap();
        assert_eq!(c[0].dynamic_program, Some("variable expansion $"));
        assert!(commands("for f in a; do rm $f; done").is_err());
        assert!(commands("cat <<EOF\nx\nEOF").is_err());
    }
}
