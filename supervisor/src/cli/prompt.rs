//! `oictl chat`'s input: on a terminal, a line editor (arrow keys, Ctrl-R,
//! history kept in `<data>/chat_history`, readable by the user only);
//! from a pipe, plain lines.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;
use tokio::io::{AsyncBufReadExt, BufReader, Lines, Stdin};

/// Lines kept in the history file.
const HISTORY_LINES: usize = 1000;

pub(super) enum Prompt {
    /// `None` only while a line is being read on the blocking pool.
    Editor(Option<Box<DefaultEditor>>, PathBuf),
    Lines(Lines<BufReader<Stdin>>),
}

impl Prompt {
    pub(super) fn new(history: PathBuf) -> Prompt {
        if std::io::stdin().is_terminal() {
            let config = rustyline::Config::builder()
                .max_history_size(HISTORY_LINES)
                .map(|b| b.auto_add_history(true).build());
            if let Ok(Ok(mut editor)) = config.map(DefaultEditor::with_config) {
                let _ = editor.load_history(&history);
                return Prompt::Editor(Some(Box::new(editor)), history);
            }
        }
        Prompt::Lines(BufReader::new(tokio::io::stdin()).lines())
    }

    /// The next line; `None` at the end (Ctrl-D). Ctrl-C on a line being
    /// typed gives an empty one.
    pub(super) async fn line(&mut self) -> anyhow::Result<Option<String>> {
        match self {
            Prompt::Editor(slot, history) => {
                let Some(mut editor) = slot.take() else {
                    anyhow::bail!("the line editor was lost");
                };
                let (editor, read) = tokio::task::spawn_blocking(move || {
                    let read = editor.readline("> ");
                    (editor, read)
                })
                .await
                .context("reading the terminal")?;
                let line = match read {
                    Ok(l) => Some(l),
                    Err(ReadlineError::Interrupted) => Some(String::new()),
                    Err(ReadlineError::Eof) => None,
                    Err(e) => return Err(e).context("reading the terminal"),
                };
                let mut editor = editor;
                if line.as_deref().is_some_and(|l| !l.trim().is_empty()) {
                    save(&mut editor, history);
                }
                *slot = Some(editor);
                Ok(line)
            }
            Prompt::Lines(lines) => {
                eprint!("> ");
                tokio::select! {
                    l = lines.next_line() => l.context("reading standard input"),
                    _ = tokio::signal::ctrl_c() => Ok(None),
                }
            }
        }
    }
}

/// Writes the history file, private to the user (what was typed may be
/// sensitive); a data directory that is not there yet keeps none.
fn save(editor: &mut DefaultEditor, history: &std::path::Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let created = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(history);
    if created.is_ok() {
        let _ = editor.save_history(history);
    }
}
