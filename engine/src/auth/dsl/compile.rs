//! Syntax tree -> bytecode.
//!
//! Every placeholder, function name, argument count and `${params[x]}` reference is resolved here;
//! params are ordered topologically into slots (a slot only refers to lower slots), so the VM can
//! evaluate them lazily and at most once per request. The output is a flat [`Instr`] array with a
//! parallel source map (`spans[i]` is the text instruction `i` came from).

use super::lexer::CmpOp;
use super::parser::{parse_check, parse_param, CheckAst, Expr, ExprKind, ParseErrorKind};
use super::{SourceMap, Span};
use std::ops::Range;

/// A bytecode operation. Each instruction is an `Op` and one `u16` operand, `arg`.
///
/// The VM is a stack machine over byte strings; a check's code leaves nothing on the stack and
/// ends with exactly one `Compare`; a param's code leaves exactly one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    /// Push `constants[arg]`.
    PushConst = 0,
    /// Push the request variable `arg` (a [`Var`]: domain, app, stream name, stream type).
    LoadVar = 1,
    /// Push the percent-decoded URL query parameter named `constants[arg]`; empty if absent.
    LoadUrlParam = 2,
    /// Push the request header named `constants[arg]` (matched case-insensitively); empty if absent.
    LoadHeader = 3,
    /// Push the value of param slot `arg`, evaluating it first if this request has not yet.
    LoadParam = 4,
    /// Call builtin `arg` (a [`Builtin`]): pop its arguments (last argument on top), push the result.
    Call = 5,
    /// Pop `arg` values and push their concatenation (first popped is last in the result).
    Concat = 6,
    /// Pop right, then left; compare them with `arg & 0xff` (a [`super::lexer::CmpOp`]); the result
    /// ends the check. `arg >> 8` is a [`TimeGuard`]: for a numeric comparison against
    /// `get_time()`, which side is the client's time and must pass `vm::guard_time` first.
    Compare = 7,
}

/// One instruction: an op and its operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instr {
    /// The operation.
    pub op: Op,
    /// Its operand (meaning per [`Op`]).
    pub arg: u16,
}

/// Which side of a numeric comparison with `get_time()` is the client's time (an expiry or a
/// signing time). That side is refused unless it is a decimal time as a signer writes it and no
/// later than the longest window a signer may issue, so an expiry cannot be pushed to the far
/// future (issue 14: URLs that never expire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum TimeGuard {
    /// Not a comparison with the time (or both sides use it).
    None = 0,
    /// The left side is the client's time.
    Left = 1,
    /// The right side is the client's time.
    Right = 2,
}

impl TimeGuard {
    /// The guard from `Compare`'s operand.
    pub fn from_arg(arg: u16) -> Self {
        match arg >> 8 {
            1 => Self::Left,
            2 => Self::Right,
            _ => Self::None,
        }
    }
}

/// Whether `e`'s value depends on `get_time()` (directly or through params; `time_of` is indexed
/// by param in file order and filled for every param `e` may reference).
fn uses_time(e: &Expr, names: &[&str], time_of: &[bool]) -> bool {
    match &e.kind {
        ExprKind::Text(_) => false,
        ExprKind::Concat(items) => items.iter().any(|i| uses_time(i, names, time_of)),
        ExprKind::Call { name, args, .. } => {
            Builtin::from_name(name) == Some(Builtin::GetTime)
                || args.iter().any(|a| uses_time(a, names, time_of))
        }
        ExprKind::Placeholder { name, key } => {
            name == "params"
                && key.as_ref().is_some_and(|k| {
                    names
                        .iter()
                        .position(|p| p == k)
                        .and_then(|i| time_of.get(i).copied())
                        .unwrap_or(false)
                })
        }
    }
}

/// Request variables available as `${name}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Var {
    /// `${domain}`: the request's domain (vhost).
    Domain = 0,
    /// `${app}`.
    App = 1,
    /// `${stream_name}`.
    StreamName = 2,
    /// `${stream_type}`: `rtmp`, `flv` or `hls`.
    StreamType = 3,
}

impl Var {
    const ALL: [Var; 4] = [Var::Domain, Var::App, Var::StreamName, Var::StreamType];

    fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "domain" => Self::Domain,
            "app" => Self::App,
            "stream_name" => Self::StreamName,
            "stream_type" => Self::StreamType,
            _ => return None,
        })
    }

    /// The variable for an `Op::LoadVar` operand.
    pub fn from_u16(v: u16) -> Option<Self> {
        Self::ALL.get(usize::from(v)).copied()
    }
}

/// Built-in functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Builtin {
    /// `string(x)`: `x` itself.
    String = 0,
    /// `get_time()`: the request time, Unix seconds in decimal.
    GetTime = 1,
    /// `md5_upper(x)`: MD5 of `x` as upper-case hex.
    Md5Upper = 2,
    /// `md5_lower(x)`: MD5 of `x` as lower-case hex.
    Md5Lower = 3,
    /// `hmac_sha1(key, message)`: raw 20-byte HMAC-SHA1.
    HmacSha1 = 4,
    /// `bin_to_hex(x)`: upper-case hex of the bytes of `x`.
    BinToHex = 5,
    /// `base64(x)`: standard base64 with padding.
    Base64 = 6,
    /// `add(a, b)`: i64 sum in decimal; fails on non-numbers or overflow.
    Add = 7,
    /// `sub(a, b)`: i64 difference in decimal; fails on non-numbers or overflow.
    Sub = 8,
}

impl Builtin {
    const ALL: [Builtin; 9] = [
        Builtin::String,
        Builtin::GetTime,
        Builtin::Md5Upper,
        Builtin::Md5Lower,
        Builtin::HmacSha1,
        Builtin::BinToHex,
        Builtin::Base64,
        Builtin::Add,
        Builtin::Sub,
    ];

    /// The builtin with this name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|b| b.name() == s)
    }

    /// The builtin for an `Op::Call` operand.
    pub fn from_u16(v: u16) -> Option<Self> {
        Self::ALL.get(usize::from(v)).copied()
    }

    /// Its name in the language.
    pub fn name(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::GetTime => "get_time",
            Self::Md5Upper => "md5_upper",
            Self::Md5Lower => "md5_lower",
            Self::HmacSha1 => "hmac_sha1",
            Self::BinToHex => "bin_to_hex",
            Self::Base64 => "base64",
            Self::Add => "add",
            Self::Sub => "sub",
        }
    }

    /// How many arguments it takes.
    pub fn arity(self) -> usize {
        match self {
            Self::GetTime => 0,
            Self::String | Self::Md5Upper | Self::Md5Lower | Self::BinToHex | Self::Base64 => 1,
            Self::HmacSha1 | Self::Add | Self::Sub => 2,
        }
    }
}

/// What is wrong with an expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompileErrorKind {
    /// A syntax error.
    #[error("{0}")]
    Parse(ParseErrorKind),
    /// A function that does not exist.
    #[error("unknown function `{0}`")]
    UnknownFunction(String),
    /// A call with the wrong number of arguments.
    #[error("`{name}` takes {expected} argument(s), got {got}")]
    WrongArgCount {
        /// The function.
        name: &'static str,
        /// Its arity.
        expected: usize,
        /// Arguments given.
        got: usize,
    },
    /// `${x}` where `x` is not a known placeholder.
    #[error("unknown placeholder `${{{0}}}` (expected domain, app, stream_name, stream_type, url_params[k], header_params[k] or params[k])")]
    UnknownPlaceholder(String),
    /// `${url_params}` without `[key]`.
    #[error("placeholder `{0}` needs a key: `${{{0}[name]}}`")]
    MissingKey(String),
    /// `${app[x]}`.
    #[error("placeholder `{0}` takes no key")]
    UnexpectedKey(String),
    /// `${params[x]}` where no param `x` is defined.
    #[error("undefined param `{0}`")]
    UnknownParam(String),
    /// Params that depend on each other.
    #[error("cycle between params: {0}")]
    ParamCycle(String),
    /// More instructions, constants or params than the bytecode can address.
    #[error("expression program too large")]
    TooLarge,
}

/// A compile error with its exact span in the domain file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct CompileError {
    /// What is wrong.
    pub kind: CompileErrorKind,
    /// Where.
    pub span: Span,
}

/// A param as written: `name: value`, with the value's source map.
#[derive(Debug, Clone)]
pub struct ParamSource {
    /// The param's name (the YAML key).
    pub name: String,
    /// The value text (YAML scalar, decoded).
    pub text: String,
    /// Where each character of `text` is in the file.
    pub map: SourceMap,
}

/// A check as written, with its source map.
#[derive(Debug, Clone)]
pub struct CheckSource {
    /// The check text (YAML scalar, decoded).
    pub text: String,
    /// Where each character of `text` is in the file.
    pub map: SourceMap,
}

/// A compiled param slot.
#[derive(Debug, Clone)]
pub struct ParamCode {
    /// The param's name.
    pub name: String,
    /// Its code in [`Program::code`].
    pub code: Range<usize>,
    /// The value's span.
    pub span: Span,
}

/// A compiled check.
#[derive(Debug, Clone)]
pub struct CheckCode {
    /// The check as written.
    pub text: String,
    /// Its code in [`Program::code`] (ends with `Op::Compare`).
    pub code: Range<usize>,
    /// The whole check's span.
    pub span: Span,
}

/// A compiled `*_auth_check`: immutable, shared by every request.
#[derive(Debug, Clone, Default)]
pub struct Program {
    /// The flat instruction array.
    pub code: Vec<Instr>,
    /// Source map: `spans[i]` is where `code[i]` came from.
    pub spans: Vec<Span>,
    /// Constant pool (literal text, parameter and header names).
    pub constants: Vec<Box<[u8]>>,
    /// Param slots in topological order (slot `i` only loads slots `< i`).
    pub params: Vec<ParamCode>,
    /// Checks in file order; all must hold.
    pub checks: Vec<CheckCode>,
}

impl Program {
    /// URL parameters loaded by a check that compares with `==` or `!=`: the tokens and
    /// signatures a client sends, which must never be shown.
    pub fn equality_url_params(&self) -> Vec<String> {
        let mut names = Vec::new();
        for check in &self.checks {
            let code = self.code.get(check.code.clone()).unwrap_or_default();
            let equality = code.last().is_some_and(|i| {
                i.op == Op::Compare
                    && matches!(CmpOp::from_u16(i.arg & 0xff), Some(CmpOp::Eq | CmpOp::Ne))
            });
            if !equality {
                continue;
            }
            for i in code.iter().filter(|i| i.op == Op::LoadUrlParam) {
                if let Some(c) = self.constants.get(usize::from(i.arg)) {
                    names.push(String::from_utf8_lossy(c).into_owned());
                }
            }
        }
        names
    }
}

fn err<T>(kind: CompileErrorKind, span: Span) -> Result<T, CompileError> {
    Err(CompileError { kind, span })
}

/// Resolves names in `e` (file order) and collects `${params[x]}` references.
fn resolve(
    e: &Expr,
    param_names: &[&str],
    refs: &mut Vec<(usize, Span)>,
) -> Result<(), CompileError> {
    match &e.kind {
        ExprKind::Text(_) => Ok(()),
        ExprKind::Concat(items) => items.iter().try_for_each(|i| resolve(i, param_names, refs)),
        ExprKind::Call {
            name,
            name_span,
            args,
        } => {
            let Some(b) = Builtin::from_name(name) else {
                return err(CompileErrorKind::UnknownFunction(name.clone()), *name_span);
            };
            if args.len() != b.arity() {
                return err(
                    CompileErrorKind::WrongArgCount {
                        name: b.name(),
                        expected: b.arity(),
                        got: args.len(),
                    },
                    e.span,
                );
            }
            args.iter().try_for_each(|a| resolve(a, param_names, refs))
        }
        ExprKind::Placeholder { name, key } => match (name.as_str(), key) {
            (n, Some(_)) if Var::from_name(n).is_some() => {
                err(CompileErrorKind::UnexpectedKey(n.into()), e.span)
            }
            (n, None) if Var::from_name(n).is_some() => Ok(()),
            ("url_params" | "header_params" | "params", None) => {
                err(CompileErrorKind::MissingKey(name.clone()), e.span)
            }
            ("url_params" | "header_params", Some(_)) => Ok(()),
            ("params", Some(k)) => match param_names.iter().position(|p| p == k) {
                Some(i) => {
                    refs.push((i, e.span));
                    Ok(())
                }
                None => err(CompileErrorKind::UnknownParam(k.clone()), e.span),
            },
            _ => err(CompileErrorKind::UnknownPlaceholder(name.clone()), e.span),
        },
    }
}

struct Emitter {
    program: Program,
    /// `slot_of[param index in file order]`, filled as params are emitted.
    slot_of: Vec<usize>,
}

fn to_u16(n: usize, span: Span) -> Result<u16, CompileError> {
    u16::try_from(n).map_err(|_| CompileError {
        kind: CompileErrorKind::TooLarge,
        span,
    })
}

impl Emitter {
    fn push(&mut self, op: Op, arg: u16, span: Span) {
        self.program.code.push(Instr { op, arg });
        self.program.spans.push(span);
    }

    fn constant(&mut self, bytes: &[u8], span: Span) -> Result<u16, CompileError> {
        let idx = match self.program.constants.iter().position(|c| &**c == bytes) {
            Some(i) => i,
            None => {
                self.program.constants.push(bytes.into());
                self.program.constants.len() - 1
            }
        };
        to_u16(idx, span)
    }

    fn expr(&mut self, e: &Expr, param_names: &[&str]) -> Result<(), CompileError> {
        match &e.kind {
            ExprKind::Text(t) => {
                let c = self.constant(t.as_bytes(), e.span)?;
                self.push(Op::PushConst, c, e.span);
            }
            ExprKind::Concat(items) => {
                for i in items {
                    self.expr(i, param_names)?;
                }
                let n = to_u16(items.len(), e.span)?;
                self.push(Op::Concat, n, e.span);
            }
            ExprKind::Call { name, args, .. } => {
                for a in args {
                    self.expr(a, param_names)?;
                }
                let Some(b) = Builtin::from_name(name) else {
                    return err(CompileErrorKind::UnknownFunction(name.clone()), e.span);
                };
                self.push(Op::Call, b as u16, e.span);
            }
            ExprKind::Placeholder { name, key } => match (Var::from_name(name), key) {
                (Some(v), None) => self.push(Op::LoadVar, v as u16, e.span),
                (None, Some(k)) if name == "url_params" => {
                    let c = self.constant(k.as_bytes(), e.span)?;
                    self.push(Op::LoadUrlParam, c, e.span);
                }
                (None, Some(k)) if name == "header_params" => {
                    let c = self.constant(k.to_ascii_lowercase().as_bytes(), e.span)?;
                    self.push(Op::LoadHeader, c, e.span);
                }
                (None, Some(k)) if name == "params" => {
                    let slot = param_names
                        .iter()
                        .position(|p| p == k)
                        .and_then(|i| self.slot_of.get(i).copied())
                        .filter(|&s| s != usize::MAX);
                    let Some(slot) = slot else {
                        return err(CompileErrorKind::UnknownParam(k.clone()), e.span);
                    };
                    let s = to_u16(slot, e.span)?;
                    self.push(Op::LoadParam, s, e.span);
                }
                _ => return err(CompileErrorKind::UnknownPlaceholder(name.clone()), e.span),
            },
        }
        Ok(())
    }
}

/// Compiles one `*_auth_check` block: `params` in file order and `checks` in file order.
pub fn compile(params: &[ParamSource], checks: &[CheckSource]) -> Result<Program, CompileError> {
    let names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
    // Pass 1, file order: parse params and resolve their names.
    let mut asts = Vec::with_capacity(params.len());
    let mut deps: Vec<Vec<(usize, Span)>> = Vec::with_capacity(params.len());
    for p in params {
        let ast = parse_param(&p.text, &p.map).map_err(|e| CompileError {
            kind: CompileErrorKind::Parse(e.kind),
            span: e.span,
        })?;
        let mut refs = Vec::new();
        resolve(&ast, &names, &mut refs)?;
        asts.push(ast);
        deps.push(refs);
    }
    // Pass 2: topological order (depth-first, file order); a back edge is a cycle.
    let order = topo_order(&names, &deps)?;
    // Pass 3, file order: parse checks and resolve names.
    let mut check_asts: Vec<CheckAst> = Vec::with_capacity(checks.len());
    for c in checks {
        let ast = parse_check(&c.text, &c.map).map_err(|e| CompileError {
            kind: CompileErrorKind::Parse(e.kind),
            span: e.span,
        })?;
        let mut refs = Vec::new();
        resolve(&ast.left, &names, &mut refs)?;
        resolve(&ast.right, &names, &mut refs)?;
        check_asts.push(ast);
    }
    // Pass 4: emit params in slot order, then checks.
    let mut em = Emitter {
        program: Program::default(),
        slot_of: vec![usize::MAX; params.len()],
    };
    let mut time_of = vec![false; params.len()];
    for (slot, &i) in order.iter().enumerate() {
        time_of[i] = uses_time(&asts[i], &names, &time_of);
        let start = em.program.code.len();
        em.expr(&asts[i], &names)?;
        em.slot_of[i] = slot;
        em.program.params.push(ParamCode {
            name: params[i].name.clone(),
            code: start..em.program.code.len(),
            span: asts[i].span,
        });
    }
    for (ast, src) in check_asts.iter().zip(checks) {
        let start = em.program.code.len();
        em.expr(&ast.left, &names)?;
        em.expr(&ast.right, &names)?;
        let numeric = !matches!(ast.op, CmpOp::Eq | CmpOp::Ne);
        let guard = match (
            uses_time(&ast.left, &names, &time_of),
            uses_time(&ast.right, &names, &time_of),
        ) {
            (false, true) if numeric => TimeGuard::Left,
            (true, false) if numeric => TimeGuard::Right,
            _ => TimeGuard::None,
        };
        em.push(Op::Compare, ast.op as u16 | (guard as u16) << 8, ast.span);
        em.program.checks.push(CheckCode {
            text: src.text.clone(),
            code: start..em.program.code.len(),
            span: ast.span,
        });
    }
    to_u16(em.program.code.len(), Span::default())?;
    Ok(em.program)
}

/// Orders params so each comes after every param it references.
fn topo_order(names: &[&str], deps: &[Vec<(usize, Span)>]) -> Result<Vec<usize>, CompileError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnStack,
        Done,
    }
    let mut mark = vec![Mark::New; names.len()];
    let mut order = Vec::with_capacity(names.len());
    for root in 0..names.len() {
        if mark[root] != Mark::New {
            continue;
        }
        // Explicit stack of (node, next dependency index) so deep chains cannot overflow.
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        mark[root] = Mark::OnStack;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&(dep, span)) = deps[node].get(*next) {
                *next += 1;
                match mark[dep] {
                    Mark::Done => {}
                    Mark::New => {
                        mark[dep] = Mark::OnStack;
                        stack.push((dep, 0));
                    }
                    Mark::OnStack => {
                        let from = stack.iter().position(|&(n, _)| n == dep).unwrap_or(0);
                        let mut path: Vec<&str> =
                            stack[from..].iter().map(|&(n, _)| names[n]).collect();
                        path.push(names[dep]);
                        return err(CompileErrorKind::ParamCycle(path.join(" -> ")), span);
                    }
                }
            } else {
                mark[node] = Mark::Done;
                order.push(node);
                stack.pop();
            }
        }
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::super::Position;
    use super::*;

    pub(crate) fn param(name: &str, text: &str, line: u32) -> ParamSource {
        ParamSource {
            name: name.into(),
            text: text.into(),
            map: SourceMap::single_line(text, Position::new(line, 1)),
        }
    }

    pub(crate) fn check(text: &str, line: u32) -> CheckSource {
        CheckSource {
            text: text.into(),
            map: SourceMap::single_line(text, Position::new(line, 1)),
        }
    }

    fn compile_err(params: &[ParamSource], checks: &[CheckSource]) -> (CompileErrorKind, Span) {
        let e = compile(params, checks).unwrap_err();
        (e.kind, e.span)
    }

    fn span(line: u32, c0: u32, c1: u32) -> Span {
        Span {
            start: Position::new(line, c0),
            end: Position::new(line, c1),
        }
    }

    #[test]
    fn slots_are_topological() {
        let p = compile(
            &[
                param("c", "string(${params[b]}x)", 1),
                param("b", "string(${params[a]})", 2),
                param("a", "get_time()", 3),
            ],
            &[check("${params[c]} == 1", 4)],
        )
        .unwrap();
        let names: Vec<&str> = p.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(p.code.len(), p.spans.len());
        let last = p.checks[0].code.end - 1;
        assert_eq!(p.code[last].op, Op::Compare);
        assert_eq!(p.spans[last], span(4, 1, 18));
    }

    #[test]
    fn errors_pin_spans() {
        assert_eq!(
            compile_err(&[param("x", "sha256(x)", 1)], &[]),
            (
                CompileErrorKind::UnknownFunction("sha256".into()),
                span(1, 1, 7)
            )
        );
        assert_eq!(
            compile_err(&[param("x", "md5_upper()", 1)], &[]),
            (
                CompileErrorKind::WrongArgCount {
                    name: "md5_upper",
                    expected: 1,
                    got: 0
                },
                span(1, 1, 12)
            )
        );
        assert_eq!(
            compile_err(
                &[
                    param("a", "string(${params[b]})", 1),
                    param("b", "string(${params[a]})", 2)
                ],
                &[]
            ),
            (
                CompileErrorKind::ParamCycle("a -> b -> a".into()),
                span(2, 8, 20)
            )
        );
        assert_eq!(
            compile_err(&[param("a", "string(${params[a]})", 1)], &[]),
            (
                CompileErrorKind::ParamCycle("a -> a".into()),
                span(1, 8, 20)
            )
        );
        assert_eq!(
            compile_err(&[], &[check("${stream} == abc", 1)]),
            (
                CompileErrorKind::UnknownPlaceholder("stream".into()),
                span(1, 1, 10)
            )
        );
        assert_eq!(
            compile_err(
                &[param("token", "string(x)", 1)],
                &[check("${url_params[token]} == ${params[tokn]}", 2)]
            ),
            (
                CompileErrorKind::UnknownParam("tokn".into()),
                span(2, 25, 40)
            )
        );
        assert_eq!(
            compile_err(&[], &[check("${app[x]} == 1", 1)]),
            (
                CompileErrorKind::UnexpectedKey("app".into()),
                span(1, 1, 10)
            )
        );
        assert_eq!(
            compile_err(&[], &[check("${url_params} == 1", 1)]),
            (
                CompileErrorKind::MissingKey("url_params".into()),
                span(1, 1, 14)
            )
        );
        assert_eq!(
            compile_err(&[param("a", "x == y", 1)], &[]),
            (
                CompileErrorKind::Parse(ParseErrorKind::OperatorInParam),
                span(1, 3, 5)
            )
        );
    }
}
