//! Recordings on disk, for the control core and the start of the engine (never a data core):
//! finding a path's segments, repairing a segment a crash left unfinished, deleting.
//!
//! A segment is unfinished only if the engine died while writing it, and a writer only ever
//! appends whole parts, so what a crash can leave is a torn last part: [`repair`] cuts the file
//! back to its last complete part.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::path::Template;
use crate::config::{Config, Millis, PathFields, RecordFormat};

const TS_PACKET: u64 = 188;

/// One segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub file: PathBuf,
    /// Unix microseconds, from its name.
    pub start_us: u64,
    /// Its length when listed by [`find_path_sized`] (0 otherwise).
    pub len: u64,
}

/// Every file under the template's common directory whose name fits it, by path name, each
/// path's segments sorted by start. `template` may still hold `%path`.
pub fn find(template: &Template) -> BTreeMap<String, Vec<Segment>> {
    find_with(template, false)
}

fn find_with(template: &Template, sized: bool) -> BTreeMap<String, Vec<Segment>> {
    let root = template.common_dir();
    let mut found: BTreeMap<String, Vec<Segment>> = BTreeMap::new();
    let start = if root.is_empty() { "." } else { root };
    let mut dirs = vec![(PathBuf::from(start), root.to_owned())];
    while let Some((dir, name)) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(file_name) = entry.file_name().into_string() else {
                continue;
            };
            let full = if name.is_empty() {
                file_name
            } else {
                format!("{name}/{file_name}")
            };
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                dirs.push((entry.path(), full));
            } else if kind.is_file() {
                if let Some((path, start_us)) = template.decode(&full) {
                    let len = if sized {
                        entry.metadata().map_or(0, |m| m.len())
                    } else {
                        0
                    };
                    found.entry(path).or_default().push(Segment {
                        file: entry.path(),
                        start_us,
                        len,
                    });
                }
            }
        }
    }
    for segments in found.values_mut() {
        segments.sort_by_key(|s| s.start_us);
    }
    found
}

/// The segments of one path: `template` with `%path` already replaced.
pub fn find_path(template: &Template) -> Vec<Segment> {
    find(template).into_values().next().unwrap_or_default()
}

/// [`find_path`] with each segment's length, so readers can tell a file grew without opening
/// it.
pub fn find_path_sized(template: &Template) -> Vec<Segment> {
    find_with(template, true)
        .into_values()
        .next()
        .unwrap_or_default()
}

/// How many leading bytes of a segment are whole: the init segment and every complete
/// `moof`+`mdat` (fMP4), whole packets (MPEG-TS).
pub fn complete_length(format: RecordFormat, data: &[u8]) -> u64 {
    let mut cursor = std::io::Cursor::new(data);
    complete_length_of(format, &mut cursor, data.len() as u64).unwrap_or(0)
}

fn complete_length_of<R: Read + Seek>(
    format: RecordFormat,
    r: &mut R,
    len: u64,
) -> std::io::Result<u64> {
    if format == RecordFormat::Mpegts {
        return Ok(len - len % TS_PACKET);
    }
    let mut at = 0u64;
    let mut good = 0u64;
    let mut moof_pending = false;
    while at + 8 <= len {
        r.seek(SeekFrom::Start(at))?;
        let mut head = [0u8; 16];
        let want = if len - at >= 16 { 16 } else { 8 };
        r.read_exact(&mut head[..want])?;
        let size32 = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let size = match size32 {
            0 => break,
            1 if want == 16 => u64::from_be_bytes(head[8..16].try_into().unwrap_or_default()),
            1 => break,
            s => u64::from(s),
        };
        if size < 8 || at + size > len {
            break;
        }
        at += size;
        match &head[4..8] {
            b"moof" => moof_pending = true,
            b"mdat" if moof_pending => {
                moof_pending = false;
                good = at;
            }
            // ftyp, moov, and anything a player skips.
            _ if !moof_pending => good = at,
            _ => {}
        }
    }
    Ok(good)
}

/// What [`repair`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repair {
    /// The file was whole.
    Whole,
    /// Cut from `from` bytes back to `to`.
    Truncated { from: u64, to: u64 },
    /// Nothing in it was whole (not even the init segment): removed.
    Removed { from: u64 },
}

/// Cuts a segment back to its last complete part (see [`complete_length`]).
pub fn repair(format: RecordFormat, file: &Path) -> std::io::Result<Repair> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(file)?;
    let len = f.metadata()?.len();
    let good = complete_length_of(format, &mut f, len)?;
    if good == len {
        return Ok(Repair::Whole);
    }
    if good == 0 {
        drop(f);
        std::fs::remove_file(file)?;
        return Ok(Repair::Removed { from: len });
    }
    f.set_len(good)?;
    f.sync_all()?;
    Ok(Repair::Truncated {
        from: len,
        to: good,
    })
}

/// The format of a segment file, by its extension.
pub fn format_of(file: &Path) -> Option<RecordFormat> {
    match file.extension()?.to_str()? {
        "mp4" => Some(RecordFormat::Fmp4),
        "ts" => Some(RecordFormat::Mpegts),
        _ => None,
    }
}

/// The segment template of `path` under `config` (pathDefaults when no entry names it).
pub fn template_of(config: &Config, path: &str) -> Template {
    let conf = config.path_conf(path).unwrap_or_else(|| {
        PathFields::default().resolve(path, &config.path_defaults, config.override_publisher)
    });
    Template::new(&conf.record_path, conf.record_format.extension())
}

/// Every template the configuration names (pathDefaults and each entry), once each.
fn templates(config: &Config) -> Vec<(Template, Option<Millis>)> {
    let mut out: Vec<(Template, Option<Millis>)> = Vec::new();
    let confs = std::iter::once(PathFields::default().resolve(
        "",
        &config.path_defaults,
        config.override_publisher,
    ))
    .chain(config.paths.iter().map(|(name, fields)| {
        fields.resolve(name, &config.path_defaults, config.override_publisher)
    }));
    for conf in confs {
        let t = Template::new(&conf.record_path, conf.record_format.extension());
        if !out.iter().any(|(o, _)| *o == t) {
            let delete_after = (conf.record_delete_after.0 > 0).then_some(conf.record_delete_after);
            out.push((t, delete_after));
        }
    }
    out
}

/// Every path with segments, each with its segments: files that fit the template of the path
/// they name.
pub fn find_all(config: &Config) -> BTreeMap<String, Vec<Segment>> {
    let mut all: BTreeMap<String, Vec<Segment>> = BTreeMap::new();
    for (template, _) in templates(config) {
        for (path, segments) in find(&template) {
            if is_valid_path_name(&path) && template_of(config, &path) == template {
                all.entry(path).or_default().extend(segments);
            }
        }
    }
    all
}

/// A path name that may name files: no empty, `.` or `..` component, no leading slash.
pub fn is_valid_path_name(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
        && !path.contains('\0')
}

/// At start: the newest segment of every path is the only one a crash can have left
/// unfinished; each is cut back to its last whole part. Returns what was done, to log.
pub fn repair_newest(config: &Config) -> Vec<(PathBuf, Repair)> {
    let mut done = Vec::new();
    for segments in find_all(config).values() {
        let Some(newest) = segments.last() else {
            continue;
        };
        let Some(format) = format_of(&newest.file) else {
            continue;
        };
        match repair(format, &newest.file) {
            Ok(Repair::Whole) => {}
            Ok(r) => done.push((newest.file.clone(), r)),
            Err(e) => {
                tracing::warn!(file = %newest.file.display(), error = %e, "cannot check a recording segment")
            }
        }
    }
    done
}

/// Deletes the segments that started more than their path's `recordDeleteAfter` before
/// `now_us` (`0s` keeps them). Returns the files deleted.
pub fn delete_expired(config: &Config, now_us: u64) -> Vec<PathBuf> {
    let mut deleted = Vec::new();
    for (path, segments) in find_all(config) {
        let conf = config.path_conf(&path).unwrap_or_else(|| {
            PathFields::default().resolve(&path, &config.path_defaults, config.override_publisher)
        });
        let keep = conf.record_delete_after.0 * 1000;
        if keep == 0 {
            continue;
        }
        for s in segments {
            if s.start_us + keep < now_us && std::fs::remove_file(&s.file).is_ok() {
                deleted.push(s.file);
            }
        }
    }
    deleted
}

/// How often retention looks: half the shortest `recordDeleteAfter`, between 1 s and 60 s.
pub fn retention_period(config: &Config) -> Option<std::time::Duration> {
    let shortest = templates(config).into_iter().filter_map(|(_, d)| d).min()?;
    Some(std::time::Duration::from_millis(
        (shortest.0 / 2).clamp(1_000, 60_000),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(kind: &[u8; 4], body: usize) -> Vec<u8> {
        let mut b = ((body + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.resize(body + 8, 0xab);
        b
    }

    #[test]
    fn complete_length_stops_at_the_last_whole_part() {
        let mut file = boxed(b"ftyp", 16);
        file.extend(boxed(b"moov", 100));
        let init = file.len() as u64;
        file.extend(boxed(b"moof", 50));
        file.extend(boxed(b"mdat", 500));
        let one_part = file.len() as u64;
        assert_eq!(complete_length(RecordFormat::Fmp4, &file), one_part);
        file.extend(boxed(b"moof", 50));
        assert_eq!(
            complete_length(RecordFormat::Fmp4, &file),
            one_part,
            "moof without mdat"
        );
        let mdat = boxed(b"mdat", 500);
        file.extend_from_slice(&mdat[..200]);
        assert_eq!(
            complete_length(RecordFormat::Fmp4, &file),
            one_part,
            "torn mdat"
        );
        assert_eq!(
            complete_length(RecordFormat::Fmp4, &file[..init as usize + 3]),
            init
        );
        assert_eq!(complete_length(RecordFormat::Fmp4, &file[..20]), 0);
        assert_eq!(complete_length(RecordFormat::Mpegts, &[0x47; 500]), 376);
    }

    #[test]
    fn repair_and_find_on_disk() {
        let dir = std::env::temp_dir().join(format!("corestream-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let template = Template::new(&format!("{}/%path/%s-%f", dir.display()), ".mp4");
        let a = PathBuf::from(template.encode("live/a", 1_000_000_000_000_000));
        let b = PathBuf::from(template.encode("live/a", 1_000_000_002_000_000));
        let c = PathBuf::from(template.encode("other", 1_000_000_001_000_000));
        std::fs::create_dir_all(a.parent().unwrap()).unwrap();
        std::fs::create_dir_all(c.parent().unwrap()).unwrap();
        let mut whole = boxed(b"ftyp", 16);
        whole.extend(boxed(b"moov", 10));
        whole.extend(boxed(b"moof", 10));
        whole.extend(boxed(b"mdat", 10));
        let mut torn = whole.clone();
        torn.extend(&boxed(b"moof", 10)[..9]);
        std::fs::write(&a, &whole).unwrap();
        std::fs::write(&b, &torn).unwrap();
        std::fs::write(&c, &whole[..12]).unwrap();
        std::fs::write(a.with_extension("txt"), b"not a segment").unwrap();
        let found = find(&template);
        assert_eq!(found.keys().collect::<Vec<_>>(), ["live/a", "other"]);
        assert_eq!(found["live/a"].len(), 2);
        assert_eq!(found["live/a"][0].file, a);
        assert_eq!(find_path(&template.for_path("live/a")).len(), 2);
        assert_eq!(repair(RecordFormat::Fmp4, &a).unwrap(), Repair::Whole);
        assert_eq!(
            repair(RecordFormat::Fmp4, &b).unwrap(),
            Repair::Truncated {
                from: torn.len() as u64,
                to: whole.len() as u64
            }
        );
        assert_eq!(std::fs::read(&b).unwrap(), whole);
        assert_eq!(
            repair(RecordFormat::Fmp4, &c).unwrap(),
            Repair::Removed { from: 12 }
        );
        assert!(!c.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
