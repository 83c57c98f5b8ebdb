//! Tokens -> syntax tree.
//!
//! Grammar (whitespace matters only at parenthesis depth 0, see [`super::lexer`]):
//! ```text
//! param   := operand EOF
//! check   := operand OP operand EOF
//! operand := item+                  (adjacent, no whitespace between items at depth 0)
//! item    := TEXT | PLACEHOLDER | call
//! call    := IDENT '(' [arg (',' arg)*] ')'   (IDENT is TEXT directly followed by '(')
//! arg     := item*                  (leading/trailing whitespace of the arg is trimmed)
//! ```
//! Names are not resolved here; [`super::compile`] does that.

use super::lexer::{tokenize, CmpOp, LexErrorKind, Token, TokenKind};
use super::{SourceMap, Span};

/// A syntax tree node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expr {
    /// What the node is.
    pub kind: ExprKind,
    /// Where it is.
    pub span: Span,
}

/// The kinds of node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExprKind {
    /// Literal text.
    Text(String),
    /// `${name}` or `${name[key]}`.
    Placeholder {
        /// The placeholder name.
        name: String,
        /// Its key, if any.
        key: Option<String>,
    },
    /// `name(args)`.
    Call {
        /// Function name.
        name: String,
        /// Span of the name alone.
        name_span: Span,
        /// Arguments in order.
        args: Vec<Expr>,
    },
    /// Adjacent items concatenated.
    Concat(Vec<Expr>),
}

/// A parsed check: `left op right`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckAst {
    /// Left operand.
    pub left: Expr,
    /// Comparison.
    pub op: CmpOp,
    /// Span of the operator.
    pub op_span: Span,
    /// Right operand.
    pub right: Expr,
    /// The whole check.
    pub span: Span,
}

/// What went wrong while parsing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// A lexical error.
    #[error("{0}")]
    Lex(LexErrorKind),
    /// Nothing where an operand was expected.
    #[error("expected an operand")]
    ExpectedOperand,
    /// A check without its comparison operator.
    #[error("expected a comparison operator (== != < > <= >=)")]
    ExpectedOperator,
    /// A token that does not fit here.
    #[error("unexpected {0}")]
    Unexpected(String),
    /// A parameter value may not contain a comparison.
    #[error("a comparison operator is not allowed in a param; comparisons belong in `checks`")]
    OperatorInParam,
}

/// A parse error with its span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What went wrong.
    pub kind: ParseErrorKind,
    /// Where.
    pub span: Span,
}

fn describe(t: &TokenKind) -> String {
    match t {
        TokenKind::Text(s) => format!("`{s}`"),
        TokenKind::Placeholder { .. } => "placeholder".into(),
        TokenKind::LParen => "`(`".into(),
        TokenKind::RParen => "`)`".into(),
        TokenKind::Comma => "`,`".into(),
        TokenKind::Op(op) => format!("`{op}`"),
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    end_span: Span,
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Parser {
    fn new(text: &str, map: &SourceMap) -> Result<Self, ParseError> {
        let tokens = tokenize(text, map).map_err(|e| ParseError {
            kind: ParseErrorKind::Lex(e.kind),
            span: e.span,
        })?;
        let n = text.chars().count();
        let end = map.pos(n);
        Ok(Self {
            tokens,
            pos: 0,
            end_span: Span { start: end, end },
        })
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn peek_at(&self, n: usize) -> Option<&Token> {
        self.tokens.get(self.pos + n)
    }

    fn here(&self) -> Span {
        self.peek().map_or(self.end_span, |t| t.span)
    }

    fn unexpected(&self) -> ParseError {
        match self.peek() {
            Some(t) => ParseError {
                kind: ParseErrorKind::Unexpected(describe(&t.kind)),
                span: t.span,
            },
            None => ParseError {
                kind: ParseErrorKind::Unexpected("end of expression".into()),
                span: self.end_span,
            },
        }
    }

    /// Parses items. At depth 0 items must touch (no whitespace between them).
    fn items(&mut self, top: bool) -> Result<Vec<Expr>, ParseError> {
        let mut items: Vec<Expr> = Vec::new();
        while let Some(tok) = self.peek() {
            if top {
                // The previous item ends with the token before this one.
                let prev_end = self.pos.checked_sub(1).and_then(|i| self.tokens.get(i));
                if let (Some(_), Some(prev)) = (items.last(), prev_end) {
                    if tok.chars.start != prev.chars.end {
                        break;
                    }
                }
            }
            match &tok.kind {
                TokenKind::Text(t) => {
                    let next_is_paren = matches!(
                        self.peek_at(1),
                        Some(Token { kind: TokenKind::LParen, chars, .. }) if chars.start == tok.chars.end
                    );
                    if next_is_paren {
                        let (name, name_span) = (t.clone(), tok.span);
                        if !is_ident(name.trim_start()) {
                            self.pos += 1;
                            return Err(self.unexpected());
                        }
                        let call = self.call(name.trim_start().to_string(), name_span)?;
                        items.push(call);
                    } else {
                        items.push(Expr {
                            kind: ExprKind::Text(t.clone()),
                            span: tok.span,
                        });
                        self.pos += 1;
                    }
                }
                TokenKind::Placeholder { name, key } => {
                    items.push(Expr {
                        kind: ExprKind::Placeholder {
                            name: name.clone(),
                            key: key.clone(),
                        },
                        span: tok.span,
                    });
                    self.pos += 1;
                }
                TokenKind::LParen => return Err(self.unexpected()),
                _ => break,
            }
        }
        Ok(items)
    }

    fn call(&mut self, name: String, name_span: Span) -> Result<Expr, ParseError> {
        self.pos += 2; // name and '('
        let mut args = Vec::new();
        loop {
            let mut items = self.items(false)?;
            trim_items(&mut items);
            let arg_span = items
                .first()
                .zip(items.last())
                .map(|(a, b)| a.span.to(b.span))
                .unwrap_or(self.here());
            args.push(combine(items, arg_span));
            match self.peek().map(|t| &t.kind) {
                Some(TokenKind::Comma) => self.pos += 1,
                Some(TokenKind::RParen) => {
                    let close = self.here();
                    self.pos += 1;
                    if args.len() == 1 && is_empty_text(&args[0]) {
                        args.clear();
                    }
                    return Ok(Expr {
                        kind: ExprKind::Call {
                            name,
                            name_span,
                            args,
                        },
                        span: name_span.to(close),
                    });
                }
                _ => return Err(self.unexpected()),
            }
        }
    }

    fn operand(&mut self) -> Result<Expr, ParseError> {
        let items = self.items(true)?;
        if items.is_empty() {
            return Err(match self.peek() {
                Some(t) if !matches!(t.kind, TokenKind::Op(_)) => self.unexpected(),
                _ => ParseError {
                    kind: ParseErrorKind::ExpectedOperand,
                    span: self.here(),
                },
            });
        }
        let span = items[0].span.to(items[items.len() - 1].span);
        Ok(combine(items, span))
    }
}

fn is_empty_text(e: &Expr) -> bool {
    matches!(&e.kind, ExprKind::Text(t) if t.is_empty())
}

/// Trims leading whitespace of the first text item and trailing whitespace of the last.
fn trim_items(items: &mut Vec<Expr>) {
    if let Some(Expr {
        kind: ExprKind::Text(t),
        ..
    }) = items.first_mut()
    {
        *t = t.trim_start().to_string();
    }
    if let Some(Expr {
        kind: ExprKind::Text(t),
        ..
    }) = items.last_mut()
    {
        *t = t.trim_end().to_string();
    }
    items.retain(|e| !is_empty_text(e));
}

fn combine(mut items: Vec<Expr>, span: Span) -> Expr {
    match items.len() {
        0 => Expr {
            kind: ExprKind::Text(String::new()),
            span,
        },
        1 => items.remove(0),
        _ => Expr {
            kind: ExprKind::Concat(items),
            span,
        },
    }
}

/// Parses a param value (`fn(args)` or any operand).
pub fn parse_param(text: &str, map: &SourceMap) -> Result<Expr, ParseError> {
    let mut p = Parser::new(text, map)?;
    let e = p.operand()?;
    match p.peek() {
        None => Ok(e),
        Some(Token {
            kind: TokenKind::Op(_),
            span,
            ..
        }) => Err(ParseError {
            kind: ParseErrorKind::OperatorInParam,
            span: *span,
        }),
        Some(_) => Err(p.unexpected()),
    }
}

/// Parses a check `left op right`.
pub fn parse_check(text: &str, map: &SourceMap) -> Result<CheckAst, ParseError> {
    let mut p = Parser::new(text, map)?;
    let left = p.operand()?;
    let (op, op_span) = match p.peek() {
        Some(Token {
            kind: TokenKind::Op(op),
            span,
            ..
        }) => (*op, *span),
        Some(_) => {
            return Err(ParseError {
                kind: ParseErrorKind::ExpectedOperator,
                span: p.here(),
            })
        }
        None => {
            return Err(ParseError {
                kind: ParseErrorKind::ExpectedOperator,
                span: p.end_span,
            })
        }
    };
    p.pos += 1;
    let right = p.operand()?;
    if p.peek().is_some() {
        return Err(p.unexpected());
    }
    Ok(CheckAst {
        span: left.span.to(right.span),
        left,
        op,
        op_span,
        right,
    })
}

#[cfg(test)]
mod tests {
    use super::super::Position;
    use super::*;

    fn map(s: &str) -> SourceMap {
        SourceMap::single_line(s, Position::new(1, 1))
    }

    fn err_check(s: &str) -> (ParseErrorKind, u32, u32) {
        let e = parse_check(s, &map(s)).unwrap_err();
        (e.kind, e.span.start.column, e.span.end.column)
    }

    #[test]
    fn parses_call_with_template_args() {
        let s = "hmac_sha1(${params[SecretKey]}, ${params[SignStr]})";
        let e = parse_param(s, &map(s)).unwrap();
        let ExprKind::Call { name, args, .. } = e.kind else {
            panic!("not a call")
        };
        assert_eq!(name, "hmac_sha1");
        assert_eq!(args.len(), 2);
        assert!(matches!(&args[1].kind, ExprKind::Placeholder { name, .. } if name == "params"));
        assert_eq!(e.span.start.column, 1);
        assert_eq!(e.span.end.column, s.len() as u32 + 1);
    }

    #[test]
    fn zero_and_empty_args() {
        let s = "get_time()";
        let e = parse_param(s, &map(s)).unwrap();
        assert!(matches!(e.kind, ExprKind::Call { ref args, .. } if args.is_empty()));
        let s = "f(a,)";
        let e = parse_param(s, &map(s)).unwrap();
        assert!(matches!(e.kind, ExprKind::Call { ref args, .. } if args.len() == 2));
    }

    #[test]
    fn concat_operands() {
        let s = "string(/${app}/x)";
        let e = parse_param(s, &map(s)).unwrap();
        let ExprKind::Call { args, .. } = e.kind else {
            panic!()
        };
        assert!(matches!(&args[0].kind, ExprKind::Concat(v) if v.len() == 3));
    }

    #[test]
    fn check_errors() {
        assert_eq!(
            err_check("${a} ${b}"),
            (ParseErrorKind::ExpectedOperator, 6, 10)
        );
        assert_eq!(
            err_check("${a} =="),
            (ParseErrorKind::ExpectedOperand, 8, 8)
        );
        assert_eq!(err_check("== 1"), (ParseErrorKind::ExpectedOperand, 1, 3));
        assert_eq!(
            err_check("a == b c"),
            (ParseErrorKind::Unexpected("`c`".into()), 8, 9)
        );
        let s = "md5_upper(x) == 1";
        let c = parse_check(s, &map(s)).unwrap();
        assert_eq!(c.op, CmpOp::Eq);
        assert_eq!((c.op_span.start.column, c.op_span.end.column), (14, 16));
    }
}
