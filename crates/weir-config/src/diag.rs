//! Diagnostics: every problem found in a configuration file, with its line and a hint, collected rather than thrown so
//! that `weir validate` shows them all at once.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: Option<PathBuf>,
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(line: usize, column: usize, message: impl Into<String>) -> Self {
        Diagnostic { file: None, line, column, message: message.into(), hint: None }
    }

    pub fn at(node: &crate::Node, message: impl Into<String>) -> Self {
        Self::new(node.line, node.column, message)
    }

    pub fn with_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    pub fn in_file(mut self, file: &Path) -> Self {
        if self.file.is_none() {
            self.file = Some(file.to_path_buf());
        }
        self
    }

    pub fn to_error(&self) -> weir_core::Error {
        let location =
            weir_core::error::Location { file: self.file.clone(), line: Some(self.line), column: Some(self.column) };
        let message = match &self.hint {
            Some(h) => format!("{} ({h})", self.message),
            None => self.message.clone(),
        };
        weir_core::Error::config(location, message)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}:", file.display())?;
        }
        write!(f, "{}:{}: {}", self.line, self.column, self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\n    hint: {h}")?;
        }
        Ok(())
    }
}

/// "did you mean `path`?" for a misspelt name, when one of the candidates is close enough.
pub fn did_you_mean<'a>(given: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(&given.to_lowercase(), &c.to_lowercase());
        if score > 0.8 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| format!("did you mean `{c}`?"))
}

/// A hint listing what is allowed, with a "did you mean" first when one is close.
pub fn suggest<'a>(given: &str, candidates: &[&'a str]) -> String {
    let list = candidates.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ");
    match did_you_mean(given, candidates.iter().copied()) {
        Some(dym) => format!("{dym} expected one of {list}"),
        None => format!("expected one of {list}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(did_you_mean("pth", ["path", "delimiter"]), Some("did you mean `path`?".into()));
        assert_eq!(did_you_mean("zzzz", ["path", "delimiter"]), None);
        assert_eq!(did_you_mean("depend_on", ["depends_on", "name"]), Some("did you mean `depends_on`?".into()));
    }
}
