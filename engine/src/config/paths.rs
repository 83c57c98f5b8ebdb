//! MediaMTX path configuration: `paths` entries over `pathDefaults`, and which entry a path falls
//! under.
//!
//! A path name is `app/stream` of the RTMP/HTTP URL (or `app` alone). An entry is named by an exact
//! path name, by `~regex` (an unanchored RE2-style search, as MediaMTX's `FindStringSubmatch`), or
//! `all_others` / `all` (everything else). [`Paths::find`] tries them in MediaMTX's order: the exact
//! name, then every regex entry in name order, then `all_others` / `all`.
//!
//! Entries are stored as written ([`PathFields`], every field optional) and made whole on lookup
//! over `pathDefaults` and the built-in defaults ([`PathConf`]), so a change to `pathDefaults`
//! reaches every entry that does not set the field itself, as in MediaMTX.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use regex_automata::dfa::regex::Regex;
use serde::de::{Deserializer, Error as _};
use serde::{Deserialize, Serialize, Serializer};

use super::{Millis, Size};
use crate::auth::users::compile_regex;

/// The entry names that match every path no other entry matches.
const CATCH_ALL: [&str; 2] = ["all_others", "all"];

/// One `paths` entry (or `pathDefaults`) as written: unset fields come from the defaults.
/// Also the JSON body of the API's add, patch and replace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PathFields {
    /// Accepted and ignored: MediaMTX's GET answers carry it, and clients send them back.
    #[serde(default, skip_serializing)]
    pub name: Option<String>,
    /// `publisher`, or a pull URL (`rtmp(s)://…`, `rtsp://…`, `http(s)://…/x.flv`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Hex SHA-256 of an `https://` or `rtmps://` source's certificate (MediaMTX's `sourceFingerprint`): that
    /// certificate is accepted instead of checking the chain against the public roots, so a
    /// self-signed origin can be pulled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_on_demand: Option<bool>,
    /// How an `rtsp://` source carries RTP: `tcp` (interleaved), `udp`, or `automatic`
    /// (MediaMTX's name: UDP, then TCP when UDP is refused or silent). `multicast` is refused:
    /// not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtsp_transport: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_on_demand_start_timeout: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_on_demand_close_after: Option<Millis>,
    /// Readers allowed at once; 0 is no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_readers: Option<u32>,
    /// Whether a new publisher replaces the live one; unset: the global `overridePublisher`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_publisher: Option<bool>,
    /// How long a player's media may wait to be merged into one write; unset: the global
    /// `writeMergeLatency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_merge_latency: Option<Millis>,
    /// Where every live stream of the path is pushed onward (`rtmp://…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward: Option<Vec<ForwardTarget>>,
    /// Origins an edge pulls an unknown stream from, in order (`rtmp://origin/app`); the
    /// stream's name is appended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origins: Option<Vec<String>>,
    /// Whether the path's live streams are written to disk (MediaMTX's `record`, off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<bool>,
    /// Where segments go: a template with `%path %Y %m %d %H %M %S %f %s` (and `%z`); the
    /// format's extension is added (MediaMTX's `recordPath`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_format: Option<RecordFormat>,
    /// How much media each append holds: a `moof`+`mdat` (fMP4) or a run of TS packets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_part_duration: Option<Millis>,
    /// A part is cut sooner when it holds this many bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_max_part_size: Option<Size>,
    /// A new segment (file) starts at the first keyframe after this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_segment_duration: Option<Millis>,
    /// Segments older than this are deleted; `0s` keeps them forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_delete_after: Option<Millis>,
    /// MediaMTX keys Corestream does not have (`record`, `runOnReady`, `rpiCamera*`, …), kept
    /// as written so the API shows them back; see `config::mediamtx`. Filled by the
    /// configuration's reader, never by the derived code (a typo must stay an error).
    #[serde(flatten, skip_deserializing)]
    pub mediamtx: BTreeMap<String, Value>,
}

/// One `forward` entry of a path.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardTarget {
    /// `rtmp(s)://host[:port]/app` (the stream's name is appended) or `rtmp(s)://host/app/stream`.
    pub dest: String,
    /// Hex SHA-256 of an `rtmps://` target's certificate, accepted instead of checking the chain
    /// against the public roots (as `sourceFingerprint` for sources). Shown under MediaMTX's name
    /// `destFingerprint` (`""` when unset, as MediaMTX shows it); `fingerprint` is read too.
    #[serde(
        default,
        rename = "destFingerprint",
        alias = "fingerprint",
        serialize_with = "empty_when_none",
        deserialize_with = "empty_is_none"
    )]
    pub fingerprint: Option<String>,
    /// MediaMTX's token for `whip(s)://` targets, which Corestream does not push to: accepted
    /// empty (as MediaMTX writes it), refused otherwise; shown as `""`.
    #[serde(
        default,
        rename = "whipBearerToken",
        serialize_with = "empty_when_none",
        deserialize_with = "empty_is_none"
    )]
    pub whip_bearer_token: Option<String>,
}

impl PathFields {
    /// A path entry from JSON (an API body): Corestream's fields and MediaMTX's path keys,
    /// kept; anything else is refused.
    pub fn from_json(value: Value) -> Result<PathFields, String> {
        let (mut fields, kept): (PathFields, _) =
            super::compat::deserialize_path_entry(value).map_err(|e| e.to_string())?;
        fields.mediamtx = kept;
        Ok(fields)
    }

    /// `self` with every field `patch` sets replaced (MediaMTX's PATCH), MediaMTX's kept keys
    /// included.
    pub fn patched(&self, patch: &PathFields) -> PathFields {
        let mut kept = self.mediamtx.clone();
        kept.extend(patch.mediamtx.clone());
        PathFields {
            mediamtx: kept,
            ..self.patched_own(patch)
        }
    }

    /// [`PathFields::patched`] for Corestream's own fields only: what a lookup needs, without
    /// copying the kept keys on every request.
    fn patched_own(&self, patch: &PathFields) -> PathFields {
        PathFields {
            name: None,
            source: patch.source.clone().or_else(|| self.source.clone()),
            source_fingerprint: patch
                .source_fingerprint
                .clone()
                .or_else(|| self.source_fingerprint.clone()),
            source_on_demand: patch.source_on_demand.or(self.source_on_demand),
            rtsp_transport: patch
                .rtsp_transport
                .clone()
                .or_else(|| self.rtsp_transport.clone()),
            source_on_demand_start_timeout: patch
                .source_on_demand_start_timeout
                .or(self.source_on_demand_start_timeout),
            source_on_demand_close_after: patch
                .source_on_demand_close_after
                .or(self.source_on_demand_close_after),
            max_readers: patch.max_readers.or(self.max_readers),
            override_publisher: patch.override_publisher.or(self.override_publisher),
            write_merge_latency: patch.write_merge_latency.or(self.write_merge_latency),
            forward: patch.forward.clone().or_else(|| self.forward.clone()),
            origins: patch.origins.clone().or_else(|| self.origins.clone()),
            record: patch.record.or(self.record),
            record_path: patch
                .record_path
                .clone()
                .or_else(|| self.record_path.clone()),
            record_format: patch.record_format.or(self.record_format),
            record_part_duration: patch.record_part_duration.or(self.record_part_duration),
            record_max_part_size: patch.record_max_part_size.or(self.record_max_part_size),
            record_segment_duration: patch
                .record_segment_duration
                .or(self.record_segment_duration),
            record_delete_after: patch.record_delete_after.or(self.record_delete_after),
            mediamtx: BTreeMap::new(),
        }
    }

    /// The whole configuration of `name`: `self` over `defaults` over the built-in defaults.
    pub fn resolve(&self, name: &str, defaults: &PathFields, override_publisher: bool) -> PathConf {
        let f = defaults.patched_own(self);
        PathConf {
            name: name.to_owned(),
            source: f.source.unwrap_or_else(|| "publisher".to_owned()),
            source_fingerprint: f.source_fingerprint.filter(|fp| !fp.is_empty()),
            source_on_demand: f.source_on_demand.unwrap_or(false),
            rtsp_transport: f.rtsp_transport.unwrap_or_else(|| "automatic".to_owned()),
            source_on_demand_start_timeout: f
                .source_on_demand_start_timeout
                .unwrap_or(Millis(10_000)),
            source_on_demand_close_after: f.source_on_demand_close_after.unwrap_or(Millis(10_000)),
            max_readers: f.max_readers.unwrap_or(0),
            override_publisher: f.override_publisher.unwrap_or(override_publisher),
            write_merge_latency: f.write_merge_latency,
            forward: f.forward.unwrap_or_default(),
            origins: f.origins.unwrap_or_default(),
            record: f.record.unwrap_or(false),
            record_path: f
                .record_path
                .unwrap_or_else(|| DEFAULT_RECORD_PATH.to_owned()),
            record_format: f.record_format.unwrap_or_default(),
            record_part_duration: f.record_part_duration.unwrap_or(Millis(1_000)),
            record_max_part_size: f.record_max_part_size.unwrap_or(Size(50 << 20)),
            record_segment_duration: f.record_segment_duration.unwrap_or(Millis(3_600_000)),
            record_delete_after: f.record_delete_after.unwrap_or(Millis(86_400_000)),
        }
    }

    /// [`PathFields::resolve`] as the API shows it: with MediaMTX's keys Corestream keeps but
    /// does not serve, as `pathDefaults` and the entry set them.
    pub fn resolve_json(
        &self,
        name: &str,
        defaults: &PathFields,
        override_publisher: bool,
    ) -> Value {
        let mut shown = serde_json::to_value(self.resolve(name, defaults, override_publisher))
            .unwrap_or(Value::Null);
        if let Value::Object(map) = &mut shown {
            for (key, value) in defaults.mediamtx.iter().chain(&self.mediamtx) {
                map.insert(key.clone(), value.clone());
            }
        }
        shown
    }
}

/// A path entry made whole: what the engine applies and the API shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PathConf {
    /// The entry's name (`live/cam1`, `~^live/`, `all_others`).
    pub name: String,
    pub source: String,
    /// `sourceFingerprint`; unset (or empty): the public roots decide. Shown as `""` when
    /// unset, as MediaMTX does.
    #[serde(serialize_with = "empty_when_none")]
    pub source_fingerprint: Option<String>,
    pub source_on_demand: bool,
    pub rtsp_transport: String,
    pub source_on_demand_start_timeout: Millis,
    pub source_on_demand_close_after: Millis,
    pub max_readers: u32,
    pub override_publisher: bool,
    /// Unset: the global `writeMergeLatency`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_merge_latency: Option<Millis>,
    /// Shown as `[]` when empty, as MediaMTX shows it.
    pub forward: Vec<ForwardTarget>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub origins: Vec<String>,
    pub record: bool,
    pub record_path: String,
    pub record_format: RecordFormat,
    pub record_part_duration: Millis,
    pub record_max_part_size: Size,
    pub record_segment_duration: Millis,
    pub record_delete_after: Millis,
}

/// MediaMTX's default `recordPath`.
pub const DEFAULT_RECORD_PATH: &str = "./recordings/%path/%Y-%m-%d_%H-%M-%S-%f";

/// How segments are written (MediaMTX's `recordFormat`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordFormat {
    /// Fragmented MP4: an init segment, then a `moof`+`mdat` per part (`.mp4`).
    #[default]
    Fmp4,
    /// MPEG-TS packets (`.ts`).
    Mpegts,
}

impl RecordFormat {
    /// The file extension MediaMTX gives the format, with its dot.
    pub fn extension(self) -> &'static str {
        match self {
            RecordFormat::Fmp4 => ".mp4",
            RecordFormat::Mpegts => ".ts",
        }
    }
}

impl PathConf {
    /// MediaMTX's rules for a path entry's fields; the reason is the API's 400 text.
    pub fn check(&self) -> Result<(), String> {
        check_source(&self.source)?;
        if let Some(fp) = &self.source_fingerprint {
            check_fingerprint("sourceFingerprint", fp)?;
        }
        match self.rtsp_transport.as_str() {
            "automatic" | "tcp" | "udp" => {}
            "multicast" => {
                return Err(format!(
                "rtspTransport '{}' is not supported yet: only 'automatic', 'tcp' and 'udp' are",
                self.rtsp_transport
            ))
            }
            other => return Err(format!("invalid rtspTransport: '{other}'")),
        }
        check_record(self)?;
        if self.source == "publisher" && self.source_on_demand && self.origins.is_empty() {
            return Err("'sourceOnDemand' is useless when source is 'publisher'".to_owned());
        }
        if self.source != "publisher" && !self.origins.is_empty() {
            return Err("'origins' can only be used when source is 'publisher'".to_owned());
        }
        for origin in &self.origins {
            if !origin.starts_with("rtmp://") && !origin.starts_with("rtmps://") {
                return Err(format!(
                    "origin '{origin}' is not supported: only rtmp:// and rtmps:// are"
                ));
            }
            crate::relay::url::parse(origin).map_err(|e| format!("origin '{origin}': {e}"))?;
        }
        for f in &self.forward {
            if !f.dest.starts_with("rtmp://") && !f.dest.starts_with("rtmps://") {
                return Err(format!(
                    "forward dest '{}' is not supported: only rtmp:// and rtmps:// are",
                    f.dest
                ));
            }
            if let Some(fp) = &f.fingerprint {
                check_fingerprint("forward fingerprint", fp)?;
            }
            if f.whip_bearer_token.is_some() {
                return Err(format!(
                    "forward dest '{}': whipBearerToken is for whip:// targets, which are not supported",
                    f.dest
                ));
            }
            if f.dest.contains("$MTX_PATH") {
                return Err(format!(
                    "forward dest '{}': $MTX_PATH is not supported yet: give rtmp://host/app and the stream's name is appended",
                    f.dest
                ));
            }
            crate::relay::url::parse(&f.dest)
                .map_err(|e| format!("forward dest '{}': {e}", f.dest))?;
        }
        Ok(())
    }
}

/// MediaMTX's rules for the recording fields.
fn check_record(conf: &PathConf) -> Result<(), String> {
    let path = &conf.record_path;
    if !path.contains("%path") {
        return Err("'recordPath' must contain %path".to_owned());
    }
    let has = |p: &str| path.contains(p);
    if !has("%s") && !["%Y", "%m", "%d", "%H", "%M", "%S"].iter().all(|p| has(p)) {
        return Err("'recordPath' must contain either %s or %Y %m %d %H %M %S".to_owned());
    }
    if conf.record_segment_duration.0 > 86_400_000 {
        return Err("maximum segment duration is 1 day".to_owned());
    }
    if conf.record_part_duration.0 == 0 {
        return Err("'recordPartDuration' must be greater than 0".to_owned());
    }
    if conf.record_delete_after.0 != 0 && conf.record_delete_after < conf.record_segment_duration {
        return Err("'recordDeleteAfter' cannot be lower than 'recordSegmentDuration'".to_owned());
    }
    Ok(())
}

/// MediaMTX writes an unset string as `""` (`destFingerprint: ""`).
fn empty_is_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
}

fn empty_when_none<S: Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.as_deref().unwrap_or_default())
}

/// A certificate fingerprint (`sourceFingerprint`, a forward's `fingerprint`) is 64 hex digits
/// (SHA-256), as `openssl x509 -noout -fingerprint -sha256` prints it without the colons; either
/// case.
fn check_fingerprint(key: &str, fp: &str) -> Result<(), String> {
    if fp.len() == 64 && fp.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(format!(
            "invalid {key} '{fp}': expected the 64 hex digits of a SHA-256 (without colons)"
        ))
    }
}

/// `publisher`, `rtmp(s)://…`, `rtsp://…`, `http(s)://…/x.flv` (HTTP-FLV) and any other
/// `http(s)://…` (HLS, MPEG-TS segments, as MediaMTX reads every HTTP source) are served; other
/// pull URLs are refused.
pub fn check_source(source: &str) -> Result<(), String> {
    const PULL: [&str; 12] = [
        "rtmp://",
        "rtmps://",
        "http://",
        "https://",
        "rtsp://",
        "rtsps://",
        "srt://",
        "udp://",
        "whep://",
        "wheps://",
        "redirect",
        "rpiCamera",
    ];
    if source == "publisher" {
        Ok(())
    } else if ["rtmp://", "rtmps://", "rtsp://"]
        .iter()
        .any(|p| source.starts_with(p))
        || is_http_flv(source)
        || is_hls(source)
    {
        crate::relay::url::parse(source)
            .map(drop)
            .map_err(|e| format!("invalid source: '{source}': {e}"))
    } else if PULL.iter().any(|p| source.starts_with(p)) {
        Err(format!(
            "source '{source}' is not supported yet: only 'publisher', 'rtmp(s)://…', 'rtsp://…', 'http(s)://…/x.flv' and 'http(s)://…' (HLS) are"
        ))
    } else {
        Err(format!("invalid source: '{source}'"))
    }
}

/// MediaMTX's API type of a pulling `source` (`rtmpSource`, `rtspSource`; `httpFlvSource` is
/// Corestream's own); `None` for `publisher`.
pub fn source_type(source: &str) -> Option<&'static str> {
    if source.starts_with("rtmp://") || source.starts_with("rtmps://") {
        Some("rtmpSource")
    } else if source.starts_with("rtsp://") || source.starts_with("rtsps://") {
        Some("rtspSource")
    } else if is_http_flv(source) {
        Some("httpFlvSource")
    } else if is_hls(source) {
        Some("hlsSource")
    } else {
        None
    }
}

/// An `http://` or `https://` URL that does not name an `.flv`: an HLS playlist, whatever its
/// name, as MediaMTX takes every HTTP source for one (its `hlsSource`; `http://host/cam` is a
/// playlist there too).
fn is_hls(source: &str) -> bool {
    (source.starts_with("http://") || source.starts_with("https://")) && !is_http_flv(source)
}

/// An `http://` or `https://` URL whose path ends in `.flv` (HTTP-FLV).
fn is_http_flv(source: &str) -> bool {
    let path = source.split(['?', '#']).next().unwrap_or_default();
    (source.starts_with("http://") || source.starts_with("https://")) && path.ends_with(".flv")
}

/// Why a name cannot be a path: MediaMTX's rule (alphanumerics, `_`, `.`, `-`, `/`) and texts.
pub fn check_path_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("cannot be empty".to_owned());
    }
    if name.starts_with('/') {
        return Err("can't begin with a slash".to_owned());
    }
    if name.ends_with('/') {
        return Err("can't end with a slash".to_owned());
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || "_-/.".contains(c);
    if !name.chars().all(ok) {
        return Err(
            "can contain only alphanumeric characters, underscore, dot, minus, slash".to_owned(),
        );
    }
    // A `.` or `..` segment would let a name climb out of its directory in a URL or a file.
    if name.split('/').any(|seg| seg == "." || seg == "..") {
        return Err("can't contain dot path segments".to_owned());
    }
    Ok(())
}

/// Why an entry name is refused: a regex that does not compile, or a bad path name (MediaMTX's
/// texts: `invalid regular expression: …`, `invalid path name '…': …`).
fn check_entry_name(name: &str) -> Result<Option<Regex>, String> {
    if CATCH_ALL.contains(&name) {
        return Ok(None);
    }
    match name.strip_prefix('~') {
        Some(re) => compile_regex(re)
            .map(Some)
            .map_err(|_| format!("invalid regular expression: {re}")),
        None => check_path_name(name)
            .map(|()| None)
            .map_err(|e| format!("invalid path name '{name}': {e}")),
    }
}

/// The `paths` map: entries as written, with their regexes compiled.
#[derive(Clone, Default)]
pub struct Paths {
    entries: BTreeMap<String, PathFields>,
    /// `~regex` entries in name order, compiled once when the entry is added.
    regexes: Vec<(String, Regex)>,
}

impl fmt::Debug for Paths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.entries.iter()).finish()
    }
}

impl PartialEq for Paths {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl Paths {
    /// The default when `paths` is absent: `all_others: {}`, every path allowed.
    pub fn all_others() -> Paths {
        let mut p = Paths::default();
        p.entries
            .insert("all_others".to_owned(), PathFields::default());
        p
    }

    /// Why `name` cannot be an entry's name (MediaMTX's texts), if it cannot.
    pub fn check_name(name: &str) -> Result<(), String> {
        check_entry_name(name).map(drop)
    }

    /// Adds or replaces an entry; `Err` says why the name is refused.
    pub fn insert(&mut self, name: &str, fields: PathFields) -> Result<(), String> {
        let regex = check_entry_name(name)?;
        self.regexes.retain(|(n, _)| n != name);
        if let Some(re) = regex {
            let at = self.regexes.partition_point(|(n, _)| n.as_str() < name);
            self.regexes.insert(at, (name.to_owned(), re));
        }
        let fields = PathFields {
            name: None,
            ..fields
        };
        self.entries.insert(name.to_owned(), fields);
        Ok(())
    }

    pub fn remove(&mut self, name: &str) -> Option<PathFields> {
        self.regexes.retain(|(n, _)| n != name);
        self.entries.remove(name)
    }

    /// Sets the MediaMTX keys an entry holds besides its own fields (see `config::compat`).
    pub(super) fn set_mediamtx(&mut self, name: &str, kept: BTreeMap<String, Value>) {
        if let Some(fields) = self.entries.get_mut(name) {
            fields.mediamtx = kept;
        }
    }

    /// Entries as written, changeable (names and so the regexes stay as they are).
    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = (&String, &mut PathFields)> {
        self.entries.iter_mut()
    }

    /// The entry named exactly `name`, as written.
    pub fn get(&self, name: &str) -> Option<&PathFields> {
        self.entries.get(name)
    }

    /// Entries as written, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &PathFields)> {
        self.entries.iter()
    }

    /// The entries that name one path each: neither a `~regex` nor `all_others` / `all`.
    pub fn literal_names(&self) -> impl Iterator<Item = &str> {
        self.entries
            .keys()
            .map(String::as_str)
            .filter(|n| !n.starts_with('~') && !CATCH_ALL.contains(n))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry a path falls under: its exact name, else the first matching `~regex` in name
    /// order, else `all_others` / `all`. `None`: the path is not configured.
    pub fn find(&self, path: &str) -> Option<(&str, &PathFields)> {
        if let Some((name, fields)) = self.entries.get_key_value(path) {
            if !path.starts_with('~') && !CATCH_ALL.contains(&path) {
                return Some((name, fields));
            }
        }
        for (name, re) in &self.regexes {
            if re.is_match(path.as_bytes()) {
                return self
                    .entries
                    .get_key_value(name)
                    .map(|(n, f)| (n.as_str(), f));
            }
        }
        CATCH_ALL
            .iter()
            .find_map(|n| self.entries.get_key_value(*n))
            .map(|(n, f)| (n.as_str(), f))
    }
}

impl Serialize for Paths {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.entries.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Paths {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // `name:` with nothing after it (YAML null) is an entry of defaults, as in MediaMTX.
        let raw = BTreeMap::<String, Option<PathFields>>::deserialize(d)?;
        let mut paths = Paths::default();
        for (name, fields) in raw {
            paths
                .insert(&name, fields.unwrap_or_default())
                .map_err(|e| D::Error::custom(format!("paths: `{name}`: {e}")))?;
        }
        Ok(paths)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(names: &[&str]) -> Paths {
        let mut p = Paths::default();
        for n in names {
            p.insert(n, PathFields::default()).unwrap();
        }
        p
    }

    #[test]
    fn exact_then_regex_in_name_order_then_all_others() {
        let p = paths(&["all_others", "live/cam1", "~^live/", "~^live/c", "~cam"]);
        assert_eq!(p.find("live/cam1").unwrap().0, "live/cam1");
        // Regexes are tried in name order: "~^live/" sorts before "~^live/c" and "~cam".
        assert_eq!(p.find("live/cam2").unwrap().0, "~^live/");
        assert_eq!(p.find("other/cam").unwrap().0, "~cam");
        assert_eq!(p.find("other/x").unwrap().0, "all_others");
        // An entry name is not a path: `all_others` and `~...` are never matched literally.
        assert_eq!(p.find("~cam").unwrap().0, "~cam");
        assert_eq!(paths(&["live/a"]).find("live/b"), None);
        assert_eq!(paths(&["all"]).find("x").unwrap().0, "all");
    }

    #[test]
    fn regex_is_an_unanchored_search() {
        let p = paths(&["~cam[0-9]+$"]);
        assert!(p.find("live/cam12").is_some());
        assert!(p.find("live/cam12x").is_none());
        assert!(p.find("cam").is_none());
    }

    #[test]
    fn removing_an_entry_removes_its_regex() {
        let mut p = paths(&["~^live/"]);
        assert!(p.find("live/a").is_some());
        p.remove("~^live/");
        assert!(p.find("live/a").is_none());
        assert!(p.is_empty());
    }

    #[test]
    fn names_are_checked() {
        let mut p = Paths::default();
        for bad in [
            "",
            "/live",
            "live/",
            "live cam",
            "live/é",
            "~(unclosed",
            "a/../b",
            "a/./b",
            "..",
        ] {
            assert!(p.insert(bad, PathFields::default()).is_err(), "{bad:?}");
        }
        assert_eq!(
            Paths::check_name("a/../b").unwrap_err(),
            "invalid path name 'a/../b': can't contain dot path segments"
        );
        assert_eq!(
            Paths::check_name("~(").unwrap_err(),
            "invalid regular expression: ("
        );
        assert_eq!(
            Paths::check_name("/x").unwrap_err(),
            "invalid path name '/x': can't begin with a slash"
        );
        // MediaMTX's characters only: no `~` inside a name (a leading one makes a regex), no `:`.
        for bad in ["a~b", "a:b", "a b"] {
            assert_eq!(
                p.insert(bad, PathFields::default()).unwrap_err(),
                format!("invalid path name '{bad}': can contain only alphanumeric characters, underscore, dot, minus, slash")
            );
        }
        for good in [
            "live",
            "live/cam1",
            "a.b-c_d/e",
            "a/..b/.c",
            "~^.*$",
            "all_others",
        ] {
            p.insert(good, PathFields::default()).unwrap();
        }
    }

    #[test]
    fn fields_resolve_over_defaults() {
        let defaults = PathFields {
            max_readers: Some(5),
            source_on_demand_close_after: Some(Millis(3_000)),
            ..PathFields::default()
        };
        let entry = PathFields {
            max_readers: Some(2),
            ..PathFields::default()
        };
        let conf = entry.resolve("live/a", &defaults, true);
        assert_eq!(conf.max_readers, 2);
        assert_eq!(conf.source_on_demand_close_after, Millis(3_000));
        assert_eq!(conf.source_on_demand_start_timeout, Millis(10_000));
        assert_eq!(conf.source, "publisher");
        assert!(conf.override_publisher, "falls back to the global flag");
    }

    #[test]
    fn sources() {
        assert!(check_source("publisher").is_ok());
        assert!(check_source("rtmp://origin/live/a").is_ok());
        assert!(check_source("http://origin:8080/live/a.flv?x=1").is_ok());
        assert!(check_source("https://origin/live/a.flv").is_ok());
        assert!(check_source("rtsp://user:pass@cam:8554/live").is_ok());
        assert!(check_source("rtsp://:1/x").is_err());
        let transport = |t: &str| {
            PathFields {
                source: Some("rtsp://cam/1".into()),
                rtsp_transport: Some(t.into()),
                ..PathFields::default()
            }
            .resolve("cam", &PathFields::default(), false)
            .check()
        };
        assert!(transport("tcp").is_ok() && transport("automatic").is_ok());
        assert!(transport("udp").is_ok());
        assert!(transport("multicast")
            .unwrap_err()
            .contains("not supported yet"));
        assert!(transport("carrier").is_err());
        for later in ["rtsps://cam/1", "srt://x:9000"] {
            let e = check_source(later).unwrap_err();
            assert!(e.contains("is not supported yet"), "{e}");
        }
        assert!(check_source("rtmps://x/live/a").is_ok());
        assert!(check_source("rtmps://").is_err());
        assert!(check_source("rtmp://").is_err());
        // HLS origins (MediaMTX's hlsSource) are pulled.
        assert!(
            check_source("http://x/a.m3u8").is_ok() && check_source("https://x/y.m3u8").is_ok()
        );
        // MediaMTX's TestAPIPathsList "hls source": any HTTP URL but an `.flv` is a playlist.
        assert!(check_source("http://127.0.0.1:1234/mypath").is_ok());
        assert_eq!(
            source_type("http://127.0.0.1:1234/mypath"),
            Some("hlsSource")
        );
        assert_eq!(
            source_type("http://x/live/a.flv?k=1"),
            Some("httpFlvSource")
        );
        assert_eq!(
            check_source("carrier pigeon").unwrap_err(),
            "invalid source: 'carrier pigeon'"
        );
        let mut conf = PathFields::default().resolve("a", &PathFields::default(), false);
        conf.source_on_demand = true;
        assert!(conf.check().is_err());
    }

    #[test]
    fn source_fingerprints() {
        let fp = "3A".repeat(32);
        let f: PathFields = serde_json::from_str(&format!(
            r#"{{"source":"https://o/live/a.flv","sourceFingerprint":"{fp}"}}"#
        ))
        .unwrap();
        let conf = f.resolve("live/a", &PathFields::default(), false);
        assert_eq!(conf.source_fingerprint.as_deref(), Some(fp.as_str()));
        assert!(conf.check().is_ok());
        for bad in ["3a:3a", "zz", &"3a".repeat(33)] {
            let mut c = conf.clone();
            c.source_fingerprint = Some(bad.to_owned());
            let e = c.check().unwrap_err();
            assert!(e.starts_with("invalid sourceFingerprint"), "{e}");
        }
        let empty = PathFields {
            source_fingerprint: Some(String::new()),
            ..PathFields::default()
        };
        let conf = empty.resolve("live/a", &PathFields::default(), false);
        assert_eq!(
            conf.source_fingerprint, None,
            "empty is unset, as in MediaMTX"
        );
    }

    #[test]
    fn forward_and_origins() {
        let conf = |json: &str| {
            serde_json::from_str::<PathFields>(json)
                .map_err(|e| e.to_string())?
                .resolve("live/a", &PathFields::default(), false)
                .check()
        };
        assert_eq!(conf(r#"{"forward":[{"dest":"rtmp://cdn/app"}]}"#), Ok(()));
        assert_eq!(
            conf(r#"{"origins":["rtmp://o1/live"],"sourceOnDemand":true}"#),
            Ok(())
        );
        let e = conf(r#"{"forward":[{"dest":"rtmp://cdn/app","x":1}]}"#).unwrap_err();
        assert!(e.contains("unknown field `x`"), "{e}");
        assert_eq!(
            conf(
                r#"{"forward":[{"dest":"rtmp://cdn/app","destFingerprint":"","whipBearerToken":""}]}"#
            ),
            Ok(())
        );
        let e =
            conf(r#"{"forward":[{"dest":"rtmp://cdn/app","whipBearerToken":"t"}]}"#).unwrap_err();
        assert!(e.contains("whip:// targets"), "{e}");
        let e = conf(r#"{"forward":[{"dest":"rtmp://cdn/live/$MTX_PATH"}]}"#).unwrap_err();
        assert!(e.contains("$MTX_PATH is not supported yet"), "{e}");
        let e = conf(r#"{"forward":[{"dest":"http://cdn/app.flv"}]}"#).unwrap_err();
        assert!(e.contains("only rtmp:// and rtmps:// are"), "{e}");
        let pinned = format!(
            r#"{{"forward":[{{"dest":"rtmps://cdn/app","fingerprint":"{}"}}]}}"#,
            "ab".repeat(32)
        );
        assert_eq!(conf(&pinned), Ok(()));
        let e =
            conf(r#"{"forward":[{"dest":"rtmps://cdn/app","fingerprint":"xyz"}]}"#).unwrap_err();
        assert!(e.contains("invalid forward fingerprint 'xyz'"), "{e}");
        assert_eq!(
            conf(r#"{"origins":["rtmps://o1/live"],"sourceOnDemand":true}"#),
            Ok(())
        );
        let e = conf(r#"{"origins":["rtmp://o1/live"],"source":"rtmp://o/live/a"}"#).unwrap_err();
        assert!(e.contains("'origins' can only be used"), "{e}");
        let e = conf(r#"{"origins":["rtmp:///live"]}"#).unwrap_err();
        assert!(e.contains("no host"), "{e}");
        let yaml: Paths = serde_yaml_ng::from_str(
            "\"~^live/\":\n  origins: [rtmp://o1/live]\n  forward:\n    - dest: rtmp://cdn/x\n",
        )
        .unwrap();
        let f = yaml.get("~^live/").unwrap();
        assert_eq!(
            f.origins.as_deref(),
            Some(&["rtmp://o1/live".to_owned()][..])
        );
        assert_eq!(
            f.forward.as_ref().map(|f| f[0].dest.as_str()),
            Some("rtmp://cdn/x")
        );
    }

    #[test]
    fn json_is_strict_and_null_entries_are_defaults() {
        let err = serde_json::from_str::<PathFields>(r#"{"sorce":"publisher"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `sorce`"), "{err}");
        let f: PathFields =
            serde_json::from_str(r#"{"name":"x","maxReaders":3,"sourceOnDemandCloseAfter":"2s"}"#)
                .unwrap();
        assert_eq!(f.max_readers, Some(3));
        assert_eq!(f.source_on_demand_close_after, Some(Millis(2_000)));
        let p: Paths = serde_yaml_ng::from_str("all_others:\nlive/a: {maxReaders: 1}\n").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"all_others":{},"live/a":{"maxReaders":1}}"#
        );
    }
}
