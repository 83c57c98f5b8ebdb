//! Authentication: internal users, URL signatures (types A/B/C) and the compiled expression language.
//!
//! [`Authenticator::load`] builds everything once at config load (domain files parsed, validated and
//! compiled); the result is immutable, `Send + Sync`, and cheap to share in an `Arc`. Each request
//! then goes through [`Authenticator::check`]; every configured rule must pass:
//!
//! 1. internal users (`authInternalUsers`, MediaMTX semantics, see [`users`]);
//! 2. for publish/read/playback, when domains are configured: the domain (the vhost; unknown
//!    domains are refused unless `unknownDomain: allow`), its type (publish on publish domains,
//!    read/playback on play domains), the app (unknown apps are refused), the domain's
//!    `url_auth` ([`url_sign`]) and the app's `publish_auth_check` / `play_auth_check` ([`dsl`]).
//!
//! With no domains configured only the internal users apply. Clients get a generic refusal; the
//! [`Denied`] value says which rule failed, for the log, and [`Authenticator::explain`] walks every
//! rule for `corestream auth explain`.
#![forbid(unsafe_code)]

pub mod domain;
pub mod dsl;
pub mod http_hook;
mod locate;
pub mod query;
mod target;
pub mod url_sign;
pub mod users;

#[cfg(test)]
mod tests;

use domain::{Domain, DomainErrorKind, DomainType};
use dsl::lexer::CmpOp;
use dsl::vm::{CheckOutcome, Env, Vm};
use dsl::{caret_snippet, Diagnostic, Span};
use query::Query;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
pub use target::RequestTarget;
pub use url_sign::{sign_url, SignError, SignType, TimeFormat, UrlAuthConfig};
use url_sign::{SignedRequest, UrlSignError};
pub use users::{Action, EntryMiss, InternalUser, Permission, UserConfigError};
use users::{UserQuery, Users};

/// How a request reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// RTMP publish or play; type A signs `/app/stream`.
    Rtmp,
    /// HTTP-FLV; type A signs `/app/stream.flv`.
    Flv,
    /// HLS playlist or segment; type A signs `/app/stream.m3u8`.
    Hls,
    /// Control API or metrics.
    Api,
}

impl Protocol {
    /// `${stream_type}`.
    fn stream_type(self) -> &'static str {
        match self {
            Protocol::Rtmp => "rtmp",
            Protocol::Flv => "flv",
            Protocol::Hls => "hls",
            Protocol::Api => "api",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Protocol::Flv => ".flv",
            Protocol::Hls => ".m3u8",
            Protocol::Rtmp | Protocol::Api => "",
        }
    }
}

/// One request to authenticate.
#[derive(Debug, Clone, Copy)]
pub struct AuthRequest<'a> {
    /// What the client wants.
    pub action: Action,
    /// How it came.
    pub protocol: Protocol,
    /// RTMP: host of tcUrl; HTTP: Host header without port.
    pub vhost: &'a str,
    /// The app.
    pub app: &'a str,
    /// The stream name, without `.flv` / `.m3u8`.
    pub stream: &'a str,
    /// Raw query, undecoded, without `?`.
    pub query: &'a str,
    /// HTTP headers (empty for RTMP).
    pub headers: &'a [(String, String)],
    /// Client address.
    pub peer: IpAddr,
    /// User name, if the client gave one.
    pub user: Option<&'a str>,
    /// Password, if the client gave one.
    pub pass: Option<&'a str>,
    /// Request time, Unix seconds.
    pub now_unix: u64,
}

/// `authMethod` (MediaMTX). `internal` and `http` are implemented; `jwt` is refused at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// `authInternalUsers`.
    #[default]
    Internal,
    /// MediaMTX's HTTP callback: `authHTTPAddress`, `authHTTPExclude`.
    Http,
    /// MediaMTX's JWT (not supported).
    Jwt,
}

/// What to do with a vhost that matches no domain file (only when some are configured).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownDomain {
    /// Refuse (default).
    #[default]
    Deny,
    /// Admit, subject to the internal users only.
    Allow,
}

pub fn default_users() -> Vec<InternalUser> {
    InternalUser::mediamtx_defaults()
}

/// The auth part of the main config (`Config::auth_settings`, where the keys are parsed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSettings {
    pub auth_method: AuthMethod,
    pub auth_internal_users: Vec<InternalUser>,
    /// Relative to the main config file's directory (`config_dir` of [`Authenticator::load`]).
    pub domains_dir: Option<PathBuf>,
    pub unknown_domain: UnknownDomain,
    /// The service `authMethod: http` asks.
    pub auth_http_address: Option<String>,
    /// Actions (and paths) not asked of it, judged by the internal users.
    pub auth_http_exclude: Vec<Permission>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            auth_method: AuthMethod::Internal,
            auth_internal_users: default_users(),
            domains_dir: None,
            unknown_domain: UnknownDomain::Deny,
            auth_http_address: None,
            auth_http_exclude: http_hook::default_exclude(),
        }
    }
}

/// Why the auth configuration cannot be used (refuse to start).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthConfigError {
    /// A file or directory could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// YAML syntax, an unknown key or a wrong type in a domain file.
    #[error("{}:{line}:{column}: {message}", file.display())]
    Yaml {
        /// The file.
        file: PathBuf,
        /// 1-based line (0 when unknown).
        line: u32,
        /// 1-based column (0 when unknown).
        column: u32,
        /// serde's message.
        message: String,
    },
    /// An expression that does not compile; rendered with the source line and a caret.
    #[error("{0}")]
    Expression(Box<Diagnostic>),
    /// A domain rule.
    #[error("{}:{line}:{column}: {key}: {kind}", file.display())]
    Domain {
        /// The file.
        file: PathBuf,
        /// 1-based line of the key.
        line: u32,
        /// 1-based column of the key.
        column: u32,
        /// The key, e.g. `url_auth.primary_key`.
        key: String,
        /// What is wrong.
        kind: DomainErrorKind,
    },
    /// An `authInternalUsers` entry.
    #[error(transparent)]
    Users(#[from] UserConfigError),
    /// `authMethod: jwt`.
    #[error("authMethod {0:?} is not supported; use internal or http")]
    UnsupportedAuthMethod(AuthMethod),
    /// `authHTTPAddress` is missing or unusable.
    #[error("{0}")]
    HttpHook(#[from] http_hook::HookConfigError),
}

/// A refused request: which rule failed and why (for logs; clients get a generic refusal).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Denied {
    /// No `authInternalUsers` entry admits the request.
    #[error("no authInternalUsers entry admits {action} of `{path}` from {peer} (user {user:?})")]
    NoUser {
        /// The action.
        action: Action,
        /// `app/stream`.
        path: String,
        /// Client address.
        peer: IpAddr,
        /// Given user name.
        user: Option<String>,
        /// Why each entry did not match, in order.
        misses: Vec<EntryMiss>,
    },
    /// The vhost matches no domain file.
    #[error("unknown domain `{vhost}`")]
    UnknownDomain {
        /// The vhost.
        vhost: String,
    },
    /// Publish on a play domain or play on a publish domain.
    #[error("{action} is not allowed on {kind} domain `{domain}`")]
    WrongDomainType {
        /// The domain.
        domain: String,
        /// Its type.
        kind: DomainType,
        /// The action.
        action: Action,
    },
    /// The app is not listed for the domain.
    #[error("unknown app `{app}` on domain `{domain}`")]
    UnknownApp {
        /// The domain.
        domain: String,
        /// The app.
        app: String,
    },
    /// The URL signature is missing, wrong or expired.
    #[error("url_auth of domain `{domain}`: {error}")]
    UrlAuth {
        /// The domain.
        domain: String,
        /// Why.
        error: UrlSignError,
    },
    /// A check of `publish_auth_check` / `play_auth_check` failed.
    #[error("{0}")]
    Check(Box<CheckFailure>),
}

/// Which expression check refused a request, and where it is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{}:{}: {block} check #{index} `{text}` failed: {detail}", file.display(), span.start.line, span.start.column)]
pub struct CheckFailure {
    /// The domain.
    pub domain: String,
    /// The app.
    pub app: String,
    /// `publish_auth_check` or `play_auth_check`.
    pub block: &'static str,
    /// 1-based check number.
    pub index: usize,
    /// The check as written.
    pub text: String,
    /// The domain file.
    pub file: PathBuf,
    /// Where in the file (the failing instruction's text).
    pub span: Span,
    /// What happened.
    pub detail: String,
}

/// The compiled auth configuration.
#[derive(Debug)]
pub struct Authenticator {
    users: Users,
    /// `authMethod: http`: the service asked instead of the internal users.
    hook: Option<http_hook::HttpHook>,
    domains: Vec<Domain>,
    unknown_domain: UnknownDomain,
    warnings: Vec<String>,
}

/// Compares two byte strings in time that depends only on their lengths.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// A check's outcome in words. `show_secrets`: `auth explain` (the operator's own request) shows
/// both sides of a failed `==`/`!=`; the log does not, as one side is the expected token or
/// signature, which would let anyone who reads the log forge the request.
fn outcome_detail(o: &CheckOutcome, show_secrets: bool) -> String {
    match o {
        CheckOutcome::Pass => "pass".into(),
        CheckOutcome::Fail {
            op: op @ (CmpOp::Eq | CmpOp::Ne),
            ..
        } if !show_secrets => {
            format!("the two sides of `{op}` do not satisfy it (values not logged)")
        }
        CheckOutcome::Fail {
            left,
            op,
            right,
            not_a_number: true,
        } => format!("`{left}` {op} `{right}`: not a 64-bit integer"),
        CheckOutcome::Fail {
            left, op, right, ..
        } => format!("`{left}` {op} `{right}` is false"),
        CheckOutcome::Error { error, .. } => error.to_string(),
    }
}

impl Authenticator {
    /// Builds the authenticator: compiles users, loads `domains_dir` (relative to `config_dir`).
    pub fn load(
        settings: &AuthSettings,
        config_dir: &Path,
    ) -> Result<Authenticator, AuthConfigError> {
        let hook = match settings.auth_method {
            AuthMethod::Internal => None,
            AuthMethod::Http => Some(http_hook::HttpHook::new(
                settings.auth_http_address.as_deref(),
                settings.auth_http_exclude.clone(),
            )?),
            AuthMethod::Jwt => {
                return Err(AuthConfigError::UnsupportedAuthMethod(settings.auth_method))
            }
        };
        let users = Users::compile(&settings.auth_internal_users)?;
        let domains = match &settings.domains_dir {
            Some(d) => domain::load_dir(&config_dir.join(d))?,
            None => Vec::new(),
        };
        let mut warnings = Vec::new();
        for d in &domains {
            if let Some(u) = &d.url_auth {
                for w in u.warnings(d.kind == DomainType::Publish) {
                    warnings.push(format!("{}: url_auth: {w}", d.file.display()));
                }
            }
        }
        Ok(Self {
            users,
            hook,
            domains,
            unknown_domain: settings.unknown_domain,
            warnings,
        })
    }

    /// Advisory notes for `check-config` (allowed, but unusual).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Query parameters that carry a secret somewhere: every domain's `url_auth` signature
    /// parameter, and the URL parameters an expression check compares for equality (tokens and
    /// signatures). The API redacts them in the queries it shows.
    pub fn secret_query_params(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for d in &self.domains {
            if let Some(u) = &d.url_auth {
                names.push(u.sign_param.clone());
            }
            for app in &d.apps {
                if let Some(c) = &app.check {
                    names.extend(c.program.equality_url_params());
                }
            }
        }
        names.sort();
        names.dedup();
        names
    }

    /// The vhost under which a stream lives: a play domain maps to its publish domain, a publish
    /// domain to itself; `None` for an unknown vhost (use the vhost as given) or no domains.
    pub fn stream_vhost(&self, vhost: &str) -> Option<&str> {
        let d = self.find_domain(vhost)?;
        Some(d.publish_domain.as_deref().unwrap_or(&d.name))
    }

    /// With `authMethod: http`, the request to send to the auth service for `req` (after
    /// [`Authenticator::check`] passed); `None` when nothing needs asking (another method, or an
    /// excluded action, which the internal users judged).
    pub fn http_hook_request(
        &self,
        req: &AuthRequest<'_>,
        id: Option<&str>,
    ) -> Option<(std::net::SocketAddr, bytes::BytesMut)> {
        let hook = self.hook.as_ref()?;
        let path = format!("{}/{}", req.app, req.stream);
        if hook.excludes(req.action, &path) {
            return None;
        }
        Some((hook.addr, hook.request(req, id)))
    }

    /// The domain a reader of the streams living under `vhost` comes through: `vhost` itself
    /// unless it is a publish domain (which admits no reader), then the play domain serving it
    /// (the first by name). A cluster node pulls another's stream through it; `None` for an
    /// unknown vhost or no domains.
    pub fn read_domain(&self, vhost: &str) -> Option<&str> {
        let d = self.find_domain(vhost)?;
        if d.kind != DomainType::Publish {
            return Some(&d.name);
        }
        self.domains
            .iter()
            .filter(|p| {
                p.kind == DomainType::Play
                    && p.publish_domain
                        .as_deref()
                        .is_some_and(|x| x.eq_ignore_ascii_case(vhost))
            })
            .map(|p| p.name.as_str())
            .min()
    }

    /// The enabled URL-signature rule of the domain named `vhost`, for `corestream sign`.
    pub fn url_auth(&self, vhost: &str) -> Option<&UrlAuthConfig> {
        self.find_domain(vhost)?
            .url_auth
            .as_ref()
            .filter(|u| u.enabled)
    }

    fn find_domain(&self, vhost: &str) -> Option<&Domain> {
        self.domains
            .iter()
            .find(|d| d.name.eq_ignore_ascii_case(vhost))
    }

    /// Checks a request. `Err` says which rule refused it (log it; tell the client only "denied").
    pub fn check(&self, req: &AuthRequest<'_>) -> Result<(), Denied> {
        self.evaluate(req, None)
    }

    /// Every rule, pass or fail, with the failing check's text and position.
    pub fn explain(&self, req: &AuthRequest<'_>) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "request: {} via {:?} vhost={} app={} stream={} peer={} user={:?} query={:?} now={}",
            req.action,
            req.protocol,
            req.vhost,
            req.app,
            req.stream,
            req.peer,
            req.user,
            req.query,
            req.now_unix
        );
        let result = self.evaluate(req, Some(&mut out));
        match result {
            Ok(()) => out.push_str("result: ALLOWED\n"),
            Err(d) => {
                let _ = writeln!(out, "result: DENIED: {d}");
            }
        }
        out
    }

    fn evaluate(
        &self,
        req: &AuthRequest<'_>,
        mut trace: Option<&mut String>,
    ) -> Result<(), Denied> {
        let tracing = trace.is_some();
        // Formats only when tracing, so `check` pays nothing for `explain`'s notes.
        macro_rules! note {
            ($($arg:tt)*) => {
                if let Some(t) = trace.as_deref_mut() {
                    let _ = writeln!(t, $($arg)*);
                }
            };
        }
        // 1. Internal users.
        let path = format!("{}/{}", req.app, req.stream);
        let uq = UserQuery {
            action: req.action,
            path: &path,
            peer: req.peer,
            user: req.user,
            pass: req.pass,
        };
        // With authMethod: http the service decides instead, unless the action is excluded.
        let users_decide = self
            .hook
            .as_ref()
            .is_none_or(|h| h.excludes(req.action, &path));
        if users_decide {
            note!("internal users (first match wins):");
            if tracing {
                for line in self.users.explain(&uq) {
                    note!("{line}");
                }
            }
            if let Err(misses) = self.users.check(&uq) {
                return Err(Denied::NoUser {
                    action: req.action,
                    path,
                    peer: req.peer,
                    user: req.user.map(str::to_string),
                    misses,
                });
            }
        } else if let Some(hook) = &self.hook {
            note!(
                "internal users: not used (authMethod: http asks {})",
                hook.addr
            );
        }
        // 2. Domains.
        if !matches!(
            req.action,
            Action::Publish | Action::Read | Action::Playback
        ) {
            note!("domains: not applicable to this action");
            return Ok(());
        }
        if self.domains.is_empty() {
            note!("domains: none configured, nothing more to check");
            return Ok(());
        }
        let Some(domain) = self.find_domain(req.vhost) else {
            if self.unknown_domain == UnknownDomain::Allow {
                note!(
                    "domain `{}`: unknown, allowed by unknownDomain: allow",
                    req.vhost
                );
                return Ok(());
            }
            note!("domain `{}`: unknown: FAIL", req.vhost);
            return Err(Denied::UnknownDomain {
                vhost: req.vhost.into(),
            });
        };
        note!(
            "domain `{}` ({}, {}): found",
            domain.name,
            domain.kind,
            domain.file.display()
        );
        let wanted = if req.action == Action::Publish {
            DomainType::Publish
        } else {
            DomainType::Play
        };
        if domain.kind != wanted {
            note!(
                "domain type: {} on a {} domain: FAIL",
                req.action,
                domain.kind
            );
            return Err(Denied::WrongDomainType {
                domain: domain.name.clone(),
                kind: domain.kind,
                action: req.action,
            });
        }
        let Some(app) = domain.apps.iter().find(|a| a.name == req.app) else {
            note!("app `{}`: not configured: FAIL", req.app);
            return Err(Denied::UnknownApp {
                domain: domain.name.clone(),
                app: req.app.into(),
            });
        };
        note!("app `{}`: found", app.name);
        let query = Query::parse(req.query);
        let mut first_failure: Option<Denied> = None;
        match &domain.url_auth {
            Some(u) if u.enabled => {
                let type_a_path =
                    format!("/{}/{}{}", req.app, req.stream, req.protocol.extension());
                let signed = SignedRequest {
                    path: &type_a_path,
                    app: req.app,
                    stream: req.stream,
                    query: &query,
                    now_unix: req.now_unix,
                };
                match u.verify(&signed) {
                    Ok(()) => note!("url_auth (type {:?}): PASS", u.sign_type),
                    Err(error) => {
                        note!("url_auth (type {:?}): FAIL: {error}", u.sign_type);
                        let d = Denied::UrlAuth {
                            domain: domain.name.clone(),
                            error,
                        };
                        if !tracing {
                            return Err(d);
                        }
                        first_failure.get_or_insert(d);
                    }
                }
            }
            Some(_) => note!("url_auth: disabled"),
            None => note!("url_auth: none"),
        }
        let Some(check) = &app.check else {
            note!("auth checks: none");
            return first_failure.map_or(Ok(()), Err);
        };
        let env = Env {
            domain: req.vhost,
            app: req.app,
            stream_name: req.stream,
            stream_type: req.protocol.stream_type(),
            query: &query,
            headers: req.headers,
            now_unix: req.now_unix,
        };
        let program = &check.program;
        let mut vm = Vm::new(program);
        note!("{}:", check.block);
        if tracing {
            for p in &program.params {
                let v = match vm.param_value(&p.name, &env) {
                    Some(Ok(v)) => format!("{v:?}"),
                    Some(Err(e)) => format!("error: {e}"),
                    None => "?".into(),
                };
                note!("  param {} = {v}", p.name);
            }
        }
        for (i, c) in program.checks.iter().enumerate() {
            let outcome = vm.run_check(i, &env);
            if outcome.passed() {
                note!("  check #{} `{}`: PASS", i + 1, c.text);
                continue;
            }
            let span = match &outcome {
                CheckOutcome::Error { span, .. } => *span,
                _ => c.span,
            };
            let detail = outcome_detail(&outcome, false);
            let source_line = domain
                .text
                .lines()
                .nth(span.start.line.saturating_sub(1) as usize)
                .unwrap_or("");
            note!(
                "  check #{} `{}`: FAIL: {}\n  {}:{}:{}\n{}",
                i + 1,
                c.text,
                outcome_detail(&outcome, true),
                domain.file.display(),
                span.start.line,
                span.start.column,
                caret_snippet(source_line, span)
            );
            let d = Denied::Check(Box::new(CheckFailure {
                domain: domain.name.clone(),
                app: app.name.clone(),
                block: check.block,
                index: i + 1,
                text: c.text.clone(),
                file: domain.file.clone(),
                span,
                detail,
            }));
            if !tracing {
                return Err(d);
            }
            first_failure.get_or_insert(d);
        }
        first_failure.map_or(Ok(()), Err)
    }
}
