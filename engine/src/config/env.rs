//! MediaMTX's environment overrides, read after the file as MediaMTX reads them:
//! `MTX_<KEY>` sets a global key (`MTX_RTMPADDRESS=:1936`), `MTX_PATHDEFAULTS_<KEY>` a key of
//! `pathDefaults`, `MTX_PATHS_<NAME>_<KEY>` a key of the entry `name` (created when missing;
//! the name is lowercased and has no `_`, as in MediaMTX). Keys are the configuration's keys in
//! upper case, Corestream's own (`MTX_HTTPADDRESS`) and MediaMTX's alike. Booleans are
//! `yes`/`no`/`true`/`false`, lists are comma-separated. Other `MTX_*` variables (those MediaMTX
//! hands to its hooks, say) are ignored, as MediaMTX ignores them.

use serde_json::{Map, Value};

use super::compat;
use super::mediamtx::{self, Kind, Level};
use super::{Config, PathFields};

const PREFIX: &str = "MTX_";

/// The process's `MTX_*` variables.
pub(super) fn from_process() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with(PREFIX))
        .collect()
}

/// `config` with the overrides of `environment` applied and validated; `Err` names the
/// variable.
pub(super) fn apply(config: Config, environment: &[(String, String)]) -> Result<Config, String> {
    let global_own = compat::struct_fields::<Config>();
    let path_own = compat::struct_fields::<PathFields>();
    let mut sets = Vec::new();
    for (var, text) in environment {
        let Some(rest) = var.strip_prefix(PREFIX) else {
            continue;
        };
        if rest == "CONFKEY" {
            return Err(format!(
                "{var}: encrypted configuration files are not supported by corestream"
            ));
        }
        if let Some(key) = rest.strip_prefix("PATHDEFAULTS_") {
            if let Some(key) = find_key(Level::Path, path_own, key) {
                sets.push((var, Target::PathDefaults, key, text));
            }
        } else if let Some(rest) = rest.strip_prefix("PATHS_") {
            let Some((name, key)) = rest.split_once('_') else {
                continue;
            };
            if name.is_empty() || name != name.to_uppercase() {
                continue;
            }
            if let Some(key) = find_key(Level::Path, path_own, key) {
                sets.push((var, Target::Path(name.to_lowercase()), key, text));
            }
        } else if let Some(key) = find_key(Level::Global, global_own, rest) {
            if key != "paths" && key != "pathDefaults" {
                sets.push((var, Target::Global, key, text));
            }
        }
    }
    if sets.is_empty() {
        return Ok(config);
    }
    // The file named hlsAddress and not httpAddress, so HTTP playback follows hlsAddress (see
    // `mediamtx::convert`): an override of hlsAddress moves both, unless httpAddress has its own.
    let http_follows_hls = config
        .compat_report
        .applied
        .iter()
        .any(|a| a.starts_with("hlsAddress (as httpAddress"))
        && !sets
            .iter()
            .any(|(_, t, k, _)| matches!(t, Target::Global) && *k == "httpAddress");
    if http_follows_hls {
        if let Some((var, _, _, text)) = sets
            .iter()
            .find(|(_, t, k, _)| matches!(t, Target::Global) && *k == "hlsAddress")
            .cloned()
        {
            sets.push((var, Target::Global, "httpAddress", text));
        }
    }
    let report = config.compat_report.clone();
    let mut doc = match serde_json::to_value(&config) {
        Ok(Value::Object(doc)) => doc,
        _ => return Err("the configuration does not serialize to a mapping".to_owned()),
    };
    let mut names = Vec::new();
    for (var, target, key, text) in sets {
        let set = |map: &mut Map<String, Value>, level| {
            let value = typed(level, key, map.get(key), text)?;
            map.insert(key.to_owned(), value);
            Ok::<_, String>(())
        };
        match &target {
            Target::Global => set(&mut doc, Level::Global),
            Target::PathDefaults => with_object(&mut doc, "pathDefaults", |m| set(m, Level::Path)),
            Target::Path(name) => with_object(&mut doc, "paths", |paths| {
                with_object(paths, name, |m| set(m, Level::Path))
            }),
        }
        .map_err(|e| format!("{var}: {e}"))?;
        if !names.contains(var) {
            names.push(var.clone());
        }
    }
    let mut config = Config::from_value(Value::Object(doc))
        .map_err(|e| format!("environment ({}): {e}", names.join(", ")))?;
    config.compat_report = report;
    config.compat_report.environment = names;
    Ok(config)
}

#[derive(Clone)]
enum Target {
    Global,
    PathDefaults,
    Path(String),
}

/// The key whose upper-case form is `upper`, among Corestream's own and MediaMTX's.
fn find_key(level: Level, own: &'static [&'static str], upper: &str) -> Option<&'static str> {
    own.iter()
        .copied()
        .chain(mediamtx::keys(level))
        .find(|k| k.to_uppercase() == upper)
}

/// Runs `f` on the JSON object under `key`, created (or replacing a `null`) when missing.
fn with_object<R>(
    map: &mut Map<String, Value>,
    key: &str,
    f: impl FnOnce(&mut Map<String, Value>) -> R,
) -> R {
    let mut object = match map.remove(key) {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let result = f(&mut object);
    map.insert(key.to_owned(), Value::Object(object));
    result
}

/// The variable's text as the type the key holds: the current value's type, else MediaMTX's
/// kind of the key, else text.
fn typed(level: Level, key: &str, current: Option<&Value>, text: &str) -> Result<Value, String> {
    let kind = mediamtx::kind_of(level, key);
    let as_bool = || match text.to_lowercase().as_str() {
        "yes" | "true" => Ok(Value::Bool(true)),
        "no" | "false" => Ok(Value::Bool(false)),
        _ => Err(format!("invalid value '{text}'")),
    };
    let as_number = || {
        text.parse::<i64>()
            .map(Value::from)
            .or_else(|_| text.parse::<f64>().map(Value::from))
            .map_err(|_| format!("invalid value '{text}': expected a number"))
    };
    let as_list = || {
        if text.is_empty() {
            Value::Array(Vec::new())
        } else {
            Value::Array(
                text.split(',')
                    .map(|s| Value::String(s.to_owned()))
                    .collect(),
            )
        }
    };
    match (current, kind) {
        (Some(Value::Bool(_)), _) | (_, Some(Kind::Bool)) => as_bool(),
        (Some(Value::Number(_)), _) | (_, Some(Kind::Number)) => as_number(),
        (Some(Value::Array(_)), _) => Ok(as_list()),
        _ => Ok(Value::String(text.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn overrides_globals_path_defaults_and_paths() {
        let c = Config::parse_with_env(
            "paths:\n  cam:\n    source: publisher\n",
            "c.yaml",
            &env(&[
                ("MTX_RTMPADDRESS", "127.0.0.1:1999"),
                ("MTX_HTTPADDRESS", ":8081"),
                ("MTX_METRICS", "no"),
                ("MTX_RTSP", "yes"),
                ("MTX_HLSALLOWORIGINS", "a,b"),
                ("MTX_PATHDEFAULTS_MAXREADERS", "4"),
                ("MTX_PATHS_CAM_SOURCE", "rtmp://origin/live/cam"),
                ("MTX_PATHS_NEW_RECORD", "yes"),
                ("MTX_PATH", "ignored: MediaMTX hands it to hooks"),
                ("MTX_NOSUCHKEY", "ignored"),
            ]),
        )
        .unwrap();
        assert_eq!(c.rtmp_address.to_string(), "127.0.0.1:1999");
        assert_eq!(c.http_address.to_string(), "0.0.0.0:8081");
        assert!(!c.metrics);
        assert_eq!(c.mediamtx.get("rtsp"), Some(&Value::Bool(true)));
        assert_eq!(c.path_defaults.max_readers, Some(4));
        assert_eq!(
            c.paths.get("cam").unwrap().source.as_deref(),
            Some("rtmp://origin/live/cam")
        );
        assert_eq!(c.paths.get("new").unwrap().record, Some(true));
        assert_eq!(c.compat_report.environment.len(), 8);
    }

    #[test]
    fn http_follows_an_overridden_hls_address() {
        let file = "hlsAddress: :8888\n";
        let c = Config::parse_with_env(file, "m.yml", &[]).unwrap();
        assert_eq!(c.http_listeners().len(), 1);
        assert_eq!(c.http_address.to_string(), "0.0.0.0:8888");
        let c =
            Config::parse_with_env(file, "m.yml", &env(&[("MTX_HLSADDRESS", ":9999")])).unwrap();
        assert_eq!(c.http_address.to_string(), "0.0.0.0:9999");
        assert_eq!(c.http_listeners().len(), 1);
        let c = Config::parse_with_env(
            "httpAddress: :8080\nhlsAddress: :8888\n",
            "m.yml",
            &env(&[("MTX_HLSADDRESS", ":9999")]),
        )
        .unwrap();
        let listeners: Vec<String> = c.http_listeners().iter().map(|a| a.to_string()).collect();
        assert_eq!(listeners, ["0.0.0.0:8080", "0.0.0.0:9999"]);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = Config::parse_with_env("", "c.yaml", &env(&[("MTX_API", "maybe")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("MTX_API: invalid value 'maybe'"), "{e}");
        let e = Config::parse_with_env("", "c.yaml", &env(&[("MTX_READTIMEOUT", "soon")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("MTX_READTIMEOUT"), "{e}");
        let e = Config::parse_with_env("", "c.yaml", &env(&[("MTX_CONFKEY", "k")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not supported"), "{e}");
    }
}
