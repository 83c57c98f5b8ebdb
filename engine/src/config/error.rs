use std::fmt;

/// A configuration the engine refuses to start with. Rendered as `file:line:column: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read at all.
    Read { file: String, reason: String },
    /// The file was read but is wrong at a known place.
    At {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
}

impl ConfigError {
    pub(super) fn from_yaml(file: &str, err: &serde_yaml_ng::Error) -> Self {
        let (line, column) = err
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((1, 1));
        // serde_yaml_ng appends " at line X column Y" to its own message; we lead with it instead.
        let mut message = err.to_string();
        if let Some(cut) = message.find(" at line ") {
            message.truncate(cut);
        }
        ConfigError::At {
            file: file.to_owned(),
            line,
            column,
            message,
        }
    }

    /// A value that parsed but is not acceptable; points at the line that sets `key`.
    pub(super) fn invalid(file: &str, text: &str, key: &str, reason: &str) -> Self {
        let line = text
            .lines()
            .position(|l| l.trim_start().starts_with(&format!("{key}:")))
            .map_or(1, |i| i + 1);
        ConfigError::At {
            file: file.to_owned(),
            line,
            column: 1,
            message: format!("{key}: {reason}"),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { file, reason } => write!(f, "{file}: cannot read: {reason}"),
            ConfigError::At {
                file,
                line,
                column,
                message,
            } => write!(f, "{file}:{line}:{column}: {message}"),
        }
    }
}

impl std::error::Error for ConfigError {}
