//! Domain files in the mms format: one YAML file per domain in `domainsDir`.
//!
//! ```yaml
//! type: publish            # or play
//! name: test.publish.com
//! publish_domain: ...      # play domains only: whose streams they serve
//! url_auth: { type: B, sign_param: ..., time_param: ..., primary_key: ..., ... }
//! apps:
//!   - name: app
//!     publish_auth_check:  # publish domains; play_auth_check on play domains
//!       enabled: true      # default true
//!       params: { name: fn(args), ... }
//!       checks: [ "left op right", ... ]
//! ```
//! Loading validates every rule and compiles every expression; each error names the file, the
//! line and column, and the key.

use super::dsl::compile::{compile, CheckSource, ParamSource, Program};
use super::dsl::Diagnostic;
use super::locate::{Doc, Seg};
use super::url_sign::{UrlAuthConfig, UrlAuthConfigError};
use super::AuthConfigError;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::path::{Path, PathBuf};

/// Publish or play.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DomainType {
    /// Publishers connect here.
    Publish,
    /// Players connect here; streams come from `publish_domain`.
    Play,
}

impl fmt::Display for DomainType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DomainType::Publish => "publish",
            DomainType::Play => "play",
        })
    }
}

fn default_true() -> bool {
    true
}

/// A domain file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainFile {
    /// `type:`
    #[serde(rename = "type")]
    pub kind: DomainType,
    /// The domain (vhost) name.
    pub name: String,
    /// Play domains: the publish domain whose streams they serve.
    #[serde(default)]
    pub publish_domain: Option<String>,
    /// URL signature rule for requests to this domain.
    #[serde(default)]
    pub url_auth: Option<UrlAuthConfig>,
    /// The apps served; any other app is refused.
    #[serde(default)]
    pub apps: Vec<AppConfig>,
}

/// One app of a domain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// App name.
    pub name: String,
    /// Expression checks for publishing (publish domains).
    #[serde(default)]
    pub publish_auth_check: Option<AuthCheckConfig>,
    /// Expression checks for playing (play domains).
    #[serde(default)]
    pub play_auth_check: Option<AuthCheckConfig>,
}

/// `publish_auth_check` / `play_auth_check`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthCheckConfig {
    /// Whether the checks are enforced (default true, so a block is never silently ignored).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Named values, in file order.
    #[serde(default)]
    pub params: ParamList,
    /// All must hold.
    #[serde(default)]
    pub checks: Vec<String>,
}

/// `params:` in file order (a YAML mapping of name to expression).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParamList(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for ParamList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ParamList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of param names to expressions")
            }
            fn visit_unit<E>(self) -> Result<ParamList, E> {
                Ok(ParamList::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<ParamList, A::Error> {
                let mut out: Vec<(String, String)> = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, String>()? {
                    if out.iter().any(|(n, _)| *n == k) {
                        return Err(serde::de::Error::custom(format!("duplicate param `{k}`")));
                    }
                    out.push((k, v));
                }
                Ok(ParamList(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// What is wrong with a domain file (beyond YAML syntax and expressions).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DomainErrorKind {
    /// `name` or an app name is empty.
    #[error("must not be empty")]
    Empty,
    /// Two files configure the same domain.
    #[error("domain `{name}` is already configured in {}", other.display())]
    DuplicateDomain {
        /// The name.
        name: String,
        /// The other file.
        other: PathBuf,
    },
    /// An app listed twice.
    #[error("app `{0}` is listed twice")]
    DuplicateApp(String),
    /// A play domain without `publish_domain`.
    #[error("play domains need publish_domain")]
    MissingPublishDomain,
    /// `publish_domain` on a publish domain.
    #[error("only play domains have publish_domain")]
    PublishDomainOnPublish,
    /// `publish_domain` that names no configured publish domain.
    #[error("`{0}` is not a configured publish domain")]
    UnknownPublishDomain(String),
    /// `publish_auth_check` on a play domain or `play_auth_check` on a publish domain.
    #[error("not allowed on a {0} domain")]
    WrongCheckBlock(DomainType),
    /// A `url_auth` rule.
    #[error("{0}")]
    UrlAuth(UrlAuthConfigError),
}

/// A compiled check block and where it came from.
#[derive(Debug)]
pub(crate) struct CompiledCheck {
    /// `publish_auth_check` or `play_auth_check`.
    pub(crate) block: &'static str,
    pub(crate) program: Program,
}

/// A loaded app.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) name: String,
    /// `None` when there is no block or it is disabled.
    pub(crate) check: Option<CompiledCheck>,
}

/// A loaded, validated, compiled domain.
#[derive(Debug)]
pub(crate) struct Domain {
    pub(crate) name: String,
    pub(crate) kind: DomainType,
    pub(crate) publish_domain: Option<String>,
    pub(crate) url_auth: Option<UrlAuthConfig>,
    pub(crate) apps: Vec<App>,
    pub(crate) file: PathBuf,
    /// The file text, for `auth explain` snippets.
    pub(crate) text: String,
}

fn domain_err(
    file: &Path,
    doc: &Doc,
    path: &[Seg<'_>],
    key: String,
    kind: DomainErrorKind,
) -> AuthConfigError {
    let p = doc.key_pos(path);
    AuthConfigError::Domain {
        file: file.to_path_buf(),
        line: p.line,
        column: p.column,
        key,
        kind,
    }
}

/// Parses, validates and compiles one domain file (cross-file rules are in [`load_dir`]).
pub(crate) fn load_file(file: &Path, text: &str) -> Result<Domain, AuthConfigError> {
    let parsed: DomainFile = serde_yaml_ng::from_str(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map_or((0, 0), |l| (l.line() as u32, l.column() as u32));
        let mut message = e.to_string();
        if let Some(i) = message.find(" at line ") {
            message.truncate(i);
        }
        AuthConfigError::Yaml {
            file: file.to_path_buf(),
            line,
            column,
            message,
        }
    })?;
    let doc = Doc::new(text);
    let err = |path: &[Seg<'_>], key: &str, kind| domain_err(file, &doc, path, key.into(), kind);
    if parsed.name.trim().is_empty() {
        return Err(err(&[Seg::Key("name")], "name", DomainErrorKind::Empty));
    }
    match (parsed.kind, &parsed.publish_domain) {
        (DomainType::Play, None) => {
            return Err(err(
                &[Seg::Key("type")],
                "publish_domain",
                DomainErrorKind::MissingPublishDomain,
            ))
        }
        (DomainType::Publish, Some(_)) => {
            return Err(err(
                &[Seg::Key("publish_domain")],
                "publish_domain",
                DomainErrorKind::PublishDomainOnPublish,
            ))
        }
        _ => {}
    }
    if let Some(u) = &parsed.url_auth {
        if let Err(e) = u.validate() {
            let field = e.field();
            return Err(err(
                &[Seg::Key("url_auth"), Seg::Key(field)],
                &format!("url_auth.{field}"),
                DomainErrorKind::UrlAuth(e),
            ));
        }
    }
    let mut apps: Vec<App> = Vec::with_capacity(parsed.apps.len());
    for (i, a) in parsed.apps.iter().enumerate() {
        let name_path = [Seg::Key("apps"), Seg::Index(i), Seg::Key("name")];
        let key = format!("apps[{i}].name");
        if a.name.trim().is_empty() {
            return Err(err(&name_path, &key, DomainErrorKind::Empty));
        }
        if apps.iter().any(|x| x.name == a.name) {
            return Err(err(
                &name_path,
                &key,
                DomainErrorKind::DuplicateApp(a.name.clone()),
            ));
        }
        let (own, own_block, other_block) = match parsed.kind {
            DomainType::Publish => (
                &a.publish_auth_check,
                "publish_auth_check",
                "play_auth_check",
            ),
            DomainType::Play => (&a.play_auth_check, "play_auth_check", "publish_auth_check"),
        };
        let has_other = match parsed.kind {
            DomainType::Publish => a.play_auth_check.is_some(),
            DomainType::Play => a.publish_auth_check.is_some(),
        };
        if has_other {
            return Err(err(
                &[Seg::Key("apps"), Seg::Index(i), Seg::Key(other_block)],
                &format!("apps[{i}].{other_block}"),
                DomainErrorKind::WrongCheckBlock(parsed.kind),
            ));
        }
        let check = match own {
            Some(c) if c.enabled => Some(CompiledCheck {
                block: own_block,
                program: compile_block(file, text, &doc, i, own_block, c)?,
            }),
            _ => None,
        };
        apps.push(App {
            name: a.name.clone(),
            check,
        });
    }
    Ok(Domain {
        name: parsed.name,
        kind: parsed.kind,
        publish_domain: parsed.publish_domain,
        url_auth: parsed.url_auth,
        apps,
        file: file.to_path_buf(),
        text: text.to_string(),
    })
}

fn compile_block(
    file: &Path,
    text: &str,
    doc: &Doc,
    app: usize,
    block: &'static str,
    c: &AuthCheckConfig,
) -> Result<Program, AuthConfigError> {
    let base = [Seg::Key("apps"), Seg::Index(app), Seg::Key(block)];
    let params: Vec<ParamSource> = c
        .params
        .0
        .iter()
        .map(|(name, value)| {
            let path = [&base[..], &[Seg::Key("params"), Seg::Key(name)]].concat();
            ParamSource {
                name: name.clone(),
                text: value.clone(),
                map: doc.map_or_fallback(&path, value),
            }
        })
        .collect();
    let checks: Vec<CheckSource> = c
        .checks
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let path = [&base[..], &[Seg::Key("checks"), Seg::Index(i)]].concat();
            CheckSource {
                text: value.clone(),
                map: doc.map_or_fallback(&path, value),
            }
        })
        .collect();
    compile(&params, &checks).map_err(|e| {
        AuthConfigError::Expression(Box::new(Diagnostic::new(
            file,
            text,
            e.span,
            e.kind.to_string(),
        )))
    })
}

/// Loads every `*.yaml` / `*.yml` file of `dir` (sorted by name) and checks cross-file rules.
pub(crate) fn load_dir(dir: &Path) -> Result<Vec<Domain>, AuthConfigError> {
    let io = |source| AuthConfigError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(io)?
        .into_iter()
        .map(|e| e.path())
        .filter(|p| {
            let hidden = p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            let yaml = matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
            yaml && !hidden && p.is_file()
        })
        .collect();
    files.sort();
    let mut domains: Vec<Domain> = Vec::with_capacity(files.len());
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|source| AuthConfigError::Io {
            path: f.clone(),
            source,
        })?;
        let d = load_file(&f, &text)?;
        if let Some(other) = domains
            .iter()
            .find(|o| o.name.eq_ignore_ascii_case(&d.name))
        {
            return Err(domain_err(
                &f,
                &Doc::new(&text),
                &[Seg::Key("name")],
                "name".into(),
                DomainErrorKind::DuplicateDomain {
                    name: d.name.clone(),
                    other: other.file.clone(),
                },
            ));
        }
        domains.push(d);
    }
    for d in &domains {
        if let Some(p) = &d.publish_domain {
            let ok = domains
                .iter()
                .any(|o| o.kind == DomainType::Publish && o.name.eq_ignore_ascii_case(p));
            if !ok {
                return Err(domain_err(
                    &d.file,
                    &Doc::new(&d.text),
                    &[Seg::Key("publish_domain")],
                    "publish_domain".into(),
                    DomainErrorKind::UnknownPublishDomain(p.clone()),
                ));
            }
        }
    }
    Ok(domains)
}
