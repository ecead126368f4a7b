//! Where each piece of config came from, so every error can say `file:line:col`.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

/// One config file as read from disk.
#[derive(Debug)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

impl SourceFile {
    /// 1-based line and column of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        (line, col)
    }
}

/// A config item with the file it came from and its byte span there.
#[derive(Debug, Clone)]
pub struct Located<T> {
    pub value: T,
    pub file: Arc<SourceFile>,
    pub span: Range<usize>,
}

impl<T> Located<T> {
    /// An error about this item, at its start.
    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::at(&self.file, self.span.clone(), message)
    }

    /// An error about a part of this item (a `toml::Spanned` field inside it).
    pub fn error_at(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        ConfigError::at(&self.file, span, message)
    }
}

/// One problem in the config, printed as `file:line:col: message` like a compiler's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl ConfigError {
    pub fn at(file: &SourceFile, span: Range<usize>, message: impl Into<String>) -> Self {
        let (line, col) = file.line_col(span.start);
        ConfigError {
            path: file.path.clone(),
            line,
            col,
            message: message.into(),
        }
    }

    /// An error about a whole file (unreadable, empty directory).
    pub fn file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            line: 1,
            col: 1,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let file = SourceFile {
            path: "a.toml".into(),
            text: "a = 1\nbb = 2\n".into(),
        };
        assert_eq!(file.line_col(0), (1, 1));
        assert_eq!(file.line_col(6), (2, 1));
        assert_eq!(file.line_col(8), (2, 3));
    }
}
