//! Finding the configuration file when none is given, as MediaMTX finds `mediamtx.yml`: the
//! working directory first, then the usual system places; in each place Corestream's own file
//! before MediaMTX's, so an operator can drop Corestream in beside an existing `mediamtx.yml`.

use std::path::{Path, PathBuf};

/// Where a configuration is looked for, in order, relative names resolved against the working
/// directory.
pub const SEARCH: &[&str] = &[
    "corestream.yml",
    "mediamtx.yml",
    "/usr/local/etc/corestream.yml",
    "/usr/local/etc/mediamtx.yml",
    "/usr/etc/corestream.yml",
    "/usr/etc/mediamtx.yml",
    "/etc/corestream/corestream.yml",
    "/etc/mediamtx/mediamtx.yml",
];

/// The first of `candidates` that exists as a file, each relative one taken under `cwd`.
pub fn first_existing(cwd: &Path, candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(|c| cwd.join(c)).find(|p| p.is_file())
}

/// Replaces [`SEARCH`] with a `:`-separated list (empty: none, the embedded default), so tests
/// and packagers can say exactly which files may be read.
pub const SEARCH_ENV: &str = "CORESTREAM_CONFIG_SEARCH";

/// Where a configuration is looked for: `CORESTREAM_CONFIG_SEARCH`, else [`SEARCH`].
pub fn search_list() -> Vec<String> {
    match std::env::var(SEARCH_ENV) {
        Ok(list) => list
            .split(':')
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect(),
        Err(_) => SEARCH.iter().map(|c| (*c).to_owned()).collect(),
    }
}

/// The configuration to load when no `--config` is given: the first of [`search_list`] that
/// exists, `None` for the embedded default.
pub fn default_file() -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    let list = search_list();
    let candidates: Vec<&str> = list.iter().map(String::as_str).collect();
    first_existing(&cwd, &candidates)
        .map(|p| p.strip_prefix(&cwd).map_or(p.clone(), Path::to_path_buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corestream_first_then_mediamtx_in_order() {
        let dir = std::env::temp_dir().join(format!("cs-discover-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        let order = ["corestream.yml", "mediamtx.yml", "etc/mediamtx.yml"];
        assert_eq!(first_existing(&dir, &order), None);
        std::fs::write(dir.join("etc/mediamtx.yml"), "").unwrap();
        assert_eq!(
            first_existing(&dir, &order),
            Some(dir.join("etc/mediamtx.yml"))
        );
        std::fs::write(dir.join("mediamtx.yml"), "").unwrap();
        assert_eq!(first_existing(&dir, &order), Some(dir.join("mediamtx.yml")));
        std::fs::write(dir.join("corestream.yml"), "").unwrap();
        assert_eq!(
            first_existing(&dir, &order),
            Some(dir.join("corestream.yml"))
        );
        // A directory of that name is not a configuration.
        std::fs::remove_file(dir.join("corestream.yml")).unwrap();
        std::fs::create_dir_all(dir.join("corestream.yml")).unwrap();
        assert_eq!(first_existing(&dir, &order), Some(dir.join("mediamtx.yml")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
