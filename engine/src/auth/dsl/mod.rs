//! The per-domain auth expression language (`publish_auth_check` / `play_auth_check`).
//!
//! Pipeline, all at config load except the last step:
//! [`lexer`] (text -> tokens with spans) -> [`parser`] (tokens -> AST) -> [`compile`] (names resolved,
//! params ordered topologically into slots, flat bytecode with a source map) -> [`vm`] (run per request).
//!
//! Every token, node and instruction carries a [`Span`] whose positions are those of the expression
//! *inside the domain file* (the caller passes a [`SourceMap`] that maps each character of the
//! expression string to its line and column in the file), so errors and `auth explain` point at the
//! text the operator wrote.
#![forbid(unsafe_code)]

pub mod compile;
pub mod lexer;
pub mod parser;
pub mod vm;

use std::fmt;
use std::path::PathBuf;

/// A 1-based line and column (counted in characters) in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    /// 1-based line number.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
}

impl Position {
    /// A position from a 1-based line and column.
    pub const fn new(line: u32, column: u32) -> Self {
        Self { line, column }
    }
}

/// A range of source text: `start` is the first character, `end` the position just after the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// Position of the first character.
    pub start: Position,
    /// Position just past the last character (exclusive).
    pub end: Position,
}

impl Span {
    /// The smallest span covering both `self` and `other`.
    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

/// Maps each character index of an expression string to its position in the file it came from.
///
/// Invariant: `positions.len() == expression.chars().count() + 1`; the last entry is the position
/// just after the expression (used for "unexpected end" errors and exclusive span ends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceMap {
    positions: Vec<Position>,
}

impl SourceMap {
    /// A map for an expression that sits on one line starting at `start`, one column per character.
    pub fn single_line(text: &str, start: Position) -> Self {
        let n = text.chars().count();
        let positions = (0..=n)
            .map(|i| Position::new(start.line, start.column.saturating_add(i as u32)))
            .collect();
        Self { positions }
    }

    /// A map from explicit positions; `positions` must hold one entry per character plus the end.
    pub fn from_positions(positions: Vec<Position>) -> Self {
        Self { positions }
    }

    /// The position of character `index` (clamped to the end).
    pub fn pos(&self, index: usize) -> Position {
        let last = self.positions.len().saturating_sub(1);
        self.positions
            .get(index.min(last))
            .copied()
            .unwrap_or_default()
    }

    /// The span of characters `start..end` (exclusive end). The end position is the one just after
    /// character `end - 1`, so a span never runs onto the next line of the file.
    pub fn span(&self, start: usize, end: usize) -> Span {
        let start_pos = self.pos(start);
        let end_pos = if end > start {
            let p = self.pos(end - 1);
            Position::new(p.line, p.column + 1)
        } else {
            Position::new(start_pos.line, start_pos.column + 1)
        };
        Span {
            start: start_pos,
            end: end_pos,
        }
    }
}

/// A located error or note, rendered `file:line:column: message`, the source line and a caret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file the text came from.
    pub file: PathBuf,
    /// Where in the file.
    pub span: Span,
    /// What is wrong (lowercase, no trailing period).
    pub message: String,
    /// The full text of line `span.start.line`, for the caret display.
    pub source_line: String,
}

impl Diagnostic {
    /// Builds a diagnostic, taking the source line from the full file text.
    pub fn new(file: impl Into<PathBuf>, file_text: &str, span: Span, message: String) -> Self {
        let source_line = file_text
            .lines()
            .nth(span.start.line.saturating_sub(1) as usize)
            .unwrap_or("")
            .to_string();
        Self {
            file: file.into(),
            span,
            message,
            source_line,
        }
    }

    /// The source line and a caret line under the span (no trailing newline).
    pub fn snippet(&self) -> String {
        caret_snippet(&self.source_line, self.span)
    }
}

/// Renders `source_line` and a `^^^` line under `span` (columns counted in characters; tabs kept
/// so the caret lines up).
pub fn caret_snippet(source_line: &str, span: Span) -> String {
    let start = span.start.column.max(1) as usize;
    let width = if span.end.line == span.start.line && span.end.column > span.start.column {
        (span.end.column - span.start.column) as usize
    } else {
        source_line.chars().count().saturating_sub(start - 1).max(1)
    };
    let mut caret: String = source_line
        .chars()
        .take(start - 1)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let pad = (start - 1).saturating_sub(caret.chars().count());
    caret.push_str(&" ".repeat(pad));
    caret.push_str(&"^".repeat(width));
    format!("    {source_line}\n    {caret}")
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}\n{}",
            self.file.display(),
            self.span.start.line,
            self.span.start.column,
            self.message,
            self.snippet()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caret_under_span() {
        let span = Span {
            start: Position::new(3, 5),
            end: Position::new(3, 8),
        };
        let d = Diagnostic::new("d.yaml", "a\nb\n  - abcdef\n", span, "bad".into());
        assert_eq!(
            d.to_string(),
            "d.yaml:3:5: bad\n      - abcdef\n        ^^^"
        );
    }

    #[test]
    fn source_map_spans() {
        let m = SourceMap::single_line("abc", Position::new(2, 10));
        assert_eq!(m.pos(0), Position::new(2, 10));
        assert_eq!(m.pos(3), Position::new(2, 13));
        assert_eq!(
            m.span(1, 3),
            Span {
                start: Position::new(2, 11),
                end: Position::new(2, 13)
            }
        );
    }
}
