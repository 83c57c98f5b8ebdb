//! `corestream-bench` as a library: the load generator's pieces, so the binary stays a thin CLI
//! and the tests can drive them directly.
//!
//! - [`args`]: command-line values (bitrates, durations, CPU lists, target URLs);
//! - [`stamp`]: end-to-end latency stamps inside H.264 frames (SEI user data);
//! - [`source`]: what publishers send (synthetic H.264/AAC, or an FLV file in a loop);
//! - [`httpflv`]: the sans-IO HTTP-FLV player on the engine's HTTP and FLV codecs;
//! - [`stats`]: per-player observation of received frames, counters, histograms, `/proc` samples;
//! - [`slow`]: slow players (read at a fraction of the bitrate), their pacing and counts;
//! - [`driver`]: the thin glommio driver (executors, publishers, players);
//! - [`report`]: the final table, the JSON report and the side-by-side comparison.
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

pub mod args;
pub mod directory;
pub mod driver;
pub mod httpflv;
pub mod report;
pub mod slow;
pub mod source;
pub mod stamp;
pub mod stats;
