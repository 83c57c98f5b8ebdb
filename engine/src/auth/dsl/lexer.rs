//! Tokens of the auth expression language.
//!
//! The lexer is context-sensitive in one way only: it counts parentheses. At depth 0 (the top of a
//! check) whitespace separates tokens and a run of `=!<>` is a comparison operator; inside a call's
//! parentheses both are ordinary text, so `string(/${app}/?e=${url_params[e]})` needs no quoting.
//! `$` must always open a `${name}` or `${name[key]}` placeholder; anything else is a stray `$`.

use super::{SourceMap, Span};
use std::fmt;
use std::ops::Range;

/// A comparison operator of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum CmpOp {
    /// `==`: byte strings equal (constant time).
    Eq = 0,
    /// `!=`: byte strings differ (constant time).
    Ne = 1,
    /// `<`: both sides parse as i64 and left < right.
    Lt = 2,
    /// `>`: both sides parse as i64 and left > right.
    Gt = 3,
    /// `<=`: both sides parse as i64 and left <= right.
    Le = 4,
    /// `>=`: both sides parse as i64 and left >= right.
    Ge = 5,
}

impl CmpOp {
    /// The operator for its source text.
    pub fn from_text(s: &str) -> Option<Self> {
        Some(match s {
            "==" => Self::Eq,
            "!=" => Self::Ne,
            "<" => Self::Lt,
            ">" => Self::Gt,
            "<=" => Self::Le,
            ">=" => Self::Ge,
            _ => return None,
        })
    }

    /// The operator from its `#[repr(u8)]` value (the operand of `Op::Compare`).
    pub fn from_u16(v: u16) -> Option<Self> {
        Some(match v {
            0 => Self::Eq,
            1 => Self::Ne,
            2 => Self::Lt,
            3 => Self::Gt,
            4 => Self::Le,
            5 => Self::Ge,
            _ => return None,
        })
    }

    /// The source text of the operator.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "==",
            Self::Ne => "!=",
            Self::Lt => "<",
            Self::Gt => ">",
            Self::Le => "<=",
            Self::Ge => ">=",
        }
    }
}

impl fmt::Display for CmpOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenKind {
    /// Literal text (a function name is text directly followed by `(`).
    Text(String),
    /// `${name}` or `${name[key]}`.
    Placeholder {
        /// The name before `[` or `}`.
        name: String,
        /// The key between `[` and `]`, if any.
        key: Option<String>,
    },
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `,`
    Comma,
    /// A comparison operator (only at parenthesis depth 0).
    Op(CmpOp),
}

/// A token and where it is in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// What the token is.
    pub kind: TokenKind,
    /// Where it is in the file (for messages).
    pub span: Span,
    /// The characters of the expression text it covers. Syntax that depends on two tokens
    /// touching (a call's name and `(`, adjacent items) is decided on these, never on `span`:
    /// file positions are synthetic for values the YAML locator cannot map (flow style) and
    /// skip over escapes in quoted scalars.
    pub chars: Range<usize>,
}

/// What went wrong while lexing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LexErrorKind {
    /// A `$` that does not open a placeholder, or a `$` inside one.
    #[error("stray `$`: placeholders are written `${{name}}` or `${{name[key]}}`")]
    StrayDollar,
    /// `${` without its closing `}`.
    #[error("unterminated placeholder: missing `}}`")]
    UnterminatedPlaceholder,
    /// A placeholder name that is not an identifier.
    #[error("invalid placeholder name `{0}`")]
    BadPlaceholderName(String),
    /// `${name[]}`.
    #[error("empty key in placeholder")]
    EmptyKey,
    /// `${name[key]` followed by something other than `}`.
    #[error("expected `}}` after `]` in placeholder")]
    ExpectedCloseBrace,
    /// A run of `=!<>` that is not one of `== != < > <= >=`.
    #[error("unknown operator `{0}` (expected one of == != < > <= >=)")]
    UnknownOperator(String),
    /// A `)` with no open `(`.
    #[error("unmatched `)`")]
    UnmatchedClose,
    /// A `(` never closed.
    #[error("unclosed `(`")]
    Unclosed,
}

/// A lexing error with its span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError {
    /// What went wrong.
    pub kind: LexErrorKind,
    /// Where.
    pub span: Span,
}

fn is_op_char(c: char) -> bool {
    matches!(c, '=' | '!' | '<' | '>')
}

/// Splits `text` into tokens; `map` gives each character's position in the file.
pub fn tokenize(text: &str, map: &SourceMap) -> Result<Vec<Token>, LexError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut open_parens: Vec<usize> = Vec::new();
    let mut i = 0;
    let err = |kind, start, end| LexError {
        kind,
        span: map.span(start, end),
    };
    while i < chars.len() {
        let depth0 = open_parens.is_empty();
        let c = chars[i];
        match c {
            '$' => {
                let (tok, next) = placeholder(&chars, i, map)?;
                tokens.push(tok);
                i = next;
            }
            '(' => {
                open_parens.push(i);
                tokens.push(Token {
                    kind: TokenKind::LParen,
                    span: map.span(i, i + 1),
                    chars: i..i + 1,
                });
                i += 1;
            }
            ')' => {
                if open_parens.pop().is_none() {
                    return Err(err(LexErrorKind::UnmatchedClose, i, i + 1));
                }
                tokens.push(Token {
                    kind: TokenKind::RParen,
                    span: map.span(i, i + 1),
                    chars: i..i + 1,
                });
                i += 1;
            }
            ',' => {
                tokens.push(Token {
                    kind: TokenKind::Comma,
                    span: map.span(i, i + 1),
                    chars: i..i + 1,
                });
                i += 1;
            }
            c if depth0 && c.is_whitespace() => i += 1,
            c if depth0 && is_op_char(c) => {
                let start = i;
                while i < chars.len() && is_op_char(chars[i]) {
                    i += 1;
                }
                let s: String = chars[start..i].iter().collect();
                match CmpOp::from_text(&s) {
                    Some(op) => tokens.push(Token {
                        kind: TokenKind::Op(op),
                        span: map.span(start, i),
                        chars: start..i,
                    }),
                    None => return Err(err(LexErrorKind::UnknownOperator(s), start, i)),
                }
            }
            _ => {
                let start = i;
                while i < chars.len() {
                    let c = chars[i];
                    let special = matches!(c, '$' | '(' | ')' | ',')
                        || (depth0 && (c.is_whitespace() || is_op_char(c)));
                    if special {
                        break;
                    }
                    i += 1;
                }
                tokens.push(Token {
                    kind: TokenKind::Text(chars[start..i].iter().collect()),
                    span: map.span(start, i),
                    chars: start..i,
                });
            }
        }
    }
    if let Some(&open) = open_parens.first() {
        return Err(err(LexErrorKind::Unclosed, open, open + 1));
    }
    Ok(tokens)
}

/// Lexes a placeholder starting at the `$` at `start`; returns the token and the next index.
fn placeholder(chars: &[char], start: usize, map: &SourceMap) -> Result<(Token, usize), LexError> {
    let err = |kind, s, e| LexError {
        kind,
        span: map.span(s, e),
    };
    if chars.get(start + 1) != Some(&'{') {
        return Err(err(LexErrorKind::StrayDollar, start, start + 1));
    }
    let mut i = start + 2;
    let name_start = i;
    while i < chars.len() && !matches!(chars[i], '[' | '}') {
        if chars[i] == '$' {
            return Err(err(LexErrorKind::StrayDollar, i, i + 1));
        }
        i += 1;
    }
    if i >= chars.len() {
        return Err(err(LexErrorKind::UnterminatedPlaceholder, start, i));
    }
    let name: String = chars[name_start..i].iter().collect();
    let valid_name =
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_name {
        return Err(err(
            LexErrorKind::BadPlaceholderName(name),
            name_start,
            i.max(name_start + 1),
        ));
    }
    let mut key = None;
    if chars[i] == '[' {
        i += 1;
        let key_start = i;
        while i < chars.len() && chars[i] != ']' {
            if chars[i] == '$' {
                return Err(err(LexErrorKind::StrayDollar, i, i + 1));
            }
            if chars[i] == '}' {
                return Err(err(LexErrorKind::UnterminatedPlaceholder, start, i));
            }
            i += 1;
        }
        if i >= chars.len() {
            return Err(err(LexErrorKind::UnterminatedPlaceholder, start, i));
        }
        if i == key_start {
            return Err(err(LexErrorKind::EmptyKey, key_start - 1, i + 1));
        }
        key = Some(chars[key_start..i].iter().collect());
        i += 1; // ']'
        if chars.get(i) != Some(&'}') {
            return Err(err(
                LexErrorKind::ExpectedCloseBrace,
                i.min(chars.len()),
                i + 1,
            ));
        }
    }
    i += 1; // '}'
    Ok((
        Token {
            kind: TokenKind::Placeholder { name, key },
            span: map.span(start, i),
            chars: start..i,
        },
        i,
    ))
}

#[cfg(test)]
mod tests {
    use super::super::Position;
    use super::*;

    fn lex(s: &str) -> Result<Vec<TokenKind>, (LexErrorKind, u32, u32)> {
        let map = SourceMap::single_line(s, Position::new(1, 1));
        tokenize(s, &map)
            .map(|t| t.into_iter().map(|t| t.kind).collect())
            .map_err(|e| (e.kind, e.span.start.column, e.span.end.column))
    }

    fn text(s: &str) -> TokenKind {
        TokenKind::Text(s.into())
    }

    #[test]
    fn check_tokens() {
        assert_eq!(
            lex("${url_params[publishKey]} == 123").unwrap(),
            vec![
                TokenKind::Placeholder {
                    name: "url_params".into(),
                    key: Some("publishKey".into())
                },
                TokenKind::Op(CmpOp::Eq),
                text("123"),
            ]
        );
        assert_eq!(
            lex("a<=b").unwrap(),
            vec![text("a"), TokenKind::Op(CmpOp::Le), text("b")]
        );
    }

    #[test]
    fn text_inside_parens_keeps_operators_and_spaces() {
        assert_eq!(
            lex("string(/?e=${app} x)").unwrap(),
            vec![
                text("string"),
                TokenKind::LParen,
                text("/?e="),
                TokenKind::Placeholder {
                    name: "app".into(),
                    key: None
                },
                text(" x"),
                TokenKind::RParen,
            ]
        );
    }

    #[test]
    fn errors_have_exact_spans() {
        assert_eq!(
            lex("${$url_params[expire]} < 1").unwrap_err(),
            (LexErrorKind::StrayDollar, 3, 4)
        );
        assert_eq!(lex("a $b").unwrap_err(), (LexErrorKind::StrayDollar, 3, 4));
        assert_eq!(
            lex("${url_params[a]} =! 1").unwrap_err(),
            (LexErrorKind::UnknownOperator("=!".into()), 18, 20)
        );
        assert_eq!(
            lex("${app").unwrap_err(),
            (LexErrorKind::UnterminatedPlaceholder, 1, 6)
        );
        assert_eq!(lex("f(a").unwrap_err(), (LexErrorKind::Unclosed, 2, 3));
        assert_eq!(lex("a)").unwrap_err(), (LexErrorKind::UnmatchedClose, 2, 3));
        assert_eq!(
            lex("${params[]}").unwrap_err(),
            (LexErrorKind::EmptyKey, 9, 11)
        );
    }
}
