//! MediaMTX's deprecated keys, converted as MediaMTX converts them when it loads a file: renamed
//! to their successors (negated or wrapped in a list where MediaMTX does that), the global
//! `record*` keys moved into `pathDefaults`, `externalAuthenticationURL` made `authMethod: http`,
//! and the per-path credentials (`publishUser`, …, `readIPs`) made `authInternalUsers`. Where
//! both a deprecated key and its successor are set, the deprecated one wins, as in MediaMTX.
//! The renamed keys and the credentials stay where they were set, beside what they became: the
//! API shows them back as MediaMTX does (its tests `TestConfigGlobalPatch`,
//! `TestConfigPathsAdd`, `TestConfigPathsList` read `readBufferCount`, `disablePublisherOverride`
//! and `readUser` back).

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Config, PathFields};
use crate::auth::AuthMethod;

/// How a deprecated MediaMTX key becomes its successor.
#[derive(Debug, Clone, Copy)]
enum Change {
    Same,
    /// `rtmpDisable: yes` is `rtmp: false`.
    Not,
    /// `hlsAllowOrigin: x` is `hlsAllowOrigins: [x]`.
    List,
}

/// MediaMTX's deprecated global keys and their successors, converted as MediaMTX converts them
/// (the deprecated key wins when both are set). `rtmp` and `hls` are then Corestream's own.
const GLOBAL_ALIASES: &[(&str, &str, Change)] = &[
    ("rtmpDisable", "rtmp", Change::Not),
    ("hlsDisable", "hls", Change::Not),
    ("rtspDisable", "rtsp", Change::Not),
    ("webrtcDisable", "webrtc", Change::Not),
    ("hlsAllowOrigin", "hlsAllowOrigins", Change::List),
    ("apiAllowOrigin", "apiAllowOrigins", Change::List),
    ("metricsAllowOrigin", "metricsAllowOrigins", Change::List),
    ("pprofAllowOrigin", "pprofAllowOrigins", Change::List),
    ("playbackAllowOrigin", "playbackAllowOrigins", Change::List),
    ("webrtcAllowOrigin", "webrtcAllowOrigins", Change::List),
    ("readBufferCount", "writeQueueSize", Change::Same),
    ("protocols", "rtspTransports", Change::Same),
    ("encryption", "rtspEncryption", Change::Same),
    ("serverKey", "rtspServerKey", Change::Same),
    ("serverCert", "rtspServerCert", Change::Same),
    ("authMethods", "rtspAuthMethods", Change::Same),
    (
        "webrtcICEUDPMuxAddress",
        "webrtcLocalUDPAddress",
        Change::Same,
    ),
    (
        "webrtcICETCPMuxAddress",
        "webrtcLocalTCPAddress",
        Change::Same,
    ),
    (
        "webrtcICEHostNAT1To1IPs",
        "webrtcAdditionalHosts",
        Change::Same,
    ),
    ("moqHTTPS2Address", "moqHTTP2Address", Change::Same),
    ("moqHTTPS3Address", "moqHTTP3Address", Change::Same),
];

/// The same for path keys; `overridePublisher` and `rtspTransport` are Corestream's own.
const PATH_ALIASES: &[(&str, &str, Change)] = &[
    ("disablePublisherOverride", "overridePublisher", Change::Not),
    ("sourceProtocol", "rtspTransport", Change::Same),
    ("sourceAnyPortEnable", "rtspAnyPort", Change::Same),
];

/// Global recording keys MediaMTX moved to `pathDefaults`.
const RECORD_GLOBALS: &[&str] = &[
    "record",
    "recordPath",
    "recordFormat",
    "recordPartDuration",
    "recordSegmentDuration",
    "recordDeleteAfter",
];

/// MediaMTX's per-path credentials, replaced by `authInternalUsers`.
const CREDENTIALS: &[&str] = &[
    "publishUser",
    "publishPass",
    "publishIPs",
    "readUser",
    "readPass",
    "readIPs",
];

/// MediaMTX's conversion of per-path credentials: anyone may use playback, the API, metrics and
/// pprof from localhost, and each path entry gets a publish and a read user (its
/// `publishUser`/`readUser` or `any`, its password, its IPs or `0.0.0.0/0`) for that path
/// (`all_others` and `all` become `~^.*$`). `pathDefaults` sets what an entry leaves unset.
fn users_from_credentials<'a>(
    defaults: &BTreeMap<String, Value>,
    entries: impl Iterator<Item = (&'a str, &'a BTreeMap<String, Value>)>,
) -> Value {
    let mut users = vec![
        serde_json::json!({"user": "any", "permissions": [{"action": "playback"}]}),
        serde_json::json!({
            "user": "any",
            "ips": ["127.0.0.1/32", "::1/128"],
            "permissions": [{"action": "api"}, {"action": "metrics"}, {"action": "pprof"}],
        }),
    ];
    for (name, kept) in entries {
        let get = |key: &str| {
            kept.get(key)
                .or_else(|| defaults.get(key))
                .filter(|v| !v.is_null())
        };
        let text = |key: &str| get(key).and_then(Value::as_str).filter(|s| !s.is_empty());
        let path = if name == "all_others" || name == "all" {
            "~^.*$"
        } else {
            name
        };
        for (action, user, pass, ips) in [
            ("publish", "publishUser", "publishPass", "publishIPs"),
            ("read", "readUser", "readPass", "readIPs"),
        ] {
            let ips = match get(ips) {
                Some(Value::Array(list)) if !list.is_empty() => Value::Array(list.clone()),
                _ => serde_json::json!(["0.0.0.0/0"]),
            };
            users.push(serde_json::json!({
                "user": text(user).unwrap_or("any"),
                "pass": text(pass).unwrap_or(""),
                "ips": ips,
                "permissions": [{"action": action, "path": path}],
            }));
        }
    }
    Value::Array(users)
}

/// Renames the deprecated keys of `kept`; each conversion is noted in `converted`.
fn rename(
    kept: &mut BTreeMap<String, Value>,
    aliases: &[(&str, &str, Change)],
    at: &str,
    converted: &mut Vec<String>,
) {
    for (from, to, change) in aliases {
        let Some(value) = kept.get(*from).cloned() else {
            continue;
        };
        if value.is_null() {
            continue;
        }
        let value = match change {
            Change::Same => value,
            Change::Not => Value::Bool(value != Value::Bool(true)),
            Change::List => Value::Array(vec![value]),
        };
        converted.push(format!("{at}{from} -> {to}"));
        kept.insert((*to).to_owned(), value);
    }
}

/// The top-level keys that hold what the global key `key` set once converted: `key` itself, and
/// where `key` is deprecated, its successors (`readBufferCount` is kept as `writeQueueSize` too,
/// `record` in `pathDefaults`). The API persists these, so a change made with an old name
/// survives a restart and is shown back after it.
pub fn global_successors(key: &str) -> Vec<String> {
    if let Some((_, to, _)) = GLOBAL_ALIASES.iter().find(|(from, _, _)| *from == key) {
        return vec![key.to_owned(), (*to).to_owned()];
    }
    if RECORD_GLOBALS.contains(&key) {
        return vec!["pathDefaults".to_owned()];
    }
    if key == "externalAuthenticationURL" {
        return vec!["authMethod".to_owned(), "authHTTPAddress".to_owned()];
    }
    vec![key.to_owned()]
}

/// Whether `key` is a deprecated MediaMTX key this module converts (global when `global`, else a
/// path key): applied through its successors, so it is no feature left unserved.
pub(super) fn is_converted_alias(global: bool, key: &str) -> bool {
    if global {
        GLOBAL_ALIASES.iter().any(|(from, _, _)| *from == key)
    } else {
        PATH_ALIASES.iter().any(|(from, _, _)| *from == key) || CREDENTIALS.contains(&key)
    }
}

/// Whether a path entry or the path defaults hold MediaMTX's per-path credentials, which make
/// `authInternalUsers` (so a configuration that has them has no `authInternalUsers` of its own).
pub fn has_legacy_credentials(config: &Config) -> bool {
    let has = |kept: &BTreeMap<String, Value>| CREDENTIALS.iter().any(|k| kept.contains_key(*k));
    has(&config.path_defaults.mediamtx) || config.paths.iter().any(|(_, f)| has(&f.mediamtx))
}

/// Path keys Corestream has under another name: applied to the entry's own fields.
fn take_path_own(fields: &mut PathFields) {
    if let Some(Value::Bool(b)) = fields.mediamtx.remove("overridePublisher") {
        fields.override_publisher = Some(b);
    }
    if let Some(Value::String(t)) = fields.mediamtx.remove("rtspTransport") {
        fields.rtsp_transport = Some(t);
    }
}

/// Converts every deprecated key of `config`; each conversion is noted in `converted`. `Err`
/// names the key and the reason.
pub(super) fn convert(
    config: &mut Config,
    converted: &mut Vec<String>,
) -> Result<(), (String, String)> {
    rename(&mut config.mediamtx, GLOBAL_ALIASES, "", converted);
    if let Some(Value::Bool(b)) = config.mediamtx.remove("rtmp") {
        config.rtmp = b;
    }
    if let Some(Value::Bool(b)) = config.mediamtx.remove("hls") {
        config.hls = b;
    }
    if let Some(Value::String(url)) = config.mediamtx.remove("externalAuthenticationURL") {
        config.auth_method = AuthMethod::Http;
        config.auth_http_address = Some(url);
        converted.push("externalAuthenticationURL -> authMethod: http, authHTTPAddress".to_owned());
    }
    let mut moved = serde_json::Map::new();
    for key in RECORD_GLOBALS {
        if let Some(value) = config.mediamtx.remove(*key) {
            if !value.is_null() {
                converted.push(format!("{key} -> pathDefaults.{key}"));
                moved.insert((*key).to_owned(), value);
            }
        }
    }
    if !moved.is_empty() {
        // The file's own `pathDefaults.record*` win over the deprecated globals.
        let globals: PathFields = serde_json::from_value(Value::Object(moved))
            .map_err(|e| ("record".to_owned(), e.to_string()))?;
        config.path_defaults = globals.patched(&config.path_defaults);
    }
    rename(
        &mut config.path_defaults.mediamtx,
        PATH_ALIASES,
        "pathDefaults.",
        converted,
    );
    take_path_own(&mut config.path_defaults);
    let mut entries: Vec<(String, &mut PathFields)> = config
        .paths
        .iter_mut()
        .map(|(name, fields)| (name.clone(), fields))
        .collect();
    for (name, fields) in &mut entries {
        rename(
            &mut fields.mediamtx,
            PATH_ALIASES,
            &format!("paths.{name}."),
            converted,
        );
        take_path_own(fields);
    }
    // `publishUser:` with no value is unset, as in MediaMTX (a null pointer there).
    for kept in std::iter::once(&mut config.path_defaults.mediamtx)
        .chain(entries.iter_mut().map(|(_, f)| &mut f.mediamtx))
    {
        kept.retain(|k, v| !(CREDENTIALS.contains(&k.as_str()) && v.is_null()));
    }
    let has_credentials =
        |kept: &BTreeMap<String, Value>| CREDENTIALS.iter().any(|k| kept.contains_key(*k));
    if has_credentials(&config.path_defaults.mediamtx)
        || entries.iter().any(|(_, f)| has_credentials(&f.mediamtx))
    {
        let users = users_from_credentials(
            &config.path_defaults.mediamtx,
            entries.iter().map(|(name, f)| (name.as_str(), &f.mediamtx)),
        );
        let default_users = serde_json::to_value(crate::auth::default_users()).ok();
        if serde_json::to_value(&config.auth_internal_users).ok() != default_users {
            return Err((
                "authInternalUsers".to_owned(),
                "authInternalUsers and legacy credentials (publishUser, publishPass, publishIPs, \
                 readUser, readPass, readIPs) cannot be used together"
                    .to_owned(),
            ));
        }
        config.auth_internal_users = serde_json::from_value(users).map_err(|e| {
            (
                "publishUser".to_owned(),
                format!("legacy credentials do not convert: {e}"),
            )
        })?;
        converted.push(
            "publishUser, publishPass, publishIPs, readUser, readPass, readIPs -> authInternalUsers"
                .to_owned(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::test_support::{error, parse};

    #[test]
    fn deprecated_keys_convert_as_mediamtx_converts_them() {
        let c = parse(
            "rtmpDisable: yes\nhlsDisable: no\nrtspDisable: yes\nhlsAllowOrigin: https://a\n\
             readBufferCount: 256\nrecord: yes\nrecordPath: ./r/%path/%s\n\
             externalAuthenticationURL: http://127.0.0.1:9000/auth\n\
             paths:\n  cam:\n    disablePublisherOverride: yes\n    sourceProtocol: tcp\n    source: rtsp://cam/1\n",
        );
        assert!(!c.rtmp && c.hls);
        assert_eq!(c.mediamtx.get("rtsp"), Some(&Value::Bool(false)));
        assert_eq!(c.http_allow_origins, ["https://a"]);
        assert_eq!(c.mediamtx.get("writeQueueSize"), Some(&Value::from(256)));
        assert_eq!(c.mediamtx.get("readBufferCount"), Some(&Value::from(256)));
        assert!(!c.mediamtx.contains_key("record"));
        assert_eq!(c.path_defaults.record, Some(true));
        assert_eq!(c.path_defaults.record_path.as_deref(), Some("./r/%path/%s"));
        assert_eq!(c.auth_method, AuthMethod::Http);
        assert_eq!(
            c.auth_http_address.as_deref(),
            Some("http://127.0.0.1:9000/auth")
        );
        let cam = c.paths.get("cam").unwrap();
        assert_eq!(cam.override_publisher, Some(false));
        assert_eq!(cam.rtsp_transport.as_deref(), Some("tcp"));
        assert!(c
            .compat_report
            .converted
            .iter()
            .any(|c| c == "rtmpDisable -> rtmp"));
        // `rtspDisable: yes` asks for no RTSP: nothing to log.
        assert!(c
            .compat_report
            .not_served_lines()
            .iter()
            .all(|l| !l.starts_with("RTSP server")));
    }

    #[test]
    fn legacy_credentials_become_internal_users() {
        let c = parse(
            "pathDefaults:\n  readIPs: [10.0.0.0/8]\npaths:\n  cam:\n    publishUser: pub\n    publishPass: secret\n  all_others:\n",
        );
        let users = serde_json::to_value(&c.auth_internal_users).unwrap();
        assert_eq!(users.as_array().unwrap().len(), 6, "{users}");
        // Entries in name order: all_others, then cam; each a publish and a read user.
        assert_eq!(users[2]["user"], "any", "{users}");
        assert_eq!(users[2]["ips"][0], "0.0.0.0/0", "{users}");
        assert_eq!(users[2]["permissions"][0]["path"], "~^.*$", "{users}");
        assert_eq!(users[3]["ips"][0], "10.0.0.0/8", "{users}");
        assert_eq!(users[4]["user"], "pub", "{users}");
        assert_eq!(users[4]["pass"], "secret", "{users}");
        assert_eq!(users[4]["permissions"][0]["action"], "publish", "{users}");
        assert_eq!(users[4]["permissions"][0]["path"], "cam", "{users}");
        assert_eq!(users[5]["permissions"][0]["action"], "read", "{users}");
        // Kept beside the users they made, as MediaMTX keeps them (its API shows them back).
        assert_eq!(c.paths.get("cam").unwrap().mediamtx["publishUser"], "pub");
        assert!(c.compat_report.not_served_lines().is_empty());
        let e = error(
            "authInternalUsers:\n  - user: x\n    pass: y\npaths:\n  cam:\n    readUser: r\n",
        );
        assert!(e.contains("cannot be used together"), "{e}");
    }
}
