//! The interactive terminal: `oxvirsh` without a command.

use std::process::ExitCode;

use clap::Parser;

use super::{Cli, Flow, Session, clap_error_text, execute, normalize_args};

/// Splits a line into commands (`;`) and words, honouring quotes and
/// backslashes as virsh's shell does.
pub fn split(line: &str) -> Vec<Vec<String>> {
    let mut cmds = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    in_word = true;
                }
            }
            (None, ';') => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
                if !words.is_empty() {
                    cmds.push(std::mem::take(&mut words));
                }
            }
            (None, '#') if !in_word => break,
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    if !words.is_empty() {
        cmds.push(words);
    }
    cmds
}

/// Runs one line; false when the user asked to quit.
pub fn run_line(s: &mut Session, line: &str) -> bool {
    for words in split(line) {
        let mut argv = vec!["oxvirsh".to_string()];
        argv.extend(words);
        let argv = normalize_args(argv);
        match Cli::try_parse_from(&argv) {
            Ok(Cli {
                command: Some(cmd), ..
            }) => {
                if let (_, Flow::Quit) = execute(s, &cmd) {
                    return false;
                }
            }
            Ok(_) => {}
            Err(e) => {
                use clap::error::ErrorKind;
                if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                    let _ = e.print();
                } else {
                    esayln!("error: {}", clap_error_text(&e));
                }
            }
        }
    }
    true
}

pub fn interactive(s: &mut Session) -> ExitCode {
    if !s.quiet {
        sayln!("Welcome to oxvirsh, the virtualization interactive terminal.");
        sayln!();
        sayln!("Type:  'help' for help with commands");
        sayln!("       'quit' to quit");
        sayln!();
    }
    let prompt = "oxvirsh # ";
    let mut ed = match rustyline::DefaultEditor::new() {
        Ok(e) => e,
        Err(e) => {
            esayln!("error: cannot start the line editor: {e}");
            return ExitCode::FAILURE;
        }
    };
    loop {
        match ed.readline(prompt) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = ed.add_history_entry(line.as_str());
                }
                if !run_line(s, &line) {
                    break;
                }
            }
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(_) => {
                sayln!();
                break;
            }
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitting() {
        assert_eq!(
            split("list --all; dominfo 'my vm'"),
            vec![
                vec!["list".to_string(), "--all".to_string()],
                vec!["dominfo".to_string(), "my vm".to_string()]
            ]
        );
        assert!(split("  # comment").is_empty());
    }
}
