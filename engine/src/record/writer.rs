//! The glommio driver of a stream's recording: feeds the [`Segmenter`] on the stream's owner
//! core and writes what it asks for with glommio's own file API (io_uring), from a task of its
//! own, so the core never waits for the disk.
//!
//! A file-system failure (a full disk, a read-only or vanished directory, a queue that outgrew
//! [`MAX_QUEUED_BYTES`] because the disk is too slow) abandons the segment being written: what
//! it holds stays whole (a torn append is cut back), the error is logged and counted, and the
//! recording starts again at a keyframe after a backoff (1 s, doubling to 30 s). The stream and
//! its players never notice.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use glommio::channels::local_channel::{self, LocalSender};
use glommio::io::{BufferedFile, Directory, OpenOptions};
use tracing::{info, warn};

use super::path::Template;
use super::segmenter::{RecordOutput, Segmenter, SegmenterSettings};
use crate::config::{PathConf, RecordFormat};
use crate::media::{Frame, MediaKind};

/// Bytes waiting for the disk beyond which a recording gives up its segment rather than hold
/// more memory.
pub const MAX_QUEUED_BYTES: usize = 64 << 20;
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Files are created `rw-r--r--` and directories `rwxrwxrwx`, both less the process umask.
const FILE_MODE: libc::mode_t = 0o644;

thread_local! {
    /// Writer tasks still running on this executor: a stopping core waits for them, so the
    /// segments of streams that ended are complete on disk.
    static WRITERS_RUNNING: Cell<usize> = const { Cell::new(0) };
}

/// How many writer tasks this executor still runs.
pub fn writers_running() -> usize {
    WRITERS_RUNNING.with(Cell::get)
}

/// Counts a writer task while it lives.
struct Running;

impl Running {
    fn new() -> Running {
        WRITERS_RUNNING.with(|n| n.set(n.get() + 1));
        Running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        WRITERS_RUNNING.with(|n| n.set(n.get().saturating_sub(1)));
    }
}

/// What a recording is asked to be: everything of a path's configuration it uses. A change of
/// any of it restarts the recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordPlan {
    /// The path's name (`live/cam`).
    pub path: String,
    pub template: Template,
    pub settings: SegmenterSettings,
}

impl RecordPlan {
    /// The plan for `path` under `conf`, or `None` when `conf` does not record.
    pub fn of(path: &str, conf: &PathConf) -> Option<RecordPlan> {
        if !conf.record {
            return None;
        }
        Some(RecordPlan {
            path: path.to_owned(),
            template: Template::new(&conf.record_path, conf.record_format.extension()),
            settings: SegmenterSettings {
                format: conf.record_format,
                part_duration_ms: conf.record_part_duration.0.max(1),
                max_part_bytes: conf.record_max_part_size.0.max(1),
                segment_duration_ms: conf.record_segment_duration.0,
            },
        })
    }
}

/// What a path's recordings did, on one core, for the API and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordStats {
    pub bytes_written: u64,
    pub segments_created: u64,
    /// Failures by kind (`no_space`, `read_only`, `not_found`, `queue_full`, `other`).
    pub errors: BTreeMap<&'static str, u64>,
    /// The latest failure, until a part is written again.
    pub last_error: Option<String>,
    /// The file being written.
    pub current_file: Option<String>,
}

/// State shared by a recording and its writer task.
#[derive(Debug)]
struct Shared {
    path: String,
    stats: Rc<RefCell<RecordStats>>,
    queued_bytes: Cell<usize>,
    /// Ops of this generation and older are abandoned (their segment failed).
    failed_generation: Cell<Option<u64>>,
    retry_at: Cell<Instant>,
    backoff: Cell<Duration>,
}

impl Shared {
    fn fail(&self, generation: u64, kind: &'static str, reason: String) {
        let backoff = self.backoff.get();
        warn!(path = %self.path, error = %reason, retry_in = ?backoff, "recording failed ({kind}): segment abandoned, the stream is untouched");
        self.failed_generation.set(Some(generation));
        self.retry_at.set(Instant::now() + backoff);
        self.backoff.set((backoff * 2).min(MAX_BACKOFF));
        let mut stats = self.stats.borrow_mut();
        *stats.errors.entry(kind).or_default() += 1;
        stats.last_error = Some(format!("{kind}: {reason}"));
        stats.current_file = None;
    }
}

struct Op {
    generation: u64,
    output: RecordOutput,
}

/// A stream's recording on its owner core.
pub struct Recorder {
    plan: RecordPlan,
    segmenter: Segmenter,
    generation: u64,
    shared: Rc<Shared>,
    ops: LocalSender<Op>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("plan", &self.plan)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// Starts a recording and its writer task; `stats` are the path's, kept by the core.
    pub fn start(plan: RecordPlan, stats: Rc<RefCell<RecordStats>>) -> Recorder {
        let (ops, rx) = local_channel::new_unbounded();
        let shared = Rc::new(Shared {
            path: plan.path.clone(),
            stats,
            queued_bytes: Cell::new(0),
            failed_generation: Cell::new(None),
            retry_at: Cell::new(Instant::now()),
            backoff: Cell::new(FIRST_BACKOFF),
        });
        info!(path = %plan.path, template = %plan.template.0, "recording started");
        let running = Running::new();
        let task = write_segments(rx, shared.clone(), plan.clone());
        glommio::spawn_local(async move {
            task.await;
            drop(running);
        })
        .detach();
        Recorder {
            segmenter: Segmenter::new(plan.settings),
            plan,
            generation: 0,
            shared,
            ops,
        }
    }

    pub fn plan(&self) -> &RecordPlan {
        &self.plan
    }

    /// Feeds the next frame of the stream.
    pub fn push(&mut self, frame: &Frame) {
        if self.shared.failed_generation.get() == Some(self.generation) {
            let keeps_state = frame.kind == MediaKind::Script || frame.is_sequence_header();
            if Instant::now() < self.shared.retry_at.get() {
                if keeps_state {
                    self.segmenter.push(frame, 0);
                }
                return;
            }
            self.segmenter.restart();
            self.generation += 1;
        }
        self.segmenter.push(frame, unix_us());
        self.send_outputs();
    }

    /// The stream ended, or recording was turned off: the last part is written and the segment
    /// closed.
    pub fn finish(mut self) {
        self.segmenter.finish();
        self.send_outputs();
        info!(path = %self.plan.path, "recording ended");
    }

    fn send_outputs(&mut self) {
        while let Some(output) = self.segmenter.poll_output() {
            if self.shared.failed_generation.get() == Some(self.generation) {
                return;
            }
            let len = match &output {
                RecordOutput::Append(b) => b.len(),
                _ => 0,
            };
            let queued = self.shared.queued_bytes.get() + len;
            if queued > MAX_QUEUED_BYTES {
                self.shared.fail(
                    self.generation,
                    "queue_full",
                    format!("{queued} bytes wait for the disk"),
                );
                return;
            }
            self.shared.queued_bytes.set(queued);
            let op = Op {
                generation: self.generation,
                output,
            };
            if self.ops.try_send(op).is_err() {
                return;
            }
        }
    }
}

/// Unix time in microseconds.
fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The segment file being written.
struct OpenFile {
    file: BufferedFile,
    name: String,
    /// Bytes written whole: the file's length.
    len: u64,
    /// Appends written whole (an fMP4 segment's first is its init segment).
    appends: u64,
    /// Where the init segment's `mvhd` duration is (fMP4): written when the segment completes,
    /// so a reader knows the duration without reading every part.
    mvhd_duration_at: Option<u64>,
}

async fn write_segments(
    rx: local_channel::LocalReceiver<Op>,
    shared: Rc<Shared>,
    plan: RecordPlan,
) {
    let mut open: Option<OpenFile> = None;
    while let Some(op) = rx.recv().await {
        if let RecordOutput::Append(b) = &op.output {
            shared
                .queued_bytes
                .set(shared.queued_bytes.get().saturating_sub(b.len()));
        }
        if shared
            .failed_generation
            .get()
            .is_some_and(|g| op.generation <= g)
        {
            if let Some(f) = open.take() {
                close(f, &shared).await;
            }
            continue;
        }
        match op.output {
            RecordOutput::Begin { start_us } => {
                if let Some(f) = open.take() {
                    close(f, &shared).await;
                }
                let name = plan.template.encode(&plan.path, start_us);
                match create(Path::new(&name)).await {
                    Ok(file) => {
                        info!(path = %plan.path, file = %name, "recording segment created");
                        let mut stats = shared.stats.borrow_mut();
                        stats.segments_created += 1;
                        stats.current_file = Some(name.clone());
                        open = Some(OpenFile {
                            file,
                            name,
                            len: 0,
                            appends: 0,
                            mvhd_duration_at: None,
                        });
                    }
                    Err(e) => {
                        shared.fail(op.generation, error_kind(&e), format!("{name}: {e}"));
                    }
                }
            }
            RecordOutput::Append(bytes) => {
                let Some(f) = &mut open else {
                    continue;
                };
                if f.appends == 0 && plan.settings.format == RecordFormat::Fmp4 {
                    f.mvhd_duration_at =
                        super::playback::mvhd_duration_offset(&bytes).map(|at| at as u64);
                }
                match append(f, bytes).await {
                    Ok(n) => {
                        f.appends += 1;
                        let mut stats = shared.stats.borrow_mut();
                        stats.bytes_written += n;
                        stats.last_error = None;
                    }
                    Err(e) => {
                        shared.fail(op.generation, error_kind(&e), format!("{}: {e}", f.name));
                        if let Some(f) = open.take() {
                            discard_if_empty(f, plan.settings.format).await;
                        }
                    }
                }
            }
            RecordOutput::End { duration_ms } => {
                if let Some(f) = open.take() {
                    // A whole segment made it to disk: the next failure starts its backoff
                    // afresh.
                    shared.backoff.set(FIRST_BACKOFF);
                    if let (Some(at), true) = (f.mvhd_duration_at, f.appends > 1) {
                        let d = u32::try_from(duration_ms).unwrap_or(u32::MAX);
                        let _ = f.file.write_at(d.to_be_bytes().to_vec(), at).await;
                    }
                    info!(path = %plan.path, file = %f.name, duration_ms, "recording segment complete");
                    close(f, &shared).await;
                }
            }
        }
    }
    if let Some(f) = open.take() {
        close(f, &shared).await;
    }
}

/// Appends a whole part. On failure the file is cut back to where the part began, so it still
/// ends on a whole part.
async fn append(f: &mut OpenFile, bytes: Bytes) -> std::io::Result<u64> {
    let start = f.len;
    let total = bytes.len() as u64;
    let mut done = 0usize;
    while done < bytes.len() {
        // glommio takes the buffer by value: one copy per write (one per part, unless the
        // kernel took only some of it).
        let written = f
            .file
            .write_at(bytes[done..].to_vec(), start + done as u64)
            .await
            .map_err(io_error)
            .and_then(|n| match n {
                0 => Err(std::io::Error::from_raw_os_error(libc::ENOSPC)),
                n => Ok(n),
            });
        match written {
            Ok(n) => done += n,
            Err(e) => {
                let _ = f.file.truncate(start).await;
                return Err(e);
            }
        }
    }
    f.len = start + total;
    Ok(total)
}

/// Closes a segment that failed; one that holds no media (an fMP4 init segment at most) is
/// removed rather than left as an empty recording.
async fn discard_if_empty(f: OpenFile, format: RecordFormat) {
    let media_appends = match format {
        RecordFormat::Fmp4 => f.appends.saturating_sub(1),
        RecordFormat::Mpegts => f.appends,
    };
    if media_appends == 0 {
        let _ = f.file.remove().await;
    }
    let _ = f.file.close().await;
}

async fn close(f: OpenFile, shared: &Shared) {
    let _ = f.file.fdatasync().await;
    let _ = f.file.close().await;
    let mut stats = shared.stats.borrow_mut();
    if stats.current_file.as_deref() == Some(f.name.as_str()) {
        stats.current_file = None;
    }
}

/// Creates a segment file, and its directories when they are missing.
async fn create(file: &Path) -> std::io::Result<BufferedFile> {
    let open = || async {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .buffered_open(file)
            .await
            .map_err(io_error)
    };
    match open().await {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // The deepest directory that exists, then every missing one below it.
            let parents: Vec<&Path> = file
                .ancestors()
                .skip(1)
                .filter(|d| !d.as_os_str().is_empty() && *d != Path::new("."))
                .collect();
            let mut missing = Vec::new();
            for dir in parents {
                match Directory::create(dir).await.map_err(io_error) {
                    Ok(d) => {
                        let _ = d.close().await;
                        break;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing.push(dir),
                    Err(e) => return Err(e),
                }
            }
            for dir in missing.into_iter().rev() {
                let d = Directory::create(dir).await.map_err(io_error)?;
                let _ = d.close().await;
            }
            open().await
        }
        other => other,
    }
}

/// The operating system's error inside glommio's, so its `errno` can be told apart.
fn io_error(e: glommio::GlommioError<()>) -> std::io::Error {
    match e {
        glommio::GlommioError::IoError(source)
        | glommio::GlommioError::EnhancedIoError { source, .. } => source,
        other => other.into(),
    }
}

/// The kind of a file-system failure, for the error counters.
pub fn error_kind(e: &std::io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::ENOSPC | libc::EDQUOT) => "no_space",
        Some(libc::EROFS | libc::EACCES | libc::EPERM) => "read_only",
        Some(libc::ENOENT | libc::ENOTDIR) => "not_found",
        _ => "other",
    }
}
