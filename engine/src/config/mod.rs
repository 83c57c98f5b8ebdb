//! Configuration: the YAML model, its validation, and the embedded default.
//!
//! The file is parsed once at start-up into an immutable [`Config`]; every problem is reported as
//! `file:line:column: message` so an operator can go straight to the offending key.

pub mod cluster;
mod compat;
mod deprecated;
pub mod discover;
mod env;
mod error;
pub mod mediamtx;
pub mod paths;
mod snapshot;
pub mod state;
mod values;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::auth::{AuthMethod, AuthSettings, InternalUser, Permission, UnknownDomain};

pub use cluster::{ClusterConf, RedisTarget};
pub use deprecated::{global_successors, has_legacy_credentials};
pub use error::ConfigError;
pub use paths::{source_type, PathConf, PathFields, Paths, RecordFormat, DEFAULT_RECORD_PATH};
pub use snapshot::{Snapshot, SnapshotError};
pub use values::{Cores, ListenAddress, LogLevel, Millis, Size};

/// The default configuration, also shipped as `config/corestream.yaml`.
pub const EMBEDDED: &str = include_str!("../../../config/corestream.yaml");
/// The name errors use for the embedded default.
pub const EMBEDDED_NAME: &str = "<embedded config/corestream.yaml>";

/// The HLS flavour (MediaMTX's `hlsVariant`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum HlsVariant {
    /// MPEG-TS segments: every HLS player, the widest reach, the most latency.
    Mpegts,
    /// fMP4 segments (`#EXT-X-MAP`).
    Fmp4,
    /// fMP4 parts announced with `#EXT-X-PART`, blocking playlist reload, preload hints.
    #[default]
    LowLatency,
}

/// The whole main configuration file. Field names are the YAML keys in camelCase.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    #[serde(default)]
    pub log_level: LogLevel,
    #[serde(default)]
    pub cores: Cores,
    /// Whether the RTMP listener runs (MediaMTX's `rtmp`).
    #[serde(default = "defaults::yes")]
    pub rtmp: bool,
    #[serde(default = "defaults::rtmp_address")]
    pub rtmp_address: ListenAddress,
    #[serde(default = "defaults::http_address")]
    pub http_address: ListenAddress,
    /// Whether HLS is served (MediaMTX's `hls`); HTTP-FLV is not affected.
    #[serde(default = "defaults::yes")]
    pub hls: bool,
    /// A second listener for HTTP playback, where MediaMTX serves HLS (`:8888`); unset, or the
    /// same as `httpAddress`: `httpAddress` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hls_address: Option<ListenAddress>,
    #[serde(default = "defaults::api_address")]
    pub api_address: ListenAddress,
    /// Silence from a client longer than this closes its connection.
    #[serde(default = "defaults::read_timeout")]
    pub read_timeout: Millis,
    /// From accept, an RTMP client must finish the handshake and `connect`, and an HTTP client
    /// send its first request head, within this (however it trickles its bytes).
    #[serde(default = "defaults::handshake_timeout")]
    pub handshake_timeout: Millis,
    /// Connections one data core serves at once; more are closed as soon as they are accepted.
    #[serde(default = "defaults::max_connections_per_core")]
    pub max_connections_per_core: usize,
    /// Streams published on one data core at once; more publishes are refused.
    #[serde(default = "defaults::max_streams_per_core")]
    pub max_streams_per_core: usize,
    /// Largest RTMP message accepted from a client.
    #[serde(default = "defaults::max_message_size")]
    pub max_message_size: u32,
    #[serde(default = "defaults::gop_cache_max_bytes")]
    pub gop_cache_max_bytes: usize,
    #[serde(default = "defaults::gop_cache_max_duration")]
    pub gop_cache_max_duration: Millis,
    /// Whether a second publisher replaces the live one (true) or is refused (false).
    #[serde(default)]
    pub override_publisher: bool,
    #[serde(default = "defaults::play_wait_timeout")]
    pub play_wait_timeout: Millis,
    #[serde(default = "defaults::player_max_queue_bytes")]
    pub player_max_queue_bytes: usize,
    #[serde(default = "defaults::slow_player_timeout")]
    pub slow_player_timeout: Millis,
    /// How long a player's media may wait to be merged with what follows into one write (SRS's
    /// `mw_latency`); 0 writes at the end of each turn of the core's event loop.
    #[serde(default = "defaults::write_merge_latency")]
    pub write_merge_latency: Millis,

    // HTTP playback (HTTP-FLV and HLS).
    /// Origins allowed by CORS (`Access-Control-Allow-Origin`); `*` admits every origin.
    #[serde(default = "defaults::http_allow_origins")]
    pub http_allow_origins: Vec<String>,
    /// Largest HTTP request head (request line and headers), in bytes.
    #[serde(default = "defaults::http_max_header_bytes")]
    pub http_max_header_bytes: usize,
    /// A keep-alive HTTP connection idle this long between requests is closed.
    #[serde(default = "defaults::http_idle_timeout")]
    pub http_idle_timeout: Millis,
    /// HLS segments are cut at the first keyframe after this long.
    #[serde(default = "defaults::hls_segment_duration")]
    pub hls_segment_duration: Millis,
    /// Segments listed in an HLS playlist.
    #[serde(default = "defaults::hls_segment_count")]
    pub hls_segment_count: usize,
    /// Mux every stream to HLS from its start, rather than on the first HLS request.
    #[serde(default)]
    pub hls_always_remux: bool,
    /// An HLS muxer nobody requested for this long stops.
    #[serde(default = "defaults::hls_muxer_close_after")]
    pub hls_muxer_close_after: Millis,
    /// HLS flavour, as MediaMTX names it: MPEG-TS segments, fMP4 segments, or Low-Latency HLS
    /// (fMP4 parts and blocking playlist reload).
    #[serde(default)]
    pub hls_variant: HlsVariant,
    /// Low-Latency HLS part duration (`#EXT-X-PART-INF:PART-TARGET`).
    #[serde(default = "defaults::hls_part_duration")]
    pub hls_part_duration: Millis,
    /// Serve the player pages (`GET /{path}`, `GET /`) on the HTTP port.
    #[serde(default = "defaults::yes")]
    pub http_player_pages: bool,

    // Authentication (MediaMTX names; domain files in the mms format).
    #[serde(default)]
    pub auth_method: AuthMethod,
    #[serde(default = "crate::auth::default_users")]
    pub auth_internal_users: Vec<InternalUser>,
    /// Directory of domain files, relative to this file's directory.
    #[serde(default)]
    pub domains_dir: Option<PathBuf>,
    /// Whether a request for a vhost no domain file names is admitted (only when domains exist).
    #[serde(default)]
    pub unknown_domain: UnknownDomain,
    /// `authMethod: http`: the service asked about every publish and read.
    #[serde(default, rename = "authHTTPAddress")]
    pub auth_http_address: Option<String>,
    /// Actions (and paths) not asked of that service; the internal users judge them.
    #[serde(
        default = "crate::auth::http_hook::default_exclude",
        rename = "authHTTPExclude"
    )]
    pub auth_http_exclude: Vec<Permission>,

    // Control API, metrics and paths (MediaMTX names; see `api/`).
    /// Largest control API request body (JSON), in bytes; larger gets 413.
    #[serde(default = "defaults::api_max_body_bytes")]
    pub api_max_body_bytes: usize,
    /// Whether the control API is served on `apiAddress`.
    #[serde(default = "defaults::yes")]
    pub api: bool,
    /// Connections the API listener (and, separately, the metrics listener) serves at once; one
    /// more is closed when accepted, so clients without credentials cannot pile up memory.
    #[serde(default = "defaults::api_max_connections")]
    pub api_max_connections: usize,
    /// Origins CORS admits on the API (`*`: every origin, as MediaMTX). A request without
    /// credentials from another site is refused unless its origin is listed here by name.
    #[serde(default = "defaults::http_allow_origins")]
    pub api_allow_origins: Vec<String>,
    /// Host names the API and metrics answer besides their listen address, `localhost` and the
    /// address a connection came in on (DNS rebinding defence); `*` admits every Host.
    #[serde(default)]
    pub api_allowed_hosts: Vec<String>,
    /// Peers whose `X-Forwarded-For` is believed (addresses and CIDR ranges).
    #[serde(default)]
    pub api_trusted_proxies: Vec<String>,
    /// Whether `/metrics` is served on `metricsAddress`.
    #[serde(default = "defaults::yes")]
    pub metrics: bool,
    #[serde(default = "defaults::metrics_address")]
    pub metrics_address: ListenAddress,
    /// Whether recordings are served by time range on `playbackAddress` (MediaMTX's
    /// `playback`, off).
    #[serde(default)]
    pub playback: bool,
    #[serde(default = "defaults::playback_address")]
    pub playback_address: ListenAddress,
    /// Origins CORS admits on `/metrics`, as `apiAllowOrigins`.
    #[serde(default = "defaults::http_allow_origins")]
    pub metrics_allow_origins: Vec<String>,
    /// Where API changes are persisted, relative to this file's directory; default
    /// `<config stem>.state.yaml` beside it (none for the embedded default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_state_file: Option<PathBuf>,
    /// The cluster this node belongs to (its stream directory in Redis); absent: alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterConf>,
    /// Defaults of every `paths` entry.
    #[serde(default)]
    pub path_defaults: PathFields,
    /// Path entries: exact names, `~regex`, `all_others`; absent: `all_others: {}`.
    #[serde(default = "Paths::all_others")]
    pub paths: Paths,
    /// MediaMTX's global keys Corestream does not have (`rtsp`, `webrtc`, `logDestinations`,
    /// …), kept as written so the API shows them back; see [`mediamtx`]. Filled by the reader
    /// ([`compat`]), never by the derived code, so a typo stays an error.
    #[serde(flatten, skip_deserializing)]
    pub mediamtx: BTreeMap<String, serde_json::Value>,
    /// What the reader made of MediaMTX's keys (applied, converted, not served), for
    /// `check-config` and the log at start.
    #[serde(skip)]
    pub compat_report: mediamtx::Report,
}

mod defaults {
    use super::{ListenAddress, Millis};

    pub(super) fn rtmp_address() -> ListenAddress {
        ListenAddress::any_v4(1935)
    }
    pub(super) fn http_address() -> ListenAddress {
        ListenAddress::any_v4(8080)
    }
    pub(super) fn playback_address() -> ListenAddress {
        ListenAddress::any_v4(9996)
    }
    pub(super) fn api_address() -> ListenAddress {
        ListenAddress::localhost_v4(9997)
    }
    pub(super) fn read_timeout() -> Millis {
        Millis(10_000)
    }
    pub(super) fn handshake_timeout() -> Millis {
        Millis(10_000)
    }
    pub(super) fn max_connections_per_core() -> usize {
        10_000
    }
    pub(super) fn max_streams_per_core() -> usize {
        1_000
    }
    pub(super) fn api_max_connections() -> usize {
        256
    }
    pub(super) fn api_max_body_bytes() -> usize {
        256 * 1024
    }
    pub(super) fn max_message_size() -> u32 {
        16 << 20
    }
    pub(super) fn gop_cache_max_bytes() -> usize {
        16 << 20
    }
    pub(super) fn gop_cache_max_duration() -> Millis {
        Millis(10_000)
    }
    pub(super) fn play_wait_timeout() -> Millis {
        Millis(5_000)
    }
    pub(super) fn player_max_queue_bytes() -> usize {
        8 << 20
    }
    pub(super) fn slow_player_timeout() -> Millis {
        Millis(10_000)
    }
    pub(super) fn write_merge_latency() -> Millis {
        Millis(100)
    }
    pub(super) fn http_allow_origins() -> Vec<String> {
        vec!["*".to_owned()]
    }
    pub(super) fn http_max_header_bytes() -> usize {
        8192
    }
    pub(super) fn http_idle_timeout() -> Millis {
        Millis(60_000)
    }
    pub(super) fn hls_segment_duration() -> Millis {
        Millis(1_000)
    }
    pub(super) fn hls_part_duration() -> Millis {
        Millis(200)
    }
    pub(super) fn hls_segment_count() -> usize {
        7
    }
    pub(super) fn hls_muxer_close_after() -> Millis {
        Millis(60_000)
    }
    pub(super) fn yes() -> bool {
        true
    }
    pub(super) fn metrics_address() -> ListenAddress {
        ListenAddress::localhost_v4(9998)
    }
}

/// Where a configuration came from: a file on disk or the embedded default.
#[derive(Debug, Clone)]
pub enum Source {
    Embedded,
    File(PathBuf),
}

impl Source {
    pub fn name(&self) -> String {
        match self {
            Source::Embedded => EMBEDDED_NAME.to_owned(),
            Source::File(path) => path.display().to_string(),
        }
    }

    /// The directory relative paths in the configuration are resolved against.
    pub fn base_dir(&self) -> PathBuf {
        match self {
            Source::Embedded => PathBuf::from("."),
            Source::File(path) => path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
        }
    }
}

/// A validated configuration and where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub source: Source,
}

impl Config {
    /// The authentication part, as the auth layer takes it.
    pub fn auth_settings(&self) -> AuthSettings {
        AuthSettings {
            auth_method: self.auth_method,
            auth_internal_users: self.auth_internal_users.clone(),
            domains_dir: self.domains_dir.clone(),
            unknown_domain: self.unknown_domain,
            auth_http_address: self.auth_http_address.clone(),
            auth_http_exclude: self.auth_http_exclude.clone(),
        }
    }

    /// Loads `path`, or the embedded default when `path` is `None`, with the API's state file
    /// (see [`state`]) laid over it.
    pub fn load(path: Option<&Path>) -> Result<Loaded, ConfigError> {
        let mut loaded = Self::load_main(path)?;
        if let Some(state_path) = state::state_path(&loaded.config, &loaded.source) {
            let file = state_path.display().to_string();
            let overlay = state::read_overlay(&state_path).map_err(|e| ConfigError::Read {
                file: file.clone(),
                reason: e.to_string(),
            })?;
            if !overlay.is_empty() {
                loaded.config =
                    state::apply(&loaded.config, &overlay).map_err(|message| ConfigError::At {
                        file,
                        line: 1,
                        column: 1,
                        message,
                    })?;
            }
        }
        Ok(loaded)
    }

    /// The HTTP playback listeners: `httpAddress`, and `hlsAddress` when HLS is on and it is
    /// another address.
    pub fn http_listeners(&self) -> Vec<ListenAddress> {
        let mut listeners = vec![self.http_address];
        if let Some(hls) = self
            .hls_address
            .filter(|a| self.hls && *a != self.http_address)
        {
            listeners.push(hls);
        }
        listeners
    }

    /// The whole configuration of the entry `path` falls under; `None`: not configured.
    pub fn path_conf(&self, path: &str) -> Option<PathConf> {
        let (name, fields) = self.paths.find(path)?;
        Some(fields.resolve(name, &self.path_defaults, self.override_publisher))
    }

    /// Deserializes and validates a configuration given as JSON (the API and the state file).
    /// `Err` is the reason, without a position.
    pub fn from_value(value: serde_json::Value) -> Result<Config, String> {
        let (config, kept) = compat::deserialize::<Config, _>(value)
            .map_err(|e: serde_json::Error| e.to_string())?;
        let config =
            Config::finish(config, kept).map_err(|(key, reason)| format!("{key}: {reason}"))?;
        config
            .check()
            .map_err(|(key, reason)| format!("{key}: {reason}"))?;
        Ok(config)
    }

    /// Puts the MediaMTX keys the reader kept aside in place, converts MediaMTX's deprecated
    /// keys and builds the compatibility report. `Err` names the key and the reason.
    fn finish(mut config: Config, kept: compat::Kept) -> Result<Config, (String, String)> {
        config.mediamtx = kept.global;
        config.path_defaults.mediamtx = kept.path_defaults;
        for (name, fields) in kept.paths {
            config.paths.set_mediamtx(&name, fields);
        }
        let report = mediamtx::convert(&mut config, &kept.own)?;
        config.compat_report = report;
        Ok(config)
    }

    fn load_main(path: Option<&Path>) -> Result<Loaded, ConfigError> {
        match path {
            None => Ok(Loaded {
                config: Config::parse(EMBEDDED, EMBEDDED_NAME)?,
                source: Source::Embedded,
            }),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
                    file: path.display().to_string(),
                    reason: e.to_string(),
                })?;
                Ok(Loaded {
                    config: Config::parse(&text, &path.display().to_string())?,
                    source: Source::File(path.to_path_buf()),
                })
            }
        }
    }

    /// Parses and validates one file's text; `file` names it in errors. MediaMTX's keys and
    /// the `MTX_*` environment overrides are read too (see [`compat`], [`env`]).
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        Config::parse_with_env(text, file, &env::from_process())
    }

    /// [`Config::parse`] with the environment given (tests set their own).
    pub fn parse_with_env(
        text: &str,
        file: &str,
        environment: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        // An empty file is a valid configuration made entirely of defaults.
        let text = if text.trim().is_empty() { "{}" } else { text };
        let (config, kept) =
            compat::deserialize::<Config, _>(serde_yaml_ng::Deserializer::from_str(text))
                .map_err(|e| ConfigError::from_yaml(file, &e))?;
        let config = Config::finish(config, kept)
            .map_err(|(key, reason)| ConfigError::invalid(file, text, &key, &reason))?;
        let config = env::apply(config, environment).map_err(|message| ConfigError::At {
            file: file.to_owned(),
            line: 1,
            column: 1,
            message,
        })?;
        config.validate(text, file)?;
        Ok(config)
    }

    fn validate(&self, text: &str, file: &str) -> Result<(), ConfigError> {
        self.check()
            .map_err(|(key, reason)| ConfigError::invalid(file, text, key, &reason))
    }

    /// Rules serde cannot express; `Err` names the key and the reason.
    fn check(&self) -> Result<(), (&'static str, String)> {
        let invalid = |key, reason: &str| Err((key, reason.to_owned()));
        if self.max_message_size < 128 {
            return invalid("maxMessageSize", "must be at least 128 bytes");
        }
        if self.player_max_queue_bytes < 64 * 1024 {
            return invalid("playerMaxQueueBytes", "must be at least 65536 bytes");
        }
        if self.read_timeout.0 == 0 {
            return invalid("readTimeout", "must be greater than zero");
        }
        if self.handshake_timeout.0 == 0 {
            return invalid("handshakeTimeout", "must be greater than zero");
        }
        if self.max_connections_per_core == 0 {
            return invalid("maxConnectionsPerCore", "must be at least 1");
        }
        if self.max_streams_per_core == 0 {
            return invalid("maxStreamsPerCore", "must be at least 1");
        }
        if !(1024..=64 << 20).contains(&self.api_max_body_bytes) {
            return invalid("apiMaxBodyBytes", "must be between 1024 and 67108864");
        }
        if !(1..=100_000).contains(&self.api_max_connections) {
            return invalid("apiMaxConnections", "must be between 1 and 100000");
        }
        if !(1024..=1 << 20).contains(&self.http_max_header_bytes) {
            return invalid("httpMaxHeaderBytes", "must be between 1024 and 1048576");
        }
        if !(2..=100).contains(&self.hls_segment_count) {
            return invalid("hlsSegmentCount", "must be between 2 and 100");
        }
        if self.hls_segment_duration.0 < 100 {
            return invalid("hlsSegmentDuration", "must be at least 100ms");
        }
        if self.hls_part_duration.0 < 20 || self.hls_part_duration.0 > self.hls_segment_duration.0 {
            return invalid(
                "hlsPartDuration",
                "must be at least 20ms and at most hlsSegmentDuration",
            );
        }
        if self.slow_player_timeout.0 == 0 {
            return invalid("slowPlayerTimeout", "must be greater than zero");
        }
        if let Some(bad) = self
            .api_trusted_proxies
            .iter()
            .find(|p| crate::auth::users::IpNet::parse(p).is_none())
        {
            return Err((
                "apiTrustedProxies",
                format!("`{bad}` is not an IP address or CIDR range"),
            ));
        }
        if let Some(cluster) = &self.cluster {
            cluster.check()?;
        }
        let defaults =
            PathFields::default().resolve("", &self.path_defaults, self.override_publisher);
        defaults.check().map_err(|e| ("pathDefaults", e))?;
        for (name, fields) in self.paths.iter() {
            fields
                .resolve(name, &self.path_defaults, self.override_publisher)
                .check()
                .map_err(|e| ("paths", format!("`{name}`: {e}")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_loads() {
        let loaded = Config::load(None).expect("embedded config is valid");
        let c = loaded.config;
        assert_eq!(c.cores, Cores::Auto);
        assert_eq!(c.rtmp_address.to_string(), "0.0.0.0:1935");
        assert_eq!(c.api_address.to_string(), "127.0.0.1:9997");
        assert_eq!(c.play_wait_timeout, Millis(5_000));
        assert!(!c.override_publisher);
        assert_eq!(c.handshake_timeout, Millis(10_000));
        assert_eq!(c.max_connections_per_core, 10_000);
        assert_eq!(c.max_streams_per_core, 1_000);
        assert_eq!(c.api_max_body_bytes, 256 * 1024);
    }

    #[test]
    fn limits_are_validated() {
        for (text, key) in [
            ("handshakeTimeout: 0s\n", "handshakeTimeout"),
            ("maxConnectionsPerCore: 0\n", "maxConnectionsPerCore"),
            ("maxStreamsPerCore: 0\n", "maxStreamsPerCore"),
            ("apiMaxBodyBytes: 10\n", "apiMaxBodyBytes"),
        ] {
            let err = Config::parse(text, "c.yaml").unwrap_err().to_string();
            assert!(err.contains(key), "{err}");
        }
    }

    #[test]
    fn empty_file_is_all_defaults() {
        let c = Config::parse("", "x.yaml").unwrap();
        assert_eq!(c.http_address.to_string(), "0.0.0.0:8080");
        assert_eq!(c.log_level, LogLevel::Info);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let err = Config::parse("cores: 2\nrtmpAdress: :1935\n", "c.yaml").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("c.yaml:2:1: "), "{text}");
        assert!(text.contains("rtmpAdress"), "{text}");
    }

    #[test]
    fn bad_value_names_file_line_and_key() {
        let err = Config::parse("logLevel: info\ncores: zero\n", "c.yaml").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("c.yaml:2:"), "{text}");
        assert!(text.contains("cores"), "{text}");

        let err = Config::parse("readTimeout: 10 parsecs\n", "c.yaml").unwrap_err();
        assert!(err.to_string().starts_with("c.yaml:1:"), "{err}");
        assert!(err.to_string().contains("readTimeout"), "{err}");
    }

    #[test]
    fn validation_error_points_at_key_line() {
        let err = Config::parse("cores: 1\n\nmaxMessageSize: 4\n", "c.yaml").unwrap_err();
        assert_eq!(
            err.to_string(),
            "c.yaml:3:1: maxMessageSize: must be at least 128 bytes"
        );
    }

    #[test]
    fn shipped_file_matches_embedded() {
        let on_disk = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../config/corestream.yaml"
        ))
        .unwrap();
        assert_eq!(on_disk, EMBEDDED);
    }
}

/// Parsing a MediaMTX-style file in the tests of the compatibility modules.
#[cfg(test)]
mod test_support {
    use super::Config;

    /// The configuration `text` makes (no environment).
    pub(super) fn parse(text: &str) -> Config {
        Config::parse_with_env(text, "m.yml", &[]).unwrap()
    }

    /// The error `text` is refused with.
    pub(super) fn error(text: &str) -> String {
        Config::parse_with_env(text, "m.yml", &[])
            .unwrap_err()
            .to_string()
    }
}
