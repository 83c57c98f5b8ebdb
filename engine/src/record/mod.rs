//! Recording live streams to disk as MediaMTX does: fMP4 or MPEG-TS segments named by
//! `recordPath`, listed and served back by time.
//!
//! - [`segmenter`] cuts a stream into segments and parts, without I/O.
//! - [`writer`] is its glommio driver on the stream's owner core: one [`writer::Recorder`] per
//!   recorded stream, writing through glommio's file API.
//! - [`path`] encodes and decodes segment names; [`store`] finds, repairs and removes segments
//!   on disk (the control core and start-up only, never a data core); [`retention`] deletes
//!   segments past `recordDeleteAfter` from a low-priority task on the control core.
//! - [`playback`] parses segments back and plans the playback server's answers, without I/O;
//!   [`reader`] reads segment files through glommio for it.

pub mod path;
pub mod playback;
pub mod reader;
pub mod retention;
pub mod segmenter;
pub mod store;
pub mod writer;

pub use path::Template;
pub use segmenter::{RecordOutput, Segmenter, SegmenterSettings};
pub use writer::{RecordPlan, RecordStats, Recorder};
