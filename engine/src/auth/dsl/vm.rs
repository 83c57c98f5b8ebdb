//! Runs compiled checks against one request.
//!
//! Call order: build a [`Vm`] per request (`Vm::new(&program)`), then [`Vm::run_check`] for each
//! check in order (stop at the first failure for `check`, run them all for `explain`). Params are
//! evaluated lazily, at most once per `Vm`, the first time a `LoadParam` needs them.

use super::compile::{Builtin, Instr, Op, Program, TimeGuard, Var};
use super::lexer::CmpOp;
use super::Span;
use crate::auth::ct_eq;
use crate::auth::query::Query;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;
use std::ops::Range;

/// What a request offers to expressions.
#[derive(Debug, Clone, Copy)]
pub struct Env<'a> {
    /// `${domain}`.
    pub domain: &'a str,
    /// `${app}`.
    pub app: &'a str,
    /// `${stream_name}`.
    pub stream_name: &'a str,
    /// `${stream_type}`: `rtmp`, `flv`, `hls`.
    pub stream_type: &'a str,
    /// Decoded URL query, for `${url_params[k]}`.
    pub query: &'a Query,
    /// Request headers, for `${header_params[k]}` (names compared case-insensitively).
    pub headers: &'a [(String, String)],
    /// `get_time()`.
    pub now_unix: u64,
}

/// Why evaluating an expression failed (the check then fails).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// `add`/`sub` on something that is not a 64-bit integer.
    #[error("`{func}`: `{value}` is not a 64-bit integer")]
    NotANumber {
        /// The function.
        func: &'static str,
        /// The offending value (lossy UTF-8).
        value: String,
    },
    /// The client's side of a comparison with `get_time()` is not a decimal time as a signer
    /// writes it (1 to 10 digits, no sign, no leading zero).
    #[error("`{0}` is not a decimal Unix time (1 to 10 digits, no sign or leading zero)")]
    BadTime(String),
    /// The client's side of a comparison with `get_time()` lies beyond the longest window a
    /// signer may issue: a forged, never-expiring time.
    #[error("`{value}` is later than the latest time a signer may issue ({latest})")]
    TimeTooFar {
        /// The client's time.
        value: String,
        /// `now + MAX_VALID_SECONDS + MAX_CLOCK_SKEW_SECS`.
        latest: u64,
    },
    /// `add`/`sub` overflowed i64.
    #[error("`{0}` overflowed")]
    Overflow(&'static str),
    /// The bytecode is inconsistent (a compiler bug).
    #[error("malformed program at instruction {0}")]
    Malformed(usize),
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    /// The comparison held.
    Pass,
    /// The comparison did not hold (for `<`/`>`/...: or a side was not a number).
    Fail {
        /// Left value (lossy UTF-8).
        left: String,
        /// The operator.
        op: CmpOp,
        /// Right value (lossy UTF-8).
        right: String,
        /// True when a numeric comparison failed because a side was not an i64.
        not_a_number: bool,
    },
    /// Evaluation failed at the instruction whose text is `span`.
    Error {
        /// What went wrong.
        error: EvalError,
        /// Where (from the source map).
        span: Span,
    },
}

impl CheckOutcome {
    /// True for [`CheckOutcome::Pass`].
    pub fn passed(&self) -> bool {
        matches!(self, CheckOutcome::Pass)
    }
}

#[derive(Debug, Clone)]
struct Fault {
    error: EvalError,
    at: usize,
}

/// Per-request VM state: the value stack and the param cache.
#[derive(Debug)]
pub struct Vm<'p> {
    program: &'p Program,
    stack: Vec<Vec<u8>>,
    cache: Vec<Option<Result<Vec<u8>, Fault>>>,
    verdict: Option<CheckOutcome>,
}

/// Text for logs and `explain`: UTF-8 as is, raw bytes (e.g. `hmac_sha1`) as `0x` + hex.
fn lossy(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_string(),
        Err(_) => {
            let h = hex(b, false);
            format!("0x{}", String::from_utf8_lossy(&h))
        }
    }
}

fn parse_i64(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

pub(crate) fn hex(bytes: &[u8], upper: bool) -> Vec<u8> {
    let digits: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(digits[usize::from(b >> 4)]);
        out.push(digits[usize::from(b & 15)]);
    }
    out
}

/// The latest client time a comparison with `get_time()` accepts: the longest URL validity plus
/// clock skew, as for URL signatures.
pub fn latest_client_time(now_unix: u64) -> u64 {
    now_unix
        .saturating_add(crate::auth::url_sign::MAX_VALID_SECONDS)
        .saturating_add(crate::auth::url_sign::MAX_CLOCK_SKEW_SECS)
}

/// Refuses a client time (see [`TimeGuard`]) that is malformed or too far ahead.
fn guard_time(value: &[u8], now_unix: u64, at: usize) -> Result<(), Fault> {
    if !crate::auth::url_sign::canonical_decimal(value) {
        return Err(Fault {
            error: EvalError::BadTime(lossy(value)),
            at,
        });
    }
    let latest = latest_client_time(now_unix);
    match std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        Some(t) if t <= latest => Ok(()),
        _ => Err(Fault {
            error: EvalError::TimeTooFar {
                value: lossy(value),
                latest,
            },
            at,
        }),
    }
}

/// Compares two values with `op`; `None` means a numeric comparison saw a non-number.
pub fn compare(op: CmpOp, left: &[u8], right: &[u8]) -> Option<bool> {
    match op {
        CmpOp::Eq => Some(ct_eq(left, right)),
        CmpOp::Ne => Some(!ct_eq(left, right)),
        _ => {
            let (l, r) = (parse_i64(left)?, parse_i64(right)?);
            Some(match op {
                CmpOp::Lt => l < r,
                CmpOp::Gt => l > r,
                CmpOp::Le => l <= r,
                _ => l >= r,
            })
        }
    }
}

impl<'p> Vm<'p> {
    /// A fresh VM for one request.
    pub fn new(program: &'p Program) -> Self {
        Self {
            program,
            stack: Vec::with_capacity(8),
            cache: vec![None; program.params.len()],
            verdict: None,
        }
    }

    /// Runs check `index` (file order).
    pub fn run_check(&mut self, index: usize, env: &Env<'_>) -> CheckOutcome {
        let Some(check) = self.program.checks.get(index) else {
            return CheckOutcome::Error {
                error: EvalError::Malformed(index),
                span: Span::default(),
            };
        };
        self.stack.clear();
        self.verdict = None;
        let at_end = check.code.end.saturating_sub(1);
        match self.exec(check.code.clone(), env) {
            Err(f) => CheckOutcome::Error {
                span: self.span_of(f.at),
                error: f.error,
            },
            Ok(()) => self.verdict.take().unwrap_or(CheckOutcome::Error {
                error: EvalError::Malformed(at_end),
                span: check.span,
            }),
        }
    }

    /// The value of param `name` for this request (evaluating it if needed), for `explain`.
    pub fn param_value(&mut self, name: &str, env: &Env<'_>) -> Option<Result<String, EvalError>> {
        let slot = self.program.params.iter().position(|p| p.name == name)?;
        Some(
            self.load_param(slot, env)
                .map(|v| lossy(&v))
                .map_err(|f| f.error),
        )
    }

    fn span_of(&self, at: usize) -> Span {
        self.program.spans.get(at).copied().unwrap_or_default()
    }

    fn load_param(&mut self, slot: usize, env: &Env<'_>) -> Result<Vec<u8>, Fault> {
        if let Some(cached) = self.cache.get(slot).and_then(Clone::clone) {
            return cached;
        }
        let Some(code) = self.program.params.get(slot).map(|p| p.code.clone()) else {
            return Err(Fault {
                error: EvalError::Malformed(slot),
                at: 0,
            });
        };
        let base = self.stack.len();
        let end = code.end;
        let result = self.exec(code, env).and_then(|()| {
            if self.stack.len() == base + 1 {
                self.stack.pop().ok_or(Fault {
                    error: EvalError::Malformed(end),
                    at: end,
                })
            } else {
                Err(Fault {
                    error: EvalError::Malformed(end),
                    at: end.saturating_sub(1),
                })
            }
        });
        self.stack.truncate(base);
        if let Some(c) = self.cache.get_mut(slot) {
            *c = Some(result.clone());
        }
        result
    }

    fn pop(&mut self, at: usize) -> Result<Vec<u8>, Fault> {
        self.stack.pop().ok_or(Fault {
            error: EvalError::Malformed(at),
            at,
        })
    }

    fn exec(&mut self, code: Range<usize>, env: &Env<'_>) -> Result<(), Fault> {
        for at in code {
            let malformed = Fault {
                error: EvalError::Malformed(at),
                at,
            };
            let Some(&Instr { op, arg }) = self.program.code.get(at) else {
                return Err(malformed);
            };
            let constant = |i: u16| self.program.constants.get(usize::from(i));
            match op {
                Op::PushConst => {
                    let c = constant(arg).ok_or(malformed)?.to_vec();
                    self.stack.push(c);
                }
                Op::LoadVar => {
                    let v = match Var::from_u16(arg).ok_or(malformed)? {
                        Var::Domain => env.domain,
                        Var::App => env.app,
                        Var::StreamName => env.stream_name,
                        Var::StreamType => env.stream_type,
                    };
                    self.stack.push(v.as_bytes().to_vec());
                }
                Op::LoadUrlParam => {
                    let name = constant(arg).ok_or(malformed)?;
                    let v = env.query.get(name).unwrap_or_default().to_vec();
                    self.stack.push(v);
                }
                Op::LoadHeader => {
                    let name = constant(arg).ok_or(malformed)?;
                    let v = env
                        .headers
                        .iter()
                        .find(|(k, _)| k.as_bytes().eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.as_bytes().to_vec())
                        .unwrap_or_default();
                    self.stack.push(v);
                }
                Op::LoadParam => {
                    let v = self.load_param(usize::from(arg), env)?;
                    self.stack.push(v);
                }
                Op::Call => {
                    let b = Builtin::from_u16(arg).ok_or(malformed)?;
                    let v = self.call(b, at, env)?;
                    self.stack.push(v);
                }
                Op::Concat => {
                    let n = usize::from(arg);
                    let from = self.stack.len().checked_sub(n).ok_or(malformed)?;
                    let joined = self.stack.drain(from..).flatten().collect();
                    self.stack.push(joined);
                }
                Op::Compare => {
                    let op = CmpOp::from_u16(arg & 0xff).ok_or(malformed)?;
                    let right = self.pop(at)?;
                    let left = self.pop(at)?;
                    match TimeGuard::from_arg(arg) {
                        TimeGuard::Left => guard_time(&left, env.now_unix, at)?,
                        TimeGuard::Right => guard_time(&right, env.now_unix, at)?,
                        TimeGuard::None => {}
                    }
                    self.verdict = Some(match compare(op, &left, &right) {
                        Some(true) => CheckOutcome::Pass,
                        r => CheckOutcome::Fail {
                            left: lossy(&left),
                            op,
                            right: lossy(&right),
                            not_a_number: r.is_none(),
                        },
                    });
                }
            }
        }
        Ok(())
    }

    fn call(&mut self, b: Builtin, at: usize, env: &Env<'_>) -> Result<Vec<u8>, Fault> {
        let fault = |error| Fault { error, at };
        Ok(match b {
            Builtin::GetTime => env.now_unix.to_string().into_bytes(),
            Builtin::String => self.pop(at)?,
            Builtin::Md5Upper => hex(&Md5::digest(self.pop(at)?), true),
            Builtin::Md5Lower => hex(&Md5::digest(self.pop(at)?), false),
            Builtin::BinToHex => hex(&self.pop(at)?, true),
            Builtin::Base64 => base64::engine::general_purpose::STANDARD
                .encode(self.pop(at)?)
                .into_bytes(),
            Builtin::HmacSha1 => {
                let message = self.pop(at)?;
                let key = self.pop(at)?;
                let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(&key)
                    .map_err(|_| fault(EvalError::Malformed(at)))?;
                mac.update(&message);
                mac.finalize().into_bytes().to_vec()
            }
            Builtin::Add | Builtin::Sub => {
                let r = self.pop(at)?;
                let l = self.pop(at)?;
                let num = |v: &[u8]| {
                    parse_i64(v).ok_or_else(|| {
                        fault(EvalError::NotANumber {
                            func: b.name(),
                            value: lossy(v),
                        })
                    })
                };
                let (l, r) = (num(&l)?, num(&r)?);
                let v = if b == Builtin::Add {
                    l.checked_add(r)
                } else {
                    l.checked_sub(r)
                };
                v.ok_or_else(|| fault(EvalError::Overflow(b.name())))?
                    .to_string()
                    .into_bytes()
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::compile::{compile, CheckSource, ParamSource};
    use super::super::{Position, SourceMap};
    use super::*;

    fn src(text: &str, line: u32) -> SourceMap {
        SourceMap::single_line(text, Position::new(line, 1))
    }

    fn program(params: &[(&str, &str)], checks: &[&str]) -> Program {
        let params: Vec<ParamSource> = params
            .iter()
            .enumerate()
            .map(|(i, (n, t))| ParamSource {
                name: (*n).into(),
                text: (*t).into(),
                map: src(t, i as u32 + 1),
            })
            .collect();
        let checks: Vec<CheckSource> = checks
            .iter()
            .map(|t| CheckSource {
                text: (*t).into(),
                map: src(t, 100),
            })
            .collect();
        compile(&params, &checks).unwrap()
    }

    fn env<'a>(query: &'a Query, headers: &'a [(String, String)]) -> Env<'a> {
        Env {
            domain: "test.publish.com",
            app: "app",
            stream_name: "test",
            stream_type: "rtmp",
            query,
            headers,
            now_unix: 1000,
        }
    }

    #[test]
    fn builtins() {
        let p = program(
            &[
                ("h", "bin_to_hex(hmac_sha1(key, The quick brown fox jumps over the lazy dog))"),
                ("m", "md5_lower(abc)"),
                ("M", "md5_upper(abc)"),
                ("b", "base64(hi?)"),
                ("a", "add(get_time(), 5)"),
                ("s", "sub(-3, 4)"),
                ("v", "string(${domain}|${app}|${stream_name}|${stream_type}|${header_params[X-Token]}|${url_params[q]})"),
                ("bad", "add(x, 1)"),
                ("raw", "hmac_sha1(key, The quick brown fox jumps over the lazy dog)"),
                ("ovf", "add(9223372036854775807, 1)"),
            ],
            &[],
        );
        let q = Query::parse("q=a%2Bb");
        let h = vec![("x-token".to_string(), "T".to_string())];
        let e = env(&q, &h);
        let mut vm = Vm::new(&p);
        let mut val = |n| vm.param_value(n, &e).unwrap();
        assert_eq!(
            val("h"),
            Ok("DE7C9B85B8B78AA6BC8A7A36F70A90701C9DB4D9".into())
        );
        assert_eq!(val("m"), Ok("900150983cd24fb0d6963f7d28e17f72".into()));
        assert_eq!(val("M"), Ok("900150983CD24FB0D6963F7D28E17F72".into()));
        assert_eq!(val("b"), Ok("aGk/".into()));
        assert_eq!(val("a"), Ok("1005".into()));
        assert_eq!(val("s"), Ok("-7".into()));
        assert_eq!(
            val("raw"),
            Ok("0xde7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9".into())
        );
        assert_eq!(val("v"), Ok("test.publish.com|app|test|rtmp|T|a+b".into()));
        assert!(matches!(val("bad"), Err(EvalError::NotANumber { .. })));
        assert_eq!(val("ovf"), Err(EvalError::Overflow("add")));
    }

    #[test]
    fn comparisons() {
        let p = program(
            &[("t", "get_time()")],
            &[
                "${url_params[n]} > ${params[t]}",
                "${url_params[n]} >= 1001",
                "${url_params[n]} < 1001",
                "${url_params[n]} <= 1001",
                "${url_params[n]} != 1001",
                "${url_params[n]} == 1001",
                "x${url_params[missing]} == x",
            ],
        );
        let h = vec![];
        let run = |query: &str| {
            let q = Query::parse(query);
            let e = env(&q, &h);
            let mut vm = Vm::new(&p);
            (0..p.checks.len())
                .map(|i| vm.run_check(i, &e).passed())
                .collect::<Vec<_>>()
        };
        assert_eq!(run("n=1001"), [true, true, false, true, false, true, true]);
        assert_eq!(
            run("n=abc"),
            [false, false, false, false, true, false, true]
        );
        // Compared with the time, a client value must be a decimal time, not just any text.
        let q = Query::parse("n=x");
        let e = env(&q, &h);
        assert!(matches!(
            Vm::new(&p).run_check(0, &e),
            CheckOutcome::Error {
                error: EvalError::BadTime(_),
                ..
            }
        ));
        // An expiry beyond the longest window a signer issues never expires: refused.
        let far = latest_client_time(e.now_unix) + 1;
        let q = Query::parse(&format!("n={far}"));
        let e = env(&q, &h);
        assert!(matches!(
            Vm::new(&p).run_check(0, &e),
            CheckOutcome::Error {
                error: EvalError::TimeTooFar { .. },
                ..
            }
        ));
    }

    #[test]
    fn eval_error_points_at_call() {
        let p = program(&[("a", "add(${url_params[x]}, 1)")], &["${params[a]} == 2"]);
        let q = Query::parse("x=oops");
        let h = vec![];
        let out = Vm::new(&p).run_check(0, &env(&q, &h));
        let CheckOutcome::Error { span, .. } = out else {
            panic!("{out:?}")
        };
        assert_eq!(
            (span.start, span.end),
            (Position::new(1, 1), Position::new(1, 25))
        );
    }
}
