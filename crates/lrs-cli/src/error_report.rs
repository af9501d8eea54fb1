//! How the `lrs` binary prints a failure: `error: <message>`, then one `caused by:` line per
//! cause that the lines above do not already say. Library errors often quote their cause in
//! their own message (`file.toml: No such file …`) and also expose it as `source()`; printing
//! the whole chain as is would say every such cause twice.

use std::process::ExitCode;

/// The lines to print for `err`: its message, then each cause not already contained in a
/// line printed before it.
pub fn render(err: &anyhow::Error) -> String {
    let mut lines: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        let text = text.trim();
        if text.is_empty() || lines.iter().any(|l| l.contains(text)) {
            continue;
        }
        lines.push(text.to_string());
    }
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        if i == 0 {
            out.push_str("error: ");
        } else {
            out.push_str("\n  caused by: ");
        }
        out.push_str(line);
    }
    out
}

/// Exit status 0 for `Ok`; otherwise prints [`render`] to stderr and exits with status 1.
pub fn exit_with(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", render(&e));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapped(std::io::Error);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "config.toml: {}", self.0)
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_cause_quoted_in_the_message_is_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let e = anyhow::Error::new(Wrapped(io));
        assert_eq!(render(&e), "error: config.toml: No such file or directory");

        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let e = anyhow::Error::new(io).context("reading the config");
        assert_eq!(
            render(&e),
            "error: reading the config\n  caused by: No such file or directory"
        );
    }
}
