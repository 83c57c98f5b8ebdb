//! MediaMTX's configuration schema: every key its `mediamtx.yml` may hold, what Corestream does
//! with each, and the report `check-config` prints.
//!
//! A key Corestream has (same name, same meaning) is a field of [`super::Config`] or
//! [`super::PathFields`] and never reaches this table. Every other MediaMTX key is accepted, kept
//! as written (the API shows it back) and belongs to a feature Corestream does not serve; when its
//! value asks for that feature (`rtsp: true`, `record: true`, a `runOnReady` command, …) the
//! feature is listed as asked for and not served. MediaMTX's deprecated keys that name something
//! Corestream does are converted as MediaMTX converts them (see [`super::deprecated`]).
//! Anything else is a typo and refused.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::compat::Where;
use super::Config;

/// The type of a MediaMTX key's value, checked even where the key is only kept, so a mistyped
/// value is caught as MediaMTX would catch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// YAML 1.1 booleans (`yes`/`no`/`on`/`off`/`true`/`false`).
    Bool,
    /// MediaMTX's durations (`10s`, `1d`, `1.5h`).
    Duration,
    /// MediaMTX's sizes (`50M`).
    Size,
    Number,
    Text,
    /// Lists, objects and enumerations: kept as written.
    Any,
}

/// Where a key sits in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Level {
    Global,
    /// `pathDefaults` or a `paths` entry.
    Path,
}

/// The kind of a MediaMTX key at `level` that Corestream does not have; `None`: not a MediaMTX key.
pub(super) fn kind_of(level: Level, key: &str) -> Option<Kind> {
    let table = match level {
        Level::Global => GLOBAL,
        Level::Path => PATH,
    };
    table.iter().find(|(k, _)| *k == key).map(|(_, kind)| *kind)
}

/// MediaMTX's keys at `level` that Corestream does not have.
pub(super) fn keys(level: Level) -> impl Iterator<Item = &'static str> {
    let table = match level {
        Level::Global => GLOBAL,
        Level::Path => PATH,
    };
    table.iter().map(|(k, _)| *k)
}

/// Checks a kept value against its kind and normalizes YAML 1.1 booleans to JSON booleans.
pub(super) fn normalize(kind: Kind, value: Value) -> Result<Value, String> {
    match (kind, value) {
        (_, Value::Null) => Ok(Value::Null),
        (Kind::Bool, Value::Bool(b)) => Ok(Value::Bool(b)),
        (Kind::Bool, Value::String(s)) => yaml11_bool(&s)
            .map(Value::Bool)
            .ok_or_else(|| format!("`{s}` is not a boolean (true/false, yes/no, on/off)")),
        (Kind::Duration, Value::String(s)) => s.parse::<super::Millis>().map(|_| Value::String(s)),
        (Kind::Size, Value::String(s)) => super::values::parse_size(&s).map(|_| Value::String(s)),
        (Kind::Size, Value::Number(n)) => Ok(Value::Number(n)),
        (Kind::Number, Value::Number(n)) => Ok(Value::Number(n)),
        (Kind::Text, Value::String(s)) => Ok(Value::String(s)),
        // YAML reads `pass: 1234` or `runOnInit: true` as a number or a boolean; MediaMTX takes
        // them as text.
        (Kind::Text, Value::Number(n)) => Ok(Value::String(n.to_string())),
        (Kind::Text, Value::Bool(b)) => Ok(Value::String(b.to_string())),
        (Kind::Any, v) => Ok(v),
        (kind, v) => Err(format!("expected {}, got {v}", kind_name(kind))),
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Bool => "a boolean",
        Kind::Duration => "a duration such as `10s`",
        Kind::Size => "a size such as `50M`",
        Kind::Number => "a number",
        Kind::Text => "a string",
        Kind::Any => "a value",
    }
}

/// YAML 1.1's booleans, which MediaMTX reads (its YAML library predates YAML 1.2).
pub(super) fn yaml11_bool(s: &str) -> Option<bool> {
    match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "true" | "True" | "TRUE" => {
            Some(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "false" | "False" | "FALSE" => {
            Some(false)
        }
        _ => None,
    }
}

/// A feature of MediaMTX that Corestream does not serve, and the keys that configure it.
struct Feature {
    name: &'static str,
    /// Key prefixes (or whole keys) that belong to the feature, per level.
    global: &'static [&'static str],
    path: &'static [&'static str],
}

/// MediaMTX's features Corestream does not serve. The first feature with a matching prefix
/// owns a key, so the more specific entries come first.
const FEATURES: &[Feature] = &[
    Feature {
        name: "RTMPS server (rtmpEncryption)",
        global: &["rtmpEncryption", "rtmpsAddress", "rtmpServerKey", "rtmpServerCert"],
        path: &[],
    },
    Feature {
        name: "client addresses from X-Forwarded-For outside the API",
        global: &["rtmpTrustedProxies", "hlsTrustedProxies", "metricsTrustedProxies"],
        path: &[],
    },
    Feature {
        name: "HTTPS (TLS) on the HLS, API and metrics listeners",
        global: &[
            "hlsEncryption",
            "hlsServerKey",
            "hlsServerCert",
            "apiEncryption",
            "apiServerKey",
            "apiServerCert",
            "metricsEncryption",
            "metricsServerKey",
            "metricsServerCert",
        ],
        path: &[],
    },
    Feature {
        name: "CORS origin of the API and metrics in its deprecated single form (apiAllowOrigin, metricsAllowOrigin; apiAllowOrigins and metricsAllowOrigins are served)",
        global: &["apiAllowOrigin", "metricsAllowOrigin"],
        path: &[],
    },
    Feature {
        name: "a bound on HLS segment size (hlsSegmentMaxSize; segments are held in memory whole)",
        global: &["hlsSegmentMaxSize"],
        path: &[],
    },
    Feature {
        name: "HLS segments on disk (hlsDirectory)",
        global: &["hlsDirectory"],
        path: &[],
    },
    Feature {
        name: "signed HLS URLs for CDNs (hlsCDNSecret)",
        global: &["hlsCDNSecret"],
        path: &[],
    },
    Feature {
        name: "RTSP server",
        global: &[
            "rtsp",
            "rtp",
            "rtcp",
            "multicast",
            "srtp",
            "srtcp",
            "protocols",
            "encryption",
            "serverKey",
            "serverCert",
            "authMethods",
        ],
        path: &[],
    },
    Feature {
        name: "RTSP source options (rtspAnyPort, rtspRange*, rtspScale, rtspDemuxMpegts)",
        global: &[],
        path: &["rtsp", "sourceAnyPortEnable"],
    },
    Feature {
        name: "WebRTC server",
        global: &["webrtc"],
        path: &["whep"],
    },
    Feature {
        name: "SRT server",
        global: &["srt"],
        path: &["srt"],
    },
    Feature {
        name: "MoQ server",
        global: &["moq"],
        path: &["moqTransport"],
    },
    Feature {
        name: "playback server",
        global: &["playback"],
        path: &["playback"],
    },
    Feature {
        name: "pprof server",
        global: &["pprof"],
        path: &[],
    },
    Feature {
        name: "recording",
        global: &["record"],
        path: &["record"],
    },
    Feature {
        name: "hooks (runOn* commands)",
        global: &["runOn"],
        path: &["runOn"],
    },
    Feature {
        name: "JWT authentication",
        global: &["authJWT"],
        path: &[],
    },
    Feature {
        name: "certificate pinning of the auth service (authHTTPFingerprint)",
        global: &["authHTTPFingerprint"],
        path: &[],
    },
    Feature {
        name: "log destinations other than stderr (logDestinations, logFile, sysLogPrefix)",
        global: &["logDestinations", "logFile", "sysLogPrefix"],
        path: &[],
    },
    Feature {
        name: "structured (JSON) logs",
        global: &["logStructured"],
        path: &[],
    },
    Feature {
        name: "packet dumps (dumpPackets)",
        global: &["dumpPackets"],
        path: &[],
    },
    Feature {
        name: "MediaMTX's write deadline and packet-count queue (Corestream bounds players with slowPlayerTimeout and playerMaxQueueBytes)",
        global: &["writeTimeout", "writeQueueSize", "readBufferCount"],
        path: &[],
    },
    Feature {
        name: "UDP tuning (udpMaxPayloadSize, udpReadBufferSize)",
        global: &["udp"],
        path: &["mpegtsUDPReadBufferSize", "rtpUDPReadBufferSize"],
    },
    Feature {
        name: "always-available paths (alwaysAvailable*, fallback)",
        global: &[],
        path: &["alwaysAvailable", "fallback"],
    },
    Feature {
        name: "absolute timestamps (useAbsoluteTimestamp)",
        global: &[],
        path: &["useAbsoluteTimestamp"],
    },
    Feature {
        name: "rtp:// sources (rtpSDP)",
        global: &[],
        path: &["rtpSDP"],
    },
    Feature {
        name: "redirect sources (sourceRedirect)",
        global: &[],
        path: &["sourceRedirect"],
    },
    Feature {
        name: "Raspberry Pi cameras (rpiCamera*)",
        global: &[],
        path: &["rpiCamera"],
    },
];

/// The feature a kept key belongs to.
fn feature_of(level: Level, key: &str) -> &'static str {
    FEATURES
        .iter()
        .find(|f| {
            let prefixes = match level {
                Level::Global => f.global,
                Level::Path => f.path,
            };
            prefixes.iter().any(|p| key.starts_with(p))
        })
        .map_or("MediaMTX-only settings", |f| f.name)
}

/// Whether a kept key's value asks for its feature: a switch that is on, a command or a secret
/// that is set. Addresses, certificate paths, timeouts and the like only configure a feature
/// and ask for nothing by themselves.
fn asks(key: &str, value: &Value) -> bool {
    match key {
        "rtmpEncryption" | "rtspEncryption" | "encryption" => {
            matches!(value.as_str(), Some("optional" | "strict"))
        }
        "logDestinations" => value
            .as_array()
            .is_some_and(|d| d.iter().any(|d| d.as_str() != Some("stdout"))),
        "apiAllowOrigin" | "metricsAllowOrigin" => value.as_str().is_some_and(|o| o != "*"),
        "rtspDisable" | "webrtcDisable" => value == &Value::Bool(false),
        "rtspTransports" | "rtspAuthMethods" | "protocols" | "authMethods" => false,
        "rtspRangeType"
        | "rtspRangeStart"
        | "rtspScale"
        | "sourceRedirect"
        | "rtpSDP"
        | "hlsDirectory"
        | "hlsCDNSecret"
        | "authHTTPFingerprint"
        | "srtReadPassphrase"
        | "srtPublishPassphrase"
        | "whepBearerToken"
        | "alwaysAvailableFile"
        | "fallback" => value.as_str().is_some_and(|s| !s.is_empty()),
        "rtmpTrustedProxies" | "hlsTrustedProxies" | "metricsTrustedProxies" => {
            value.as_array().is_some_and(|a| !a.is_empty())
        }
        // Settings that happen to be booleans or lists: they shape a feature, not ask for it.
        "webrtcIPsFromInterfaces" | "authJWTInHTTPQuery" | "alwaysAvailableTracks" => false,
        k if k.starts_with("rpiCamera") || k.ends_with("Restart") => false,
        k if k.starts_with("runOn") && !k.contains("Timeout") && !k.contains("CloseAfter") => {
            value.as_str().is_some_and(|s| !s.is_empty())
        }
        // The switches: `rtsp: true`, `record: true`, `rpiCameraHDR: true`, …
        _ => value == &Value::Bool(true),
    }
}

/// MediaMTX's path keys and their defaults (v1.20's `pathDefaults`, its unset strings `""`):
/// MediaMTX shows every one of them in a path's configuration, set or not.
const PATH_DEFAULTS: &str = include_str!("mediamtx_path_defaults.json");

/// Adds to a path configuration's JSON every MediaMTX path key it lacks, with MediaMTX's
/// default, so a client reads `rpiCameraCodec: "auto"` where MediaMTX would show it (its test
/// `TestConfigPathsReplace`). Keys already there (Corestream's own, and what was set) are left.
pub fn add_path_defaults(v: &mut Value) {
    static DEFAULTS: std::sync::OnceLock<serde_json::Map<String, Value>> =
        std::sync::OnceLock::new();
    let defaults = DEFAULTS.get_or_init(|| {
        serde_json::from_str(PATH_DEFAULTS).unwrap_or_else(|e| {
            tracing::error!("mediamtx_path_defaults.json: {e}");
            serde_json::Map::new()
        })
    });
    if let Value::Object(map) = v {
        for (key, value) in defaults {
            map.entry(key.as_str()).or_insert_with(|| value.clone());
        }
    }
}

/// What `check-config` reports and the engine logs at start about a MediaMTX configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// MediaMTX keys of the file Corestream applies (its own names, and converted aliases).
    pub applied: Vec<String>,
    /// Kept keys per feature not served: the feature, the keys, and those whose values ask
    /// for it (`where` they are: global, `pathDefaults` or `paths/<name>`).
    pub not_served: Vec<NotServed>,
    /// Deprecated keys converted, MediaMTX's way (`rtmpDisable: yes` → `rtmp: false`).
    pub converted: Vec<String>,
    /// `MTX_*` environment variables applied.
    pub environment: Vec<String>,
}

/// One feature Corestream does not serve, as a configuration mentions it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotServed {
    pub feature: &'static str,
    /// Every key of the feature the configuration holds (`key` or `paths/<name>/key`).
    pub keys: Vec<String>,
    /// The keys whose values ask for the feature.
    pub asked_by: Vec<String>,
}

impl Report {
    /// Adds the kept keys of one level (`prefix` is `""`, `pathDefaults/` or `paths/<name>/`).
    pub(super) fn add_kept(&mut self, level: Level, prefix: &str, kept: &BTreeMap<String, Value>) {
        for (key, value) in kept {
            let feature = feature_of(level, key);
            let at = match self.not_served.iter().position(|n| n.feature == feature) {
                Some(i) => i,
                None => {
                    self.not_served.push(NotServed {
                        feature,
                        ..NotServed::default()
                    });
                    self.not_served.len() - 1
                }
            };
            let entry = &mut self.not_served[at];
            entry.keys.push(format!("{prefix}{key}"));
            if asks(key, value) {
                entry.asked_by.push(format!("{prefix}{key}"));
            }
        }
    }

    /// One line per feature the configuration asks for and Corestream does not serve, for the
    /// log at start.
    pub fn not_served_lines(&self) -> Vec<String> {
        self.not_served
            .iter()
            .filter(|n| !n.asked_by.is_empty())
            .map(|n| {
                format!(
                    "{}: not served by corestream (asked for by {})",
                    n.feature,
                    n.asked_by.join(", ")
                )
            })
            .collect()
    }

    /// The report `check-config` prints.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_owned()
            } else {
                v.join(", ")
            }
        };
        let _ = writeln!(out, "applied: {}", list(&self.applied));
        if !self.converted.is_empty() {
            let _ = writeln!(out, "converted (deprecated): {}", self.converted.join(", "));
        }
        if !self.environment.is_empty() {
            let _ = writeln!(out, "environment: {}", self.environment.join(", "));
        }
        if self.not_served.is_empty() {
            let _ = writeln!(out, "accepted, not served: none");
        } else {
            let _ = writeln!(out, "accepted, not served:");
        }
        for n in &self.not_served {
            let state = if n.asked_by.is_empty() {
                "not asked for".to_owned()
            } else {
                format!("ASKED FOR by {}", n.asked_by.join(", "))
            };
            let _ = writeln!(
                out,
                "  - {}: {state}; keys: {}",
                n.feature,
                n.keys.join(", ")
            );
        }
        let _ = writeln!(
            out,
            "refused: none (a refused key or value stops the load with its position)"
        );
        out
    }
}

/// MediaMTX keys that Corestream has under the same name (so they are applied), for the
/// report's `applied` list.
pub(super) fn is_mediamtx_name(level: Level, key: &str) -> bool {
    const GLOBAL_SHARED: &[&str] = &[
        "logLevel",
        "readTimeout",
        "authMethod",
        "authInternalUsers",
        "authHTTPAddress",
        "authHTTPExclude",
        "api",
        "apiAddress",
        "apiTrustedProxies",
        "metrics",
        "metricsAddress",
        "rtmp",
        "rtmpAddress",
        "hls",
        "hlsAddress",
        "hlsAllowOrigins",
        "hlsAlwaysRemux",
        "hlsSegmentCount",
        "hlsSegmentDuration",
        "hlsVariant",
        "hlsPartDuration",
        "apiAllowOrigins",
        "metricsAllowOrigins",
        "hlsMuxerCloseAfter",
        "playback",
        "playbackAddress",
        "pathDefaults",
        "paths",
    ];
    const PATH_SHARED: &[&str] = &[
        "source",
        "sourceFingerprint",
        "sourceOnDemand",
        "sourceOnDemandStartTimeout",
        "sourceOnDemandCloseAfter",
        "maxReaders",
        "overridePublisher",
        "rtspTransport",
        "forward",
        "record",
        "recordPath",
        "recordFormat",
        "recordPartDuration",
        "recordMaxPartSize",
        "recordSegmentDuration",
        "recordDeleteAfter",
    ];
    match level {
        Level::Global => GLOBAL_SHARED.contains(&key),
        Level::Path => PATH_SHARED.contains(&key),
    }
}

/// Converts MediaMTX's deprecated keys in `config` (see [`super::deprecated`]), applies the kept
/// keys Corestream serves under another name (`hlsAddress`, `hlsAllowOrigins`), and builds the
/// report. `own` lists the keys the
/// input set that are Corestream's own. `Err` names the key and the reason.
pub(super) fn convert(
    config: &mut Config,
    own: &[(Where, String)],
) -> Result<Report, (String, String)> {
    let mut report = Report::default();
    super::deprecated::convert(config, &mut report.converted)?;
    // A MediaMTX file names hlsAddress and not httpAddress: HTTP playback (HLS and HTTP-FLV)
    // is served there alone, rather than on a second port the operator never asked for.
    let own_global = |key: &str| own.iter().any(|(at, k)| *at == Where::Global && k == key);
    if own_global("hlsAddress") && !own_global("httpAddress") {
        if let Some(addr) = config.hls_address {
            config.http_address = addr;
            report
                .applied
                .push("hlsAddress (as httpAddress: no httpAddress in the file)".to_owned());
        }
    }
    let set_http_origins = !own
        .iter()
        .any(|(at, k)| *at == Where::Global && k == "httpAllowOrigins");
    if let Some(Value::Array(origins)) = config.mediamtx.get("hlsAllowOrigins") {
        let origins: Option<Vec<String>> = origins
            .iter()
            .map(|o| o.as_str().map(str::to_owned))
            .collect();
        let Some(origins) = origins else {
            return Err((
                "hlsAllowOrigins".to_owned(),
                "expected a list of origins".to_owned(),
            ));
        };
        if set_http_origins {
            config.http_allow_origins = origins;
            report
                .applied
                .push("hlsAllowOrigins (as httpAllowOrigins)".to_owned());
        }
    }

    for (at, key) in own {
        let (level, prefix) = match at {
            Where::Global => (Level::Global, String::new()),
            Where::PathDefaults => (Level::Path, "pathDefaults.".to_owned()),
            Where::Path(name) => (Level::Path, format!("paths.{name}.")),
        };
        if is_mediamtx_name(level, key) {
            report.applied.push(format!("{prefix}{key}"));
        }
    }
    let mut global = config.mediamtx.clone();
    if set_http_origins {
        // Applied above, so not a feature left unserved.
        global.remove("hlsAllowOrigins");
    }
    // The deprecated keys stay beside their successors (shown back by the API): reported as
    // converted, not as features left unserved.
    global.retain(|k, _| !super::deprecated::is_converted_alias(true, k));
    let path_kept = |kept: &BTreeMap<String, Value>| {
        let mut kept = kept.clone();
        kept.retain(|k, _| !super::deprecated::is_converted_alias(false, k));
        kept
    };
    report.add_kept(Level::Global, "", &global);
    report.add_kept(
        Level::Path,
        "pathDefaults.",
        &path_kept(&config.path_defaults.mediamtx),
    );
    for (name, fields) in config.paths.iter() {
        report.add_kept(
            Level::Path,
            &format!("paths.{name}."),
            &path_kept(&fields.mediamtx),
        );
    }
    Ok(report)
}

/// Every global key of MediaMTX (v1.20 and its development head, deprecated ones included): name and kind.
pub(super) const GLOBAL: &[(&str, Kind)] = &[
    ("api", Kind::Bool),
    ("apiAddress", Kind::Text),
    ("apiAllowOrigin", Kind::Text),
    ("apiAllowOrigins", Kind::Any),
    ("apiEncryption", Kind::Bool),
    ("apiServerCert", Kind::Text),
    ("apiServerKey", Kind::Text),
    ("apiTrustedProxies", Kind::Any),
    ("authHTTPAddress", Kind::Text),
    ("authHTTPExclude", Kind::Any),
    ("authHTTPFingerprint", Kind::Text),
    ("authInternalUsers", Kind::Any),
    ("authJWTAudience", Kind::Text),
    ("authJWTClaimKey", Kind::Text),
    ("authJWTExclude", Kind::Any),
    ("authJWTInHTTPQuery", Kind::Bool),
    ("authJWTIssuer", Kind::Text),
    ("authJWTJWKS", Kind::Text),
    ("authJWTJWKSFingerprint", Kind::Text),
    ("authMethod", Kind::Any),
    ("authMethods", Kind::Any),
    ("dumpPackets", Kind::Bool),
    ("encryption", Kind::Any),
    ("externalAuthenticationURL", Kind::Text),
    ("hls", Kind::Bool),
    ("hlsAddress", Kind::Text),
    ("hlsAllowOrigin", Kind::Text),
    ("hlsAllowOrigins", Kind::Any),
    ("hlsAlwaysRemux", Kind::Bool),
    ("hlsCDNSecret", Kind::Text),
    ("hlsDirectory", Kind::Text),
    ("hlsDisable", Kind::Bool),
    ("hlsEncryption", Kind::Bool),
    ("hlsMuxerCloseAfter", Kind::Duration),
    ("hlsPartDuration", Kind::Duration),
    ("hlsSegmentCount", Kind::Number),
    ("hlsSegmentDuration", Kind::Duration),
    ("hlsSegmentMaxSize", Kind::Size),
    ("hlsServerCert", Kind::Text),
    ("hlsServerKey", Kind::Text),
    ("hlsTrustedProxies", Kind::Any),
    ("hlsVariant", Kind::Any),
    ("logDestinations", Kind::Any),
    ("logFile", Kind::Text),
    ("logLevel", Kind::Any),
    ("logStructured", Kind::Bool),
    ("metrics", Kind::Bool),
    ("metricsAddress", Kind::Text),
    ("metricsAllowOrigin", Kind::Text),
    ("metricsAllowOrigins", Kind::Any),
    ("metricsEncryption", Kind::Bool),
    ("metricsServerCert", Kind::Text),
    ("metricsServerKey", Kind::Text),
    ("metricsTrustedProxies", Kind::Any),
    ("moq", Kind::Bool),
    ("moqAllowOrigins", Kind::Any),
    ("moqHTTP2Address", Kind::Text),
    ("moqHTTP3Address", Kind::Text),
    ("moqHTTPS2Address", Kind::Text),
    ("moqHTTPS3Address", Kind::Text),
    ("moqQUICAddress", Kind::Text),
    ("moqServerCert", Kind::Text),
    ("moqServerKey", Kind::Text),
    ("moqTrustedProxies", Kind::Any),
    ("multicastIPRange", Kind::Text),
    ("multicastRTCPPort", Kind::Number),
    ("multicastRTPPort", Kind::Number),
    ("multicastSRTCPPort", Kind::Number),
    ("multicastSRTPPort", Kind::Number),
    ("playbackAllowOrigin", Kind::Text),
    ("playbackAllowOrigins", Kind::Any),
    ("playbackEncryption", Kind::Bool),
    ("playbackServerCert", Kind::Text),
    ("playbackServerKey", Kind::Text),
    ("playbackTrustedProxies", Kind::Any),
    ("pprof", Kind::Bool),
    ("pprofAddress", Kind::Text),
    ("pprofAllowOrigin", Kind::Text),
    ("pprofAllowOrigins", Kind::Any),
    ("pprofEncryption", Kind::Bool),
    ("pprofServerCert", Kind::Text),
    ("pprofServerKey", Kind::Text),
    ("pprofTrustedProxies", Kind::Any),
    ("protocols", Kind::Any),
    ("readBufferCount", Kind::Number),
    ("readTimeout", Kind::Duration),
    ("record", Kind::Bool),
    ("recordDeleteAfter", Kind::Duration),
    ("recordFormat", Kind::Any),
    ("recordPartDuration", Kind::Duration),
    ("recordPath", Kind::Text),
    ("recordSegmentDuration", Kind::Duration),
    ("rtcpAddress", Kind::Text),
    ("rtmp", Kind::Bool),
    ("rtmpAddress", Kind::Text),
    ("rtmpDisable", Kind::Bool),
    ("rtmpEncryption", Kind::Any),
    ("rtmpServerCert", Kind::Text),
    ("rtmpServerKey", Kind::Text),
    ("rtmpTrustedProxies", Kind::Any),
    ("rtmpsAddress", Kind::Text),
    ("rtpAddress", Kind::Text),
    ("rtsp", Kind::Bool),
    ("rtspAddress", Kind::Text),
    ("rtspAuthMethods", Kind::Any),
    ("rtspDisable", Kind::Bool),
    ("rtspEncryption", Kind::Any),
    ("rtspServerCert", Kind::Text),
    ("rtspServerKey", Kind::Text),
    ("rtspTransports", Kind::Any),
    ("rtspTrustedProxies", Kind::Any),
    ("rtspUDPReadBufferSize", Kind::Number),
    ("rtspsAddress", Kind::Text),
    ("runOnConnect", Kind::Text),
    ("runOnConnectRestart", Kind::Bool),
    ("runOnDisconnect", Kind::Text),
    ("serverCert", Kind::Text),
    ("serverKey", Kind::Text),
    ("srt", Kind::Bool),
    ("srtAddress", Kind::Text),
    ("srtcpAddress", Kind::Text),
    ("srtpAddress", Kind::Text),
    ("sysLogPrefix", Kind::Text),
    ("udpMaxPayloadSize", Kind::Number),
    ("udpReadBufferSize", Kind::Number),
    ("webrtc", Kind::Bool),
    ("webrtcAdditionalHosts", Kind::Any),
    ("webrtcAddress", Kind::Text),
    ("webrtcAllowOrigin", Kind::Text),
    ("webrtcAllowOrigins", Kind::Any),
    ("webrtcDisable", Kind::Bool),
    ("webrtcEncryption", Kind::Bool),
    ("webrtcHandshakeTimeout", Kind::Duration),
    ("webrtcICEHostNAT1To1IPs", Kind::Any),
    ("webrtcICEServers", Kind::Any),
    ("webrtcICEServers2", Kind::Any),
    ("webrtcICETCPMuxAddress", Kind::Text),
    ("webrtcICEUDPMuxAddress", Kind::Text),
    ("webrtcIPsFromInterfaces", Kind::Bool),
    ("webrtcIPsFromInterfacesList", Kind::Any),
    ("webrtcLocalTCPAddress", Kind::Text),
    ("webrtcLocalUDPAddress", Kind::Text),
    ("webrtcSTUNGatherTimeout", Kind::Duration),
    ("webrtcServerCert", Kind::Text),
    ("webrtcServerKey", Kind::Text),
    ("webrtcTrackGatherTimeout", Kind::Duration),
    ("webrtcTrustedProxies", Kind::Any),
    ("writeQueueSize", Kind::Number),
    ("writeTimeout", Kind::Duration),
];

/// Every key of a MediaMTX path entry (and `pathDefaults`): name and kind.
pub(super) const PATH: &[(&str, Kind)] = &[
    ("alwaysAvailable", Kind::Bool),
    ("alwaysAvailableFile", Kind::Text),
    ("alwaysAvailableTracks", Kind::Any),
    ("disablePublisherOverride", Kind::Bool),
    ("fallback", Kind::Text),
    ("forward", Kind::Any),
    ("maxReaders", Kind::Number),
    ("moqTransport", Kind::Any),
    ("mpegtsUDPReadBufferSize", Kind::Number),
    ("overridePublisher", Kind::Bool),
    ("playback", Kind::Bool),
    ("publishIPs", Kind::Any),
    ("publishPass", Kind::Text),
    ("publishUser", Kind::Text),
    ("readIPs", Kind::Any),
    ("readPass", Kind::Text),
    ("readUser", Kind::Text),
    ("rpiCameraAWB", Kind::Text),
    ("rpiCameraAWBGains", Kind::Any),
    ("rpiCameraAfMode", Kind::Text),
    ("rpiCameraAfRange", Kind::Text),
    ("rpiCameraAfSpeed", Kind::Text),
    ("rpiCameraAfWindow", Kind::Text),
    ("rpiCameraBitrate", Kind::Number),
    ("rpiCameraBrightness", Kind::Number),
    ("rpiCameraCamID", Kind::Number),
    ("rpiCameraCodec", Kind::Text),
    ("rpiCameraContrast", Kind::Number),
    ("rpiCameraDenoise", Kind::Text),
    ("rpiCameraEV", Kind::Number),
    ("rpiCameraExposure", Kind::Text),
    ("rpiCameraFPS", Kind::Number),
    ("rpiCameraFlickerPeriod", Kind::Number),
    ("rpiCameraGain", Kind::Number),
    ("rpiCameraH264Level", Kind::Text),
    ("rpiCameraH264Profile", Kind::Text),
    ("rpiCameraHDR", Kind::Bool),
    ("rpiCameraHFlip", Kind::Bool),
    ("rpiCameraHardwareH264Level", Kind::Text),
    ("rpiCameraHardwareH264Profile", Kind::Text),
    ("rpiCameraHeight", Kind::Number),
    ("rpiCameraIDRPeriod", Kind::Number),
    ("rpiCameraJPEGQuality", Kind::Number),
    ("rpiCameraLensPosition", Kind::Number),
    ("rpiCameraLevel", Kind::Text),
    ("rpiCameraMJPEGQuality", Kind::Number),
    ("rpiCameraMetering", Kind::Text),
    ("rpiCameraMode", Kind::Text),
    ("rpiCameraProfile", Kind::Text),
    ("rpiCameraROI", Kind::Text),
    ("rpiCameraSaturation", Kind::Number),
    ("rpiCameraSecondary", Kind::Bool),
    ("rpiCameraSharpness", Kind::Number),
    ("rpiCameraShutter", Kind::Number),
    ("rpiCameraSoftwareH264Level", Kind::Text),
    ("rpiCameraSoftwareH264Profile", Kind::Text),
    ("rpiCameraTextOverlay", Kind::Text),
    ("rpiCameraTextOverlayEnable", Kind::Bool),
    ("rpiCameraTuningFile", Kind::Text),
    ("rpiCameraVFlip", Kind::Bool),
    ("rpiCameraWidth", Kind::Number),
    ("rtpSDP", Kind::Text),
    ("rtpUDPReadBufferSize", Kind::Number),
    ("rtspAnyPort", Kind::Bool),
    ("rtspDemuxMpegts", Kind::Bool),
    ("rtspRangeStart", Kind::Text),
    ("rtspRangeType", Kind::Any),
    ("rtspScale", Kind::Text),
    ("rtspTransport", Kind::Any),
    ("rtspUDPReadBufferSize", Kind::Number),
    ("rtspUDPSourcePortRange", Kind::Any),
    ("runOnAvailable", Kind::Text),
    ("runOnAvailableRestart", Kind::Bool),
    ("runOnDemand", Kind::Text),
    ("runOnDemandCloseAfter", Kind::Duration),
    ("runOnDemandRestart", Kind::Bool),
    ("runOnDemandStartTimeout", Kind::Duration),
    ("runOnInit", Kind::Text),
    ("runOnInitRestart", Kind::Bool),
    ("runOnNotReady", Kind::Text),
    ("runOnOffline", Kind::Text),
    ("runOnOnline", Kind::Text),
    ("runOnOnlineRestart", Kind::Bool),
    ("runOnRead", Kind::Text),
    ("runOnReadRestart", Kind::Bool),
    ("runOnReady", Kind::Text),
    ("runOnReadyRestart", Kind::Bool),
    ("runOnRecordSegmentComplete", Kind::Text),
    ("runOnRecordSegmentCreate", Kind::Text),
    ("runOnUnDemand", Kind::Text),
    ("runOnUnavailable", Kind::Text),
    ("runOnUnread", Kind::Text),
    ("source", Kind::Text),
    ("sourceAnyPortEnable", Kind::Bool),
    ("sourceFingerprint", Kind::Text),
    ("sourceOnDemand", Kind::Bool),
    ("sourceOnDemandCloseAfter", Kind::Duration),
    ("sourceOnDemandStartTimeout", Kind::Duration),
    ("sourceProtocol", Kind::Any),
    ("sourceRedirect", Kind::Text),
    ("srtPublishPassphrase", Kind::Text),
    ("srtReadPassphrase", Kind::Text),
    ("useAbsoluteTimestamp", Kind::Bool),
    ("whepBearerToken", Kind::Text),
    ("whepHandshakeTimeout", Kind::Duration),
    ("whepSTUNGatherTimeout", Kind::Duration),
    ("whepTrackGatherTimeout", Kind::Duration),
];

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::test_support::{error, parse};

    #[test]
    fn stock_files_load() {
        for text in [
            include_str!("../../../tests/testdata/mediamtx/mediamtx-v1.20.1.yml"),
            include_str!("../../../tests/testdata/mediamtx/mediamtx-v1.16.1.yml"),
        ] {
            let c = parse(text);
            assert_eq!(c.rtmp_address.to_string(), "0.0.0.0:1935");
            assert_eq!(c.http_address.to_string(), "0.0.0.0:8888");
            assert_eq!(c.http_listeners().len(), 1);
            assert!(!c.api && !c.metrics && c.rtmp && c.hls);
            assert_eq!(c.mediamtx.get("rtsp"), Some(&Value::Bool(true)));
            assert_eq!(c.path_defaults.override_publisher, Some(true));
            assert_eq!(c.path_defaults.record, Some(false));
            assert_eq!(
                c.path_defaults.record_path.as_deref(),
                Some(crate::config::DEFAULT_RECORD_PATH)
            );
            assert!(c.paths.get("all_others").is_some());
            let lines = c.compat_report.not_served_lines();
            assert!(
                lines
                    .iter()
                    .any(|l| l.starts_with("RTSP server: not served")),
                "{lines:?}"
            );
            assert!(
                !lines.iter().any(|l| l.starts_with("recording")),
                "{lines:?}"
            );
        }
    }

    #[test]
    fn path_defaults_are_mediamtx_keys() {
        let mut v = serde_json::json!({"name": "cam", "rpiCameraCodec": "softwareH264"});
        add_path_defaults(&mut v);
        assert_eq!(v["rpiCameraCodec"], "softwareH264");
        assert_eq!(v["rpiCameraIDRPeriod"], 60);
        assert_eq!(v["runOnInit"], "");
        for key in v.as_object().unwrap().keys() {
            assert!(
                key == "name"
                    || is_mediamtx_name(Level::Path, key)
                    || kind_of(Level::Path, key).is_some(),
                "{key} is no MediaMTX path key"
            );
        }
    }

    #[test]
    fn yaml_1_1_booleans_everywhere() {
        let c = parse("metrics: yes\napi: off\nhlsAlwaysRemux: On\npathDefaults:\n  sourceOnDemand: no\npaths:\n  cam:\n    overridePublisher: Y\n    record: yes\n");
        assert!(c.metrics && !c.api && c.hls_always_remux);
        assert_eq!(c.path_defaults.source_on_demand, Some(false));
        let cam = c.paths.get("cam").unwrap();
        assert_eq!(cam.override_publisher, Some(true));
        assert_eq!(cam.record, Some(true));
        assert!(c
            .compat_report
            .applied
            .contains(&"paths.cam.record".to_owned()));
        let e = error("logLevel: info\nmetrics: si\n");
        assert!(e.starts_with("m.yml:2:10: "), "{e}");
        assert!(e.contains("\"si\", expected a boolean"), "{e}");
    }

    #[test]
    fn kept_values_are_checked_at_their_position() {
        let e = error("rtsp: true\nwriteTimeout: soon\n");
        assert!(e.starts_with("m.yml:2:15: "), "{e}");
        assert!(e.contains("not a duration"), "{e}");
        let e = error("paths:\n  cam:\n    recordMaxPartSize: huge\n");
        assert!(e.starts_with("m.yml:3:"), "{e}");
        assert!(e.contains("not a size"), "{e}");
        let e = error("paths:\n  cam:\n    recordFormat: mkv\n");
        assert!(e.starts_with("m.yml:3:"), "{e}");
        assert!(e.contains("unknown variant `mkv`"), "{e}");
        let e = error("udpMaxPayloadSize: [1]\n");
        assert!(e.contains("udpMaxPayloadSize"), "{e}");
        let c = parse("writeTimeout: 1d2h\nhlsSegmentMaxSize: 50M\nrunOnConnect: 1234\n");
        assert_eq!(c.mediamtx.get("runOnConnect"), Some(&Value::from("1234")));
    }

    #[test]
    fn unknown_keys_are_refused_at_every_level() {
        for (text, at, key) in [
            (
                "rtsp: true\nrtspAdress: :8554\n",
                "m.yml:2:1: ",
                "rtspAdress",
            ),
            ("pathDefaults:\n  recrd: yes\n", "m.yml:2:3: ", "recrd"),
            (
                "paths:\n  cam:\n    source: publisher\n    runOnReadyy: x\n",
                "m.yml:4:5: ",
                "runOnReadyy",
            ),
        ] {
            let e = error(text);
            assert!(e.starts_with(at), "{e}");
            assert!(e.contains(&format!("unknown field `{key}`")), "{e}");
        }
        // Below the filtered levels, the derived code's own strictness stays.
        let e = error("authInternalUsers:\n  - user: any\n    passw: x\n");
        assert!(e.contains("unknown field `passw`"), "{e}");
    }

    #[test]
    fn the_api_round_trip_keeps_mediamtx_keys() {
        let c = parse(
            "rtsp: yes\npathDefaults:\n  record: no\npaths:\n  cam:\n    runOnReady: ffmpeg -i x\n",
        );
        let mut overlay = serde_json::Map::new();
        overlay.insert("readTimeout".into(), Value::from("5s"));
        let c = super::super::state::apply(&c, &overlay).unwrap();
        assert_eq!(c.read_timeout, super::super::Millis(5_000));
        assert_eq!(c.mediamtx.get("rtsp"), Some(&Value::Bool(true)));
        assert_eq!(
            c.paths.get("cam").unwrap().mediamtx.get("runOnReady"),
            Some(&Value::from("ffmpeg -i x"))
        );
        let shown =
            c.paths
                .get("cam")
                .unwrap()
                .resolve_json("cam", &c.path_defaults, c.override_publisher);
        assert_eq!(shown["record"], false, "{shown}");
        assert_eq!(shown["runOnReady"], "ffmpeg -i x", "{shown}");
    }
}
