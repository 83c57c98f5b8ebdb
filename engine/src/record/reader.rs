//! Reading segment files through glommio's file API (io_uring), for the playback server: the
//! init segment, every whole part's timing, and byte ranges to stream. Only whole parts are
//! read: a segment being written (or left torn) ends at its last whole part.

use std::path::Path;

use bytes::Bytes;
use glommio::io::{BufferedFile, OpenOptions};

use super::playback::{self, Init, SegmentScan};

/// Init segments are read from the first this many bytes (ours are about 1 KiB).
const HEAD_BYTES: usize = 64 * 1024;
const FIRST_READ: usize = 4 * 1024;

fn io_error(e: glommio::GlommioError<()>) -> std::io::Error {
    match e {
        glommio::GlommioError::IoError(source)
        | glommio::GlommioError::EnhancedIoError { source, .. } => source,
        other => other.into(),
    }
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

/// An open segment file.
pub struct SegmentFile {
    file: BufferedFile,
    pub len: u64,
}

impl SegmentFile {
    pub async fn open(path: &Path) -> std::io::Result<SegmentFile> {
        let file = OpenOptions::new()
            .read(true)
            .buffered_open(path)
            .await
            .map_err(io_error)?;
        let len = file.file_size().await.map_err(io_error)?;
        Ok(SegmentFile { file, len })
    }

    /// [`SegmentFile::open`] of a file whose length the directory walk gave already.
    pub async fn open_with_len(path: &Path, len: u64) -> std::io::Result<SegmentFile> {
        let file = OpenOptions::new()
            .read(true)
            .buffered_open(path)
            .await
            .map_err(io_error)?;
        Ok(SegmentFile { file, len })
    }

    /// `len` bytes from `offset` (fewer at the end of the file).
    pub async fn read(&self, offset: u64, len: usize) -> std::io::Result<Bytes> {
        let r = self.file.read_at(offset, len).await.map_err(io_error)?;
        Ok(Bytes::copy_from_slice(&r))
    }

    pub async fn close(self) {
        let _ = self.file.close().await;
    }

    /// The init segment.
    pub async fn init(&self) -> std::io::Result<Init> {
        // Most init segments fit the first read; a larger one gets a second.
        for want in [FIRST_READ, HEAD_BYTES] {
            let head = self.read(0, want.min(self.len as usize)).await?;
            if let Some(init) = playback::parse_init(&head) {
                return Ok(init);
            }
        }
        Err(invalid("no whole init segment"))
    }

    /// The init segment and every whole part.
    pub async fn scan(&self, start_us: u64) -> std::io::Result<SegmentScan> {
        let init = self.init().await?;
        let mut parts = Vec::new();
        let mut at = init.bytes.len() as u64;
        while at + 8 <= self.len {
            let head = self.read(at, 8).await?;
            if &head[4..8] != b"moof" {
                break;
            }
            let moof_len = u64::from(u32::from_be_bytes([head[0], head[1], head[2], head[3]]));
            if moof_len < 8 || at + moof_len + 16 > self.len {
                break;
            }
            // The moof and the mdat's header (16 bytes: room for a 64-bit size).
            let data = self.read(at, moof_len as usize + 16).await?;
            let m = moof_len as usize;
            if &data[m + 4..m + 8] != b"mdat" {
                break;
            }
            let size32 = u32::from_be_bytes([data[m], data[m + 1], data[m + 2], data[m + 3]]);
            let (mdat_len, mdat_head) = if size32 == 1 {
                let large = u64::from_be_bytes(data[m + 8..m + 16].try_into().unwrap_or_default());
                (large, 16)
            } else {
                (u64::from(size32), 8)
            };
            if mdat_len < mdat_head || at + moof_len + mdat_len > self.len {
                break;
            }
            let Some(part) = playback::parse_part(&data[..m], &init, at, mdat_len, mdat_head)
            else {
                break;
            };
            parts.push(part);
            at += moof_len + mdat_len;
        }
        Ok(SegmentScan {
            start_us,
            init,
            parts,
        })
    }
}
