//! The configuration as the API changes it: the live snapshot, the overlay of API changes, and
//! the state file they are persisted to.
//!
//! A change is planned without side effects ([`plan`]: validate, build the new configuration and
//! overlay), then committed: the new snapshot is built (auth rules compiled), the overlay written
//! atomically, and only then the snapshot handed to every data core. A change that does not
//! validate or cannot be persisted is not applied.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use serde_json::{Map, Value};
use tracing::{info, warn};

use super::ApiError;
use crate::config::state::{self, Overlay};
use crate::config::{Config, Loaded, PathFields, Paths, Snapshot};
use crate::runtime::ControlLink;

/// Global keys that only take effect at start: the API refuses to change them. (`logLevel` and
/// the `api` and `metrics` switches change while running, see `Api::change_global`.)
const RESTART_ONLY: [&str; 12] = [
    "cores",
    "rtmp",
    "rtmpAddress",
    "httpAddress",
    "hls",
    "hlsAddress",
    "apiAddress",
    "metricsAddress",
    "playback",
    "playbackAddress",
    "apiStateFile",
    "domainsDir",
];

/// Top-level keys that are not part of the global configuration.
const NOT_GLOBAL: [&str; 2] = ["paths", "pathDefaults"];

/// One change the API can make.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// `PATCH /v3/config/global/patch`: the given global keys.
    Global(Map<String, Value>),
    /// `PATCH /v3/config/pathdefaults/patch`.
    PathDefaults(PathFields),
    Add(String, PathFields),
    Patch(String, PathFields),
    /// Creates the entry when it is missing.
    Replace(String, PathFields),
    Delete(String),
}

impl Change {
    /// The change a write endpoint's body asks for; a body that is not the expected JSON is a 400.
    pub fn global(body: &[u8]) -> Result<Change, ApiError> {
        match parse_json::<Value>(body)? {
            Value::Object(map) => Ok(Change::Global(map)),
            _ => Err(ApiError::invalid("json: expected an object")),
        }
    }
}

/// A path entry body (add, patch, replace, path defaults): Corestream's fields and MediaMTX's
/// path keys (kept and shown back, see `config::mediamtx`); anything else is a 400.
pub fn parse_path_fields(body: &[u8]) -> Result<PathFields, ApiError> {
    PathFields::from_json(parse_json(body)?).map_err(|e| ApiError::Invalid(json_error(&e)))
}

/// A decoding error in MediaMTX's words where a client can tell: an unknown key is
/// `json: unknown field "key"`; anything else keeps serde's text after `json: `.
fn json_error(e: &dyn std::fmt::Display) -> String {
    let text = e.to_string();
    const UNKNOWN: &str = "unknown field `";
    if let Some(at) = text.find(UNKNOWN) {
        let rest = &text[at + UNKNOWN.len()..];
        if let Some(end) = rest.find('`') {
            return format!("json: unknown field \"{}\"", &rest[..end]);
        }
    }
    format!("json: {text}")
}

/// Parses a JSON body strictly; an empty body is an empty object.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| ApiError::Invalid(json_error(&e)))
}

/// The global configuration as JSON: every key but `paths` and `pathDefaults`, secrets redacted.
pub fn global_json(config: &Config) -> Value {
    let mut v = serde_json::to_value(config).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut v {
        for k in NOT_GLOBAL {
            map.remove(k);
        }
    }
    super::redact::global(config, v)
}

/// `fields` with every URL sent back redacted (`<redacted>` in place of credentials) replaced by
/// the stored URL it stands for.
fn restore_path(fields: &PathFields, stored: Option<&PathFields>) -> PathFields {
    let mut f = fields.clone();
    let Some(stored) = stored else {
        return f;
    };
    if let Some(s) = f.source.as_mut() {
        super::redact::restore_url(s, stored.source.as_deref());
    }
    super::redact::restore_kept(f.mediamtx.iter_mut(), &stored.mediamtx);
    if let (Some(list), Some(old)) = (f.origins.as_mut(), stored.origins.as_ref()) {
        for (i, o) in list.iter_mut().enumerate() {
            super::redact::restore_url(o, old.get(i).map(String::as_str));
        }
    }
    if let (Some(list), Some(old)) = (f.forward.as_mut(), stored.forward.as_ref()) {
        for (i, t) in list.iter_mut().enumerate() {
            super::redact::restore_url(&mut t.dest, old.get(i).map(|o| o.dest.as_str()));
        }
    }
    f
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(ApiError::invalid)
}

/// Plans `change` over `config` and `overlay`: the validated new configuration and the overlay to
/// persist. No side effects.
pub fn plan(
    config: &Config,
    overlay: &Overlay,
    change: &Change,
) -> Result<(Config, Overlay), ApiError> {
    let Value::Object(mut doc) = to_value(config)? else {
        return Err(ApiError::invalid("configuration is not a mapping"));
    };
    let mut overlay = overlay.clone();
    let mut set_path = |doc: &mut Map<String, Value>, name: &str, fields: Option<&PathFields>| {
        let value = match fields {
            Some(f) => to_value(f)?,
            None => Value::Null,
        };
        if let Some(Value::Object(paths)) = doc.get_mut("paths") {
            match fields {
                Some(_) => {
                    paths.insert(name.to_owned(), value.clone());
                }
                None => {
                    paths.remove(name);
                }
            }
        }
        let entries = overlay
            .entry("paths")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(entries) = entries {
            entries.insert(name.to_owned(), value);
        }
        Ok::<(), ApiError>(())
    };
    match change {
        Change::Global(patch) => {
            let mut patch = patch.clone();
            super::redact::restore_global(&mut patch, config).map_err(ApiError::invalid)?;
            for (key, value) in &patch {
                if NOT_GLOBAL.contains(&key.as_str()) {
                    return Err(ApiError::invalid(format!("json: unknown field \"{key}\"")));
                }
                doc.insert(key.clone(), value.clone());
            }
        }
        Change::PathDefaults(fields) => {
            let fields = restore_path(fields, Some(&config.path_defaults));
            let merged = config.path_defaults.patched(&fields);
            doc.insert("pathDefaults".to_owned(), to_value(&merged)?);
        }
        Change::Add(name, fields) => {
            Paths::check_name(name).map_err(ApiError::Invalid)?;
            if config.paths.get(name).is_some() {
                return Err(ApiError::PathExists);
            }
            set_path(&mut doc, name, Some(fields))?;
        }
        Change::Patch(name, fields) => {
            let Some(current) = config.paths.get(name) else {
                return Err(ApiError::PathNotFound);
            };
            let fields = restore_path(fields, Some(current));
            set_path(&mut doc, name, Some(&current.patched(&fields)))?;
        }
        Change::Replace(name, fields) => {
            Paths::check_name(name).map_err(ApiError::Invalid)?;
            let fields = restore_path(fields, config.paths.get(name));
            set_path(&mut doc, name, Some(&fields))?
        }
        Change::Delete(name) => {
            if config.paths.get(name).is_none() {
                return Err(ApiError::PathNotFound);
            }
            set_path(&mut doc, name, None)?;
        }
    }
    // `authInternalUsers` made from per-path credentials are made again from what the change
    // leaves: shown back, they are no users of the configuration's own.
    let sets_users = matches!(change, Change::Global(p) if p.contains_key("authInternalUsers"));
    if crate::config::has_legacy_credentials(config) && !sets_users {
        doc.remove("authInternalUsers");
    }
    let new = Config::from_value(Value::Object(doc)).map_err(|e| {
        if e.contains("unknown field `") {
            ApiError::Invalid(json_error(&e))
        } else {
            ApiError::Invalid(e)
        }
    })?;
    let old_doc = to_value(config)?;
    let new_doc = to_value(&new)?;
    match change {
        Change::Global(patch) => {
            for key in patch.keys() {
                // A deprecated key lands in its successors: those are checked and persisted.
                for stored in crate::config::global_successors(key) {
                    if RESTART_ONLY.contains(&stored.as_str())
                        && old_doc.get(&stored) != new_doc.get(&stored)
                    {
                        return Err(ApiError::invalid(format!(
                            "'{key}' cannot be changed while the engine runs: edit the configuration file and restart"
                        )));
                    }
                    if let Some(v) = new_doc.get(&stored) {
                        overlay.insert(stored, v.clone());
                    }
                }
            }
        }
        Change::PathDefaults(_) => {
            if let Some(v) = new_doc.get("pathDefaults") {
                overlay.insert("pathDefaults".to_owned(), v.clone());
            }
        }
        _ => {}
    }
    Ok((new, overlay))
}

/// Logs, once, what a change newly asks for that Corestream does not serve (MediaMTX keys of
/// features it lacks: kept and shown back, not served) and the deprecated keys it converted, as
/// the start logs them for the file.
fn report_news(before: &Config, after: &Config) {
    let old = before.compat_report.not_served_lines();
    for line in after.compat_report.not_served_lines() {
        if !old.contains(&line) {
            warn!("{line}");
        }
    }
    for c in &after.compat_report.converted {
        if !before.compat_report.converted.contains(c) {
            info!("deprecated MediaMTX key converted: {c}");
        }
    }
}

/// The live configuration and its persisted overlay, on the control core.
pub struct Store {
    snapshot: RefCell<Arc<Snapshot>>,
    overlay: RefCell<Overlay>,
    state_path: Option<PathBuf>,
}

impl Store {
    /// Starts from the snapshot the engine was started with (state file already laid over it).
    pub fn new(snapshot: Arc<Snapshot>) -> Rc<Store> {
        let state_path = state::state_path(&snapshot.config, &snapshot.source);
        let overlay = match &state_path {
            Some(p) => state::read_overlay(p).unwrap_or_else(|e| {
                // Config::load read it a moment ago; this only happens if it changed since.
                warn!("{e}; API changes start from an empty overlay");
                Overlay::new()
            }),
            None => Overlay::new(),
        };
        if state_path.is_none() {
            warn!("no apiStateFile for the embedded configuration: API changes are not persisted");
        }
        Rc::new(Store {
            snapshot: RefCell::new(snapshot),
            overlay: RefCell::new(overlay),
            state_path,
        })
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.borrow().clone()
    }

    /// What the API changed so far, as persisted.
    pub fn overlay(&self) -> Overlay {
        self.overlay.borrow().clone()
    }

    /// Validates, persists and hot-applies `change`. Returns once every data core applied it.
    pub async fn apply(&self, link: &ControlLink, change: &Change) -> Result<(), ApiError> {
        let current = self.snapshot();
        let (config, overlay) = plan(&current.config, &self.overlay.borrow(), change)?;
        let snapshot = Snapshot::build(Loaded {
            config,
            source: current.source.clone(),
        })
        .map_err(ApiError::invalid)?;
        info!("reloading configuration (API request)");
        report_news(&current.config, &snapshot.config);
        if let Some(path) = &self.state_path {
            state::write_overlay(path, &overlay)?;
        }
        // No await since the plan: concurrent writes are applied in order, none lost.
        *self.overlay.borrow_mut() = overlay;
        *self.snapshot.borrow_mut() = snapshot.clone();
        if !link.apply_config(&snapshot).await {
            warn!("a data core did not confirm the configuration update in time");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Config {
        Config::parse(
            "paths:\n  all_others:\n  live/a: {maxReaders: 2}\n",
            "c.yaml",
        )
        .unwrap()
    }

    fn fields(v: Value) -> PathFields {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn add_patch_replace_delete() {
        let c = base();
        let o = Overlay::new();
        let err = plan(&c, &o, &Change::Add("live/a".into(), PathFields::default())).unwrap_err();
        assert_eq!(
            (err.status(), err.to_string().as_str()),
            (400, "path already exists")
        );

        let (c2, o2) = plan(
            &c,
            &o,
            &Change::Add("live/b/c".into(), fields(json!({"maxReaders": 1}))),
        )
        .unwrap();
        assert_eq!(c2.path_conf("live/b/c").unwrap().max_readers, 1);
        assert_eq!(o2["paths"]["live/b/c"], json!({"maxReaders": 1}));

        let (c3, _) = plan(
            &c2,
            &o2,
            &Change::Patch("live/a".into(), fields(json!({"overridePublisher": true}))),
        )
        .unwrap();
        let a = c3.path_conf("live/a").unwrap();
        assert!(a.override_publisher);
        assert_eq!(a.max_readers, 2, "patch keeps the other fields");

        let (c4, _) = plan(
            &c3,
            &o2,
            &Change::Replace("live/a".into(), PathFields::default()),
        )
        .unwrap();
        assert_eq!(
            c4.path_conf("live/a").unwrap().max_readers,
            0,
            "replace drops them"
        );

        let (c5, o5) = plan(&c4, &o2, &Change::Delete("live/a".into())).unwrap();
        assert_eq!(c5.path_conf("live/a").unwrap().name, "all_others");
        assert_eq!(o5["paths"]["live/a"], Value::Null, "a tombstone");

        for change in [
            Change::Delete("nope".into()),
            Change::Patch("nope".into(), PathFields::default()),
        ] {
            let e = plan(&c, &o, &change).unwrap_err();
            assert_eq!(
                (e.status(), e.to_string().as_str()),
                (404, "path not found")
            );
        }
    }

    #[test]
    fn invalid_changes_say_why() {
        let c = base();
        let o = Overlay::new();
        let e = plan(
            &c,
            &o,
            &Change::Add("x".into(), fields(json!({"source": "rtsps://cam/1"}))),
        )
        .unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.to_string().contains("not supported yet"), "{e}");
        let e = plan(&c, &o, &Change::Add("/x".into(), PathFields::default())).unwrap_err();
        assert!(e.to_string().contains("slash"), "{e}");
        let e = plan(&c, &o, &Change::Add("~(".into(), PathFields::default())).unwrap_err();
        assert!(e.to_string().contains("regular expression"), "{e}");
        let e = parse_json::<PathFields>(br#"{"maxReaders": "many"}"#).unwrap_err();
        assert!(e.to_string().starts_with("json: "), "{e}");
    }

    #[test]
    fn deprecated_keys_convert_and_persist_under_their_successors() {
        let c = base();
        let o = Overlay::new();
        let patch = |v: Value| Change::global(v.to_string().as_bytes()).unwrap();
        let (c2, o2) = plan(
            &c,
            &o,
            &patch(json!({"readBufferCount": 1024, "protocols": ["tcp"], "record": true})),
        )
        .unwrap();
        let shown = global_json(&c2);
        assert_eq!(shown["writeQueueSize"], 1024);
        assert_eq!(shown["rtspTransports"], json!(["tcp"]));
        assert_eq!(o2.get("writeQueueSize"), Some(&json!(1024)));
        assert_eq!(o2.get("rtspTransports"), Some(&json!(["tcp"])));
        assert_eq!(o2["pathDefaults"]["record"], true);
        // The old names are kept and shown too, as MediaMTX shows them (TestConfigGlobalPatch).
        assert_eq!(o2.get("readBufferCount"), Some(&json!(1024)));
        assert_eq!(shown["readBufferCount"], 1024);
        assert_eq!(shown["protocols"], json!(["tcp"]));
        // Path aliases: `disablePublisherOverride` is the negation of `overridePublisher`.
        let add = Change::Add(
            "cam".into(),
            parse_path_fields(br#"{"disablePublisherOverride":true,"sourceProtocol":"tcp"}"#)
                .unwrap(),
        );
        let (c3, o3) = plan(&c2, &o2, &add).unwrap();
        let cam = c3.path_conf("cam").unwrap();
        assert!(!cam.override_publisher);
        assert_eq!(cam.rtsp_transport, "tcp");
        assert_eq!(
            c3.paths.get("cam").unwrap().mediamtx["disablePublisherOverride"],
            true
        );
        // A later write over the converted credentials makes the users again from them.
        let secure = Change::Add(
            "secure".into(),
            parse_path_fields(br#"{"readUser":"v","readPass":"p"}"#).unwrap(),
        );
        let (c4, o4) = plan(&c3, &o3, &secure).unwrap();
        let users = |c: &Config| serde_json::to_value(&c.auth_internal_users).unwrap();
        assert!(users(&c4).to_string().contains(r#""user":"v""#));
        let patch_secure = Change::Patch(
            "secure".into(),
            parse_path_fields(br#"{"readUser":"w"}"#).unwrap(),
        );
        let (c5, _) = plan(&c4, &o4, &patch_secure).unwrap();
        assert!(users(&c5).to_string().contains(r#""user":"w""#));
        assert!(!users(&c5).to_string().contains(r#""user":"v""#));
        assert_eq!(c5.paths.get("secure").unwrap().mediamtx["readPass"], "p");
    }

    #[test]
    fn global_patch() {
        let c = base();
        let o = Overlay::new();
        let patch = |v: Value| Change::global(v.to_string().as_bytes()).unwrap();
        let (c2, o2) = plan(
            &c,
            &o,
            &patch(json!({"readTimeout": "3s", "overridePublisher": true})),
        )
        .unwrap();
        assert_eq!(c2.read_timeout.0, 3_000);
        assert_eq!(
            o2,
            serde_json::from_value::<Overlay>(
                json!({"readTimeout": "3s", "overridePublisher": true})
            )
            .unwrap()
        );
        // Sending back what GET returned is fine, even the keys that cannot change.
        assert!(plan(
            &c,
            &o,
            &Change::Global(global_json(&c).as_object().unwrap().clone())
        )
        .is_ok());
        let e = plan(&c, &o, &patch(json!({"rtmpAddress": ":1936"}))).unwrap_err();
        assert!(
            e.to_string()
                .contains("cannot be changed while the engine runs"),
            "{e}"
        );
        let e = plan(&c, &o, &patch(json!({"paths": {}}))).unwrap_err();
        assert_eq!(e.to_string(), "json: unknown field \"paths\"");
        let e = plan(&c, &o, &patch(json!({"readTimout": "3s"}))).unwrap_err();
        assert_eq!(e.to_string(), "json: unknown field \"readTimout\"");
        let e = parse_path_fields(br#"{"bogus":1}"#).unwrap_err();
        assert_eq!(e.to_string(), "json: unknown field \"bogus\"");
        assert!(Change::global(b"[1]").is_err());
    }

    #[test]
    fn path_defaults_patch_reaches_entries() {
        let c = base();
        let (c2, o2) = plan(
            &c,
            &Overlay::new(),
            &Change::PathDefaults(fields(json!({"maxReaders": 7}))),
        )
        .unwrap();
        assert_eq!(c2.path_conf("other").unwrap().max_readers, 7);
        assert_eq!(c2.path_conf("live/a").unwrap().max_readers, 2);
        assert_eq!(o2["pathDefaults"], json!({"maxReaders": 7}));
    }
}
