//! How an error is shown to a person: its message, each distinct cause, and the hint when
//! one is known. `main` prints it after `error: `; the agent's health answers and the
//! rotation log use it as it is, so every layer words a failure the same way.

use std::error::Error;
use std::fmt;

/// Displays `error`, its distinct causes and `hint`, one per line.
pub struct Chain<'a> {
    error: &'a dyn Error,
    hint: Option<String>,
}

impl<'a> Chain<'a> {
    pub fn new(error: &'a dyn Error, hint: Option<String>) -> Self {
        Chain { error, hint }
    }
}

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let top = self.error.to_string();
        f.write_str(&top)?;
        let mut seen = top;
        let mut cause = self.error.source();
        while let Some(c) = cause {
            let text = c.to_string();
            // Transparent wrappers repeat their inner message; print each text once.
            if !seen.contains(&text) {
                write!(f, "\n  caused by: {text}")?;
                seen = text;
            }
            cause = c.source();
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn causes_and_hint_follow_the_message() {
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(
            Chain::new(&e, Some("do this".into())).to_string(),
            "outer\n  caused by: inner\n  hint: do this"
        );
        assert_eq!(
            Chain::new(&e, None).to_string(),
            "outer\n  caused by: inner"
        );
    }
}
