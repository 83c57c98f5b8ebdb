//! `cargo bench -p engine --bench auth`: auth rule evaluations per second on one core, with the
//! rules compiled at load (what the engine does) and rebuilt from their text on every request (what
//! it would cost not to compile), so the gain of compiling is a measured ratio (issue 4).
//!
//! Cases: URL signature types A, B and C with the published examples of
//! `shared/vectors/url-auth.yaml`, and the two documented expression examples of
//! `shared/vectors/auth-dsl.yaml`, each on a request that passes.
//!
//! Both columns run the same request path; they differ only in where the rule comes from:
//! - **compiled**: `Authenticator::check` on the domain as loaded (rules parsed, validated and
//!   compiled once by `Authenticator::load`).
//! - **re-parsed**: `Authenticator::check` on the same domain files with the rule block left out
//!   (internal users, domain and app lookup, query parsing: the same fixed cost), then the rule
//!   built from its text and evaluated on the same request. For `url_auth` that is the block's YAML
//!   parsed with serde_yaml_ng into a `UrlAuthConfig`, `validate()`, the query parsed, then
//!   `verify()`; for the expression language it is every param and check text run through the
//!   lexer, parser and compiler (`dsl::compile::compile`), the query parsed, then every check run
//!   on a fresh VM. The query is thus parsed twice per re-parsed request (once more than compiled).
//! - **no rule** (context, not part of the ratio): `Authenticator::check` on the rule-less domains,
//!   the fixed cost both columns pay.
//!
//! No criterion: a plain `main`, one thread pinned to one core, a warm-up and a bounded time per
//! measurement. Pass a word to run only the cases whose name contains it.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use corestream::auth::domain::{AuthCheckConfig, DomainFile};
use corestream::auth::dsl::compile::{compile, CheckSource, ParamSource};
use corestream::auth::dsl::vm::{Env, Vm};
use corestream::auth::dsl::{Position, SourceMap};
use corestream::auth::query::Query;
use corestream::auth::url_sign::SignedRequest;
use corestream::auth::{
    Action, AuthRequest, AuthSettings, Authenticator, Protocol, UnknownDomain, UrlAuthConfig,
};
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use serde_yaml_ng::Value;

// The engine binary runs on mimalloc; measure with the same allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Warm-up before each measurement.
const WARM_UP: Duration = Duration::from_millis(200);
/// Measured time per column and case (so at most 1 s per measurement with the warm-up).
const MEASURE: Duration = Duration::from_millis(800);
/// Evaluations between two clock reads.
const BATCH: u64 = 64;

/// The url-auth.yaml examples are signed at 1758296819 and valid for 600 s.
const URL_NOW: u64 = 1_758_296_819 + 60;
/// Request time of the expression cases; their tokens expire an hour later.
const DSL_NOW: u64 = 1_758_296_819;
const DSL_EXPIRY: u64 = DSL_NOW + 3600;

fn vectors(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/auth/testdata")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("test vectors missing at {}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("vector field `{key}` missing"))
}

/// A scratch directory of domain files, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str, files: &[(&str, String)]) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "corestream-auth-bench-{}-{tag}",
            std::process::id()
        ));
        let domains = dir.join("domains");
        std::fs::create_dir_all(&domains).expect("create scratch dir");
        for (name, text) in files {
            std::fs::write(domains.join(name), text).expect("write domain file");
        }
        Self(dir)
    }

    fn load(&self) -> Authenticator {
        let settings = AuthSettings {
            domains_dir: Some("domains".into()),
            unknown_domain: UnknownDomain::Deny,
            ..AuthSettings::default()
        };
        Authenticator::load(&settings, &self.0).unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A request as the engine builds it, with owned text.
struct Req {
    action: Action,
    protocol: Protocol,
    vhost: String,
    app: String,
    stream: String,
    query: String,
    now_unix: u64,
}

impl Req {
    /// `scheme://host/app/stream[.flv]?query`.
    fn from_url(action: Action, protocol: Protocol, url: &str, now_unix: u64) -> Self {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut parts = rest.splitn(3, '/');
        let mut next = || parts.next().unwrap_or_else(|| panic!("bad url {url}"));
        let (vhost, app, stream) = (next(), next(), next());
        let stream = stream.strip_suffix(".flv").unwrap_or(stream);
        Self {
            action,
            protocol,
            vhost: vhost.into(),
            app: app.into(),
            stream: stream.into(),
            query: query.into(),
            now_unix,
        }
    }

    fn auth(&self) -> AuthRequest<'_> {
        AuthRequest {
            action: self.action,
            protocol: self.protocol,
            vhost: &self.vhost,
            app: &self.app,
            stream: &self.stream,
            query: &self.query,
            headers: &[],
            peer: std::net::IpAddr::from([203, 0, 113, 7]),
            user: None,
            pass: None,
            now_unix: self.now_unix,
        }
    }
}

/// The rule of a case, as text.
enum RuleText {
    /// The `url_auth:` block's YAML (unindented).
    UrlAuth(String),
    /// A `*_auth_check` block's params and checks.
    Dsl {
        params: Vec<(String, String)>,
        checks: Vec<String>,
    },
}

impl RuleText {
    /// Builds the rule from its text and evaluates it on `req`: the per-request cost of not compiling.
    fn evaluate(&self, req: &AuthRequest<'_>) -> bool {
        match self {
            RuleText::UrlAuth(yaml) => {
                let Ok(cfg) = serde_yaml_ng::from_str::<UrlAuthConfig>(yaml) else {
                    return false;
                };
                if cfg.validate().is_err() {
                    return false;
                }
                let query = Query::parse(req.query);
                let ext = if req.protocol == Protocol::Flv {
                    ".flv"
                } else {
                    ""
                };
                let path = format!("/{}/{}{ext}", req.app, req.stream);
                cfg.verify(&SignedRequest {
                    path: &path,
                    app: req.app,
                    stream: req.stream,
                    query: &query,
                    now_unix: req.now_unix,
                })
                .is_ok()
            }
            RuleText::Dsl { params, checks } => {
                let start = Position::new(1, 1);
                let params: Vec<ParamSource> = params
                    .iter()
                    .map(|(name, text)| ParamSource {
                        name: name.clone(),
                        text: text.clone(),
                        map: SourceMap::single_line(text, start),
                    })
                    .collect();
                let checks: Vec<CheckSource> = checks
                    .iter()
                    .map(|text| CheckSource {
                        text: text.clone(),
                        map: SourceMap::single_line(text, start),
                    })
                    .collect();
                let Ok(program) = compile(&params, &checks) else {
                    return false;
                };
                let query = Query::parse(req.query);
                let env = Env {
                    domain: req.vhost,
                    app: req.app,
                    stream_name: req.stream,
                    stream_type: "rtmp",
                    query: &query,
                    headers: req.headers,
                    now_unix: req.now_unix,
                };
                let mut vm = Vm::new(&program);
                (0..program.checks.len()).all(|i| vm.run_check(i, &env).passed())
            }
        }
    }
}

/// One benchmark case: the same request against the compiled rule and against its text.
struct Case {
    name: String,
    /// Domains with the rule, compiled at load.
    compiled: Authenticator,
    /// The same domains without the rule (the request path's fixed cost).
    without_rule: Authenticator,
    rule: RuleText,
    /// A request that passes.
    good: Req,
    /// The same request tampered with, which the rule must refuse.
    bad: Req,
    _dirs: (Scratch, Scratch),
}

impl Case {
    fn check_compiled(&self, r: &AuthRequest<'_>) -> bool {
        self.compiled.check(r).is_ok()
    }

    fn check_reparsed(&self, r: &AuthRequest<'_>) -> bool {
        self.without_rule.check(r).is_ok() && self.rule.evaluate(r)
    }

    /// Both paths accept the good request and refuse the tampered one.
    fn sanity(&self) {
        let (good, bad) = (self.good.auth(), self.bad.auth());
        assert!(
            self.check_compiled(&good),
            "{}: compiled refuses the good request: {:?}",
            self.name,
            self.compiled.check(&good)
        );
        assert!(
            self.check_reparsed(&good),
            "{}: re-parsed refuses",
            self.name
        );
        assert!(
            !self.check_compiled(&bad),
            "{}: compiled admits tampered",
            self.name
        );
        assert!(
            !self.check_reparsed(&bad),
            "{}: re-parsed admits tampered",
            self.name
        );
        assert!(
            self.without_rule.check(&bad).is_ok(),
            "{}: the rule-less domain should admit everything",
            self.name
        );
    }
}

const PUSH_DOMAIN: &str = "type: publish\nname: push.example.com\napps:\n  - name: live\n";

/// A play domain `pull.example.com` (app `live`) with `url_auth` built from the vector `v`.
fn url_case(kind: &str, v: &Value) -> Case {
    let sign_param = str_of(v, "sign_param");
    let key = str_of(v, "key");
    let valid = v["valid_seconds"].as_u64().unwrap_or(600);
    let mut block = format!(
        "type: {kind}\nsign_param: {sign_param}\nprimary_key: {key}\nvalid_seconds: {valid}\n"
    );
    if let Some(t) = v["time_param"].as_str() {
        block.push_str(&format!("time_param: {t}\n"));
    }
    if let Some(f) = v["time_format"].as_str() {
        block.push_str(&format!("time_format: {f}\n"));
    }
    let indented: String = block.lines().map(|l| format!("  {l}\n")).collect();
    let play = |url_auth: &str| {
        format!("type: play\nname: pull.example.com\npublish_domain: push.example.com\n{url_auth}apps:\n  - name: live\n")
    };
    let tag = format!("url-{kind}");
    let with = Scratch::new(
        &tag,
        &[
            ("push.yaml", PUSH_DOMAIN.into()),
            ("pull.yaml", play(&format!("url_auth:\n{indented}"))),
        ],
    );
    let without = Scratch::new(
        &format!("{tag}-none"),
        &[("push.yaml", PUSH_DOMAIN.into()), ("pull.yaml", play(""))],
    );
    let url = str_of(v, "signed_url");
    let good = Req::from_url(Action::Read, Protocol::Flv, url, URL_NOW);
    // The signature's last hex digit changed (A: the end of the URL; B, C: before `&time`).
    let mut bad_url = url.to_string();
    let at = bad_url.find('&').unwrap_or(bad_url.len()) - 1;
    let flipped = if &bad_url[at..=at] == "0" { "1" } else { "0" };
    bad_url.replace_range(at..=at, flipped);
    let bad = Req::from_url(Action::Read, Protocol::Flv, &bad_url, URL_NOW);
    Case {
        name: format!("url_auth type {kind} (HTTP-FLV play)"),
        compiled: with.load(),
        without_rule: without.load(),
        rule: RuleText::UrlAuth(block),
        good,
        bad,
        _dirs: (with, without),
    }
}

fn dsl_vector<'a>(all: &'a Value, name: &str) -> &'a Value {
    all.as_sequence()
        .and_then(|s| s.iter().find(|c| c["name"].as_str() == Some(name)))
        .unwrap_or_else(|| panic!("auth-dsl.yaml: case `{name}` missing"))
}

/// The params and checks of the first app's check block of a domain file, as text.
fn dsl_rule(domain_file: &str) -> RuleText {
    let parsed: DomainFile = serde_yaml_ng::from_str(domain_file).unwrap_or_else(|e| panic!("{e}"));
    let app = parsed.apps.into_iter().next().expect("an app");
    let block: AuthCheckConfig = app
        .publish_auth_check
        .or(app.play_auth_check)
        .expect("a check block");
    RuleText::Dsl {
        params: block.params.0,
        checks: block.checks,
    }
}

fn dsl_case(
    name: &str,
    tag: &str,
    all: &Value,
    extra: &[(&str, String)],
    rule_less: String,
    good: Req,
    bad: Req,
) -> Case {
    let file = str_of(dsl_vector(all, name), "domain_file");
    let mut with_files = vec![("d.yaml", file.to_string())];
    with_files.extend(extra.iter().cloned());
    let mut without_files = vec![("d.yaml", rule_less)];
    without_files.extend(extra.iter().cloned());
    let with = Scratch::new(tag, &with_files);
    let without = Scratch::new(&format!("{tag}-none"), &without_files);
    Case {
        name: format!("expr: {name}"),
        compiled: with.load(),
        without_rule: without.load(),
        rule: dsl_rule(file),
        good,
        bad,
        _dirs: (with, without),
    }
}

/// `AccessKey:base64(HEX(hmac_sha1(SecretKey, "/app/test/?e={e}")))`, as documented.
fn hmac_token(e: u64) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(b"312ae9gd2BrCfpTdF4U8aIg9Puh62K4eEGY72Ea_")
        .expect("hmac takes any key length");
    mac.update(format!("/app/test/?e={e}").as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    format!(
        "7O7hf7Ld1RrC_fpZdFvU8aCgOPuhw2K4eapYOdII:{}",
        base64::engine::general_purpose::STANDARD.encode(hex)
    )
}

/// Upper-case md5 of `sys@test.publish.com/{stream}/{expire}`, as documented.
fn md5_token(stream: &str, expire: u64) -> String {
    Md5::digest(format!("sys@test.publish.com/{stream}/{expire}"))
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

fn cases() -> Vec<Case> {
    let url = vectors("url-auth.yaml");
    let dsl = vectors("auth-dsl.yaml");
    let mut out = vec![
        url_case("A", &url["type_a"]),
        url_case("B", &url["type_b"]),
        url_case("C", &url["type_c"]),
    ];
    let publish_url =
        |e: u64, token: &str| format!("rtmp://test.publish.com/app/test?e={e}&token={token}");
    out.push(dsl_case(
        "hmac-sha1 token with access key",
        "hmac",
        &dsl,
        &[],
        "type: publish\nname: test.publish.com\napps:\n  - name: app\n".into(),
        Req::from_url(
            Action::Publish,
            Protocol::Rtmp,
            &publish_url(DSL_EXPIRY, &hmac_token(DSL_EXPIRY)),
            DSL_NOW,
        ),
        Req::from_url(
            Action::Publish,
            Protocol::Rtmp,
            &publish_url(DSL_EXPIRY + 1, &hmac_token(DSL_EXPIRY)),
            DSL_NOW,
        ),
    ));
    let play_url = |expire: u64, token: &str| {
        format!("rtmp://test.play.com/app/test?expire={expire}&token={token}")
    };
    out.push(dsl_case(
        "play domain bound to a publish domain, expiring md5 token",
        "md5",
        &dsl,
        &[(
            "p.yaml",
            "type: publish\nname: test.publish.com\napps:\n  - name: app\n".into(),
        )],
        "type: play\nname: test.play.com\npublish_domain: test.publish.com\napps:\n  - name: app\n"
            .into(),
        Req::from_url(
            Action::Read,
            Protocol::Rtmp,
            &play_url(DSL_EXPIRY, &md5_token("test", DSL_EXPIRY)),
            DSL_NOW,
        ),
        Req::from_url(
            Action::Read,
            Protocol::Rtmp,
            &play_url(DSL_EXPIRY, &md5_token("other", DSL_EXPIRY)),
            DSL_NOW,
        ),
    ));
    out
}

/// Evaluations per second of `f` (which must return `true`): warm-up, then batches until
/// [`MEASURE`] has passed.
fn rate(mut f: impl FnMut() -> bool) -> f64 {
    let mut run_batch = || {
        let mut ok = true;
        for _ in 0..BATCH {
            ok &= black_box(f());
        }
        assert!(ok, "a benchmarked request was refused");
    };
    let start = Instant::now();
    while start.elapsed() < WARM_UP {
        run_batch();
    }
    let start = Instant::now();
    let mut n = 0u64;
    let elapsed = loop {
        run_batch();
        n += BATCH;
        let e = start.elapsed();
        if e >= MEASURE {
            break e;
        }
    };
    n as f64 / elapsed.as_secs_f64()
}

/// Pins this thread to the last allowed core; returns it.
fn pin() -> Option<usize> {
    let core = core_affinity::get_core_ids()?.pop()?;
    core_affinity::set_for_current(core).then_some(core.id)
}

fn main() {
    // `cargo bench` passes `--bench`; any other word filters cases by name.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let pinned = pin();
    let cases: Vec<Case> = cases()
        .into_iter()
        .filter(|c| filter.is_empty() || filter.iter().any(|f| c.name.contains(f.as_str())))
        .collect();
    for c in &cases {
        c.sanity();
    }
    match pinned {
        Some(core) => println!("auth evaluations per second, one thread pinned to core {core}"),
        None => println!("auth evaluations per second, one thread (not pinned)"),
    }
    println!(
        "{} ms warm-up, then {} ms measured per cell; every request evaluated passes\n",
        WARM_UP.as_millis(),
        MEASURE.as_millis()
    );
    println!(
        "{:<66} {:>12} {:>12} {:>7} {:>12}",
        "case", "compiled/s", "re-parsed/s", "ratio", "no rule/s"
    );
    for c in &cases {
        let req = c.good.auth();
        let compiled = rate(|| c.check_compiled(black_box(&req)));
        let reparsed = rate(|| c.check_reparsed(black_box(&req)));
        let no_rule = rate(|| c.without_rule.check(black_box(&req)).is_ok());
        println!(
            "{:<66} {:>12.0} {:>12.0} {:>6.1}x {:>12.0}",
            c.name,
            compiled,
            reparsed,
            compiled / reparsed,
            no_rule
        );
    }
    println!(
        "
compiled:  Authenticator::check on the domain files as loaded (rules parsed, validated and
           compiled once at load).
re-parsed: Authenticator::check on the same domain files without the rule block (same users,
           domain and app lookup, query parsing), then per request: url_auth: the block's YAML
           parsed by serde_yaml_ng into UrlAuthConfig + validate() + Query::parse + verify();
           expressions: every param and check text through lexer + parser + compiler
           (dsl::compile::compile) + Query::parse + every check on a fresh VM. Not included:
           reading the file or parsing the rest of the domain YAML, so re-parsing is if anything
           favoured; its one extra Query::parse per request is small next to the parse.
no rule:   Authenticator::check on the domain files without the rule block: the fixed cost of the
           request path that both columns pay (context for the ratio, not part of it)."
    );
}
