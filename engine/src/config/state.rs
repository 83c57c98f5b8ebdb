//! The API's state file: what the control API changed, laid over the main configuration.
//!
//! The operator's file is never rewritten. The state file (`apiStateFile`, default
//! `<config stem>.state.yaml` beside the main file) holds an overlay: top-level keys the API set
//! (global fields, `pathDefaults`) replace the main file's, and `paths` is merged entry by entry,
//! a `null` entry deleting one the main file has. It is written atomically (a temporary file,
//! fsync, rename, fsync of the directory), so a crash leaves the old or the new overlay, never a
//! mix.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{Config, ConfigError, Source};

/// What the API changed: top-level keys of the configuration, `paths` per entry.
pub type Overlay = Map<String, Value>;

/// Why the state file could not be read, applied or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where the state file of a configuration lives; `None` (no persistence) for the embedded
/// default without `apiStateFile`.
pub fn state_path(config: &Config, source: &Source) -> Option<PathBuf> {
    match (&config.api_state_file, source) {
        (Some(p), _) => Some(source.base_dir().join(p)),
        (None, Source::Embedded) => None,
        (None, Source::File(path)) => {
            let stem = path
                .file_stem()
                .map_or_else(|| "corestream".into(), |s| s.to_string_lossy());
            Some(source.base_dir().join(format!("{stem}.state.yaml")))
        }
    }
}

/// Reads the overlay; a missing file is an empty one.
pub fn read_overlay(path: &Path) -> Result<Overlay, StateError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Overlay::new()),
        Err(source) => {
            return Err(StateError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    if text.trim().is_empty() {
        return Ok(Overlay::new());
    }
    match serde_yaml_ng::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(Value::Null) => Ok(Overlay::new()),
        Ok(_) => Err(StateError::Parse {
            path: path.to_owned(),
            message: "not a mapping".to_owned(),
        }),
        Err(e) => Err(StateError::Parse {
            path: path.to_owned(),
            message: ConfigError::from_yaml(&path.display().to_string(), &e).to_string(),
        }),
    }
}

/// `base` with `overlay` laid over it, validated; `Err` is the reason, for a log or a 400.
pub fn apply(base: &Config, overlay: &Overlay) -> Result<Config, String> {
    let Value::Object(mut doc) = serde_json::to_value(base).map_err(|e| e.to_string())? else {
        return Err("the configuration does not serialize to a mapping".to_owned());
    };
    for (key, value) in overlay {
        if key == "paths" {
            let Value::Object(entries) = value else {
                return Err("paths: expected a mapping".to_owned());
            };
            let paths = doc
                .entry("paths")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(paths) = paths {
                for (name, fields) in entries {
                    if fields.is_null() {
                        paths.remove(name);
                    } else {
                        paths.insert(name.clone(), fields.clone());
                    }
                }
            }
        } else {
            doc.insert(key.clone(), value.clone());
        }
    }
    Config::from_value(Value::Object(doc))
}

/// Writes the overlay atomically: `<path>.tmp`, fsync, rename over `path`, fsync the directory.
pub fn write_overlay(path: &Path, overlay: &Overlay) -> Result<(), StateError> {
    let err = |source| StateError::Write {
        path: path.to_owned(),
        source,
    };
    let yaml = serde_yaml_ng::to_string(overlay)
        .map_err(|e| err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
    let tmp = path.with_extension("yaml.tmp");
    {
        // 0600 from creation: the overlay may hold passwords and source credentials, and a
        // mode set after the write would leave a window where others could read them.
        let _ = std::fs::remove_file(&tmp);
        let mut f = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(err)?
        };
        f.write_all(
            b"# Written by the corestream control API: changes made through the API, laid over the\n\
              # main configuration file at start. Edit the main file instead; delete this one to drop them.\n",
        )
        .map_err(err)?;
        f.write_all(yaml.as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)?;
    }
    std::fs::rename(&tmp, path).map_err(err)?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("corestream-state-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn overlay_replaces_keys_and_merges_paths() {
        let base = Config::parse(
            "readTimeout: 5s\npaths:\n  all_others:\n  live/a: {maxReaders: 1}\n  live/b:\n",
            "c.yaml",
        )
        .unwrap();
        let overlay: Overlay = serde_json::from_value(json!({
            "readTimeout": "7s",
            "paths": {"live/a": {"maxReaders": 9}, "live/b": null, "live/c": {}},
            "pathDefaults": {"maxReaders": 4}
        }))
        .unwrap();
        let c = apply(&base, &overlay).unwrap();
        assert_eq!(c.read_timeout, crate::config::Millis(7_000));
        let names: Vec<_> = c.paths.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["all_others", "live/a", "live/c"]);
        assert_eq!(c.paths.get("live/a").unwrap().max_readers, Some(9));
        assert_eq!(c.path_conf("live/c").unwrap().max_readers, 4);
    }

    #[test]
    fn bad_overlay_is_refused_with_the_reason() {
        let base = Config::parse("", "c.yaml").unwrap();
        let overlay: Overlay =
            serde_json::from_value(json!({"paths": {"live/a": {"source": "srt://x"}}})).unwrap();
        let e = apply(&base, &overlay).unwrap_err();
        assert!(e.contains("not supported yet"), "{e}");
        let overlay: Overlay = serde_json::from_value(json!({"bogus": 1})).unwrap();
        assert!(apply(&base, &overlay).unwrap_err().contains("bogus"));
    }

    #[test]
    fn write_is_atomic_and_reads_back() {
        let dir = temp_dir("rw");
        let path = dir.join("c.state.yaml");
        assert!(read_overlay(&path).unwrap().is_empty(), "missing is empty");
        let overlay: Overlay =
            serde_json::from_value(json!({"paths": {"live/x": {"maxReaders": 2}, "old": null}}))
                .unwrap();
        write_overlay(&path, &overlay).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "state file mode {mode:o}");
        }
        assert!(!path.with_extension("yaml.tmp").exists());
        assert_eq!(read_overlay(&path).unwrap(), overlay);
        std::fs::write(&path, "paths: [").unwrap();
        assert!(read_overlay(&path).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn state_file_sits_beside_the_config() {
        let c = Config::parse("", "x").unwrap();
        let src = Source::File(PathBuf::from("/etc/cs/corestream.yaml"));
        assert_eq!(
            state_path(&c, &src).unwrap(),
            PathBuf::from("/etc/cs/corestream.state.yaml")
        );
        assert_eq!(state_path(&c, &Source::Embedded), None);
    }
}
