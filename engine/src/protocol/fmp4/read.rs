//! Reading ISO BMFF boxes in a buffer: the boxes directly inside a range, big-endian fields and
//! track runs (`trun`). Shared by the demuxer of pulled fMP4 segments and the reader of recorded
//! ones.

/// A box in a buffer: its type and the range of its body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BoxAt {
    pub kind: [u8; 4],
    /// Where the box starts.
    pub start: usize,
    /// Where its body starts and ends.
    pub body: usize,
    pub end: usize,
}

/// The boxes directly inside `data[from..to]`; stops at the first box that does not fit.
pub(crate) fn children(data: &[u8], from: usize, to: usize) -> Vec<BoxAt> {
    let mut out = Vec::new();
    let mut at = from;
    while at + 8 <= to {
        let Some(size) = u32_at(data, at) else {
            break;
        };
        let (size, head) = if size == 1 {
            let Some(large) = u64_at(data, at + 8) else {
                break;
            };
            (usize::try_from(large).unwrap_or(usize::MAX), 16)
        } else {
            (size as usize, 8)
        };
        if size < head || size > to - at {
            break;
        }
        let mut kind = [0u8; 4];
        kind.copy_from_slice(&data[at + 4..at + 8]);
        out.push(BoxAt {
            kind,
            start: at,
            body: at + head,
            end: at + size,
        });
        at += size;
    }
    out
}

/// The first box of type `kind` directly inside `parent`.
pub(crate) fn child(data: &[u8], parent: &BoxAt, kind: &[u8; 4]) -> Option<BoxAt> {
    children(data, parent.body, parent.end)
        .into_iter()
        .find(|b| &b.kind == kind)
}

pub(crate) fn u16_at(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(
        data.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

pub(crate) fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        data.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

pub(crate) fn u64_at(data: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(
        data.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// A `tfdt`'s base media decode time, and whether it is written in 64 bits (version 1).
pub(crate) fn decode_time(data: &[u8], tfdt: &BoxAt) -> Option<(u64, bool)> {
    let wide = *data.get(tfdt.body)? == 1;
    let time = if wide {
        u64_at(data, tfdt.body + 4)?
    } else {
        u64::from(u32_at(data, tfdt.body + 4)?)
    };
    Some((time, wide))
}

/// `sample_is_non_sync_sample`, bit 16 of a sample's flags: not a place a decoder can start.
pub(crate) const SAMPLE_IS_NON_SYNC: u32 = 0x0001_0000;

/// What a sample is when its run leaves a field out: the `trex` or `tfhd` defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SampleDefaults {
    pub duration: u32,
    pub size: u32,
    pub flags: u32,
}

/// One sample of a track run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TrunSample {
    pub duration: u32,
    pub size: u32,
    pub flags: u32,
    pub composition_offset: i32,
}

/// A `trun` box, read: its data offset as written (signed in version 1, a reader decides), then
/// its samples as an iterator, each field from the box or `defaults`.
#[derive(Debug, Clone)]
pub(crate) struct Trun<'a> {
    pub data_offset: Option<u32>,
    data: &'a [u8],
    flags: u32,
    first_flags: Option<u32>,
    defaults: SampleDefaults,
    count: u32,
    next: u32,
    at: usize,
}

impl<'a> Trun<'a> {
    /// Reads `trun`'s header; refuses a run that lists more samples than its box holds, so that
    /// every sample the iterator yields was in the box.
    pub(crate) fn read(
        data: &'a [u8],
        trun: &BoxAt,
        defaults: SampleDefaults,
    ) -> Result<Self, &'static str> {
        let field = |at: usize| u32_at(data, at).ok_or("short trun");
        let flags = field(trun.body)? & 0x00ff_ffff;
        let count = field(trun.body + 4)?;
        let mut at = trun.body + 8;
        let mut data_offset = None;
        if flags & 0x1 != 0 {
            data_offset = Some(field(at)?);
            at += 4;
        }
        let mut first_flags = None;
        if flags & 0x4 != 0 {
            first_flags = Some(field(at)?);
            at += 4;
        }
        // Each sample's fields, 4 bytes each, in this order when present.
        let per_sample = [0x100, 0x200, 0x400, 0x800]
            .iter()
            .filter(|&&bit| flags & bit != 0)
            .count();
        if (count as usize).saturating_mul(per_sample * 4) > trun.end.saturating_sub(at) {
            return Err("trun lists more samples than it holds");
        }
        Ok(Trun {
            data_offset,
            data,
            flags,
            first_flags,
            defaults,
            count,
            next: 0,
            at,
        })
    }

    /// The field of `bit`, or `default` when the run leaves it out.
    fn field(&mut self, bit: u32, default: u32) -> u32 {
        if self.flags & bit == 0 {
            return default;
        }
        // In the box: `read` checked the run's length.
        let v = u32_at(self.data, self.at).unwrap_or(default);
        self.at += 4;
        v
    }
}

impl Iterator for Trun<'_> {
    type Item = TrunSample;

    fn next(&mut self) -> Option<TrunSample> {
        if self.next == self.count {
            return None;
        }
        let default_flags = match (self.next, self.first_flags) {
            (0, Some(f)) => f,
            _ => self.defaults.flags,
        };
        self.next += 1;
        Some(TrunSample {
            duration: self.field(0x100, self.defaults.duration),
            size: self.field(0x200, self.defaults.size),
            flags: self.field(0x400, default_flags),
            composition_offset: self.field(0x800, 0) as i32,
        })
    }

    /// The lower bound is capped: `collect` reserves it up front, and `count` is only as honest
    /// as the box (a run whose samples carry no fields of their own may claim billions).
    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.count - self.next) as usize;
        (left.min(10_000), Some(left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_that_do_not_fit_end_the_list() {
        // A 12-byte box, then one that claims more than is left.
        let mut data = vec![0, 0, 0, 12, b'f', b'r', b'e', b'e', 1, 2, 3, 4];
        data.extend_from_slice(&[0, 0, 0, 64, b'm', b'd', b'a', b't', 0]);
        let boxes = children(&data, 0, data.len());
        assert_eq!(boxes.len(), 1);
        assert_eq!(
            (&boxes[0].kind, boxes[0].body, boxes[0].end),
            (b"free", 8, 12)
        );
        // A size below its own header, and a 64-bit size.
        assert!(children(&[0, 0, 0, 4, b'b', b'a', b'd', b' '], 0, 8).is_empty());
        let mut large = vec![0, 0, 0, 1, b'm', b'd', b'a', b't', 0, 0, 0, 0, 0, 0, 0, 18];
        large.extend_from_slice(&[7, 7]);
        let boxes = children(&large, 0, large.len());
        assert_eq!((boxes[0].body, boxes[0].end), (16, 18));
        assert_eq!(u32_at(&data, data.len() - 3), None);
        assert_eq!(u16_at(&data, 10), Some(0x0304));
    }

    /// A `trun` box of `flags` and `count` samples, then `fields` (big-endian u32s).
    fn trun(flags: u32, count: u32, fields: &[u32]) -> (Vec<u8>, BoxAt) {
        let mut b = Vec::new();
        b.extend_from_slice(&(16 + 4 * fields.len() as u32).to_be_bytes());
        b.extend_from_slice(b"trun");
        b.extend_from_slice(&flags.to_be_bytes());
        b.extend_from_slice(&count.to_be_bytes());
        for f in fields {
            b.extend_from_slice(&f.to_be_bytes());
        }
        let at = children(&b, 0, b.len())[0];
        (b, at)
    }

    #[test]
    fn trun_samples_take_what_the_run_leaves_out_from_the_defaults() {
        let defaults = SampleDefaults {
            duration: 3000,
            size: 7,
            flags: SAMPLE_IS_NON_SYNC,
        };
        // Data offset, first-sample flags, then each sample's size and composition offset.
        let (b, at) = trun(
            0x1 | 0x4 | 0x200 | 0x800,
            2,
            &[96, 0, 10, 1500, 20, u32::MAX],
        );
        let run = Trun::read(&b, &at, defaults).unwrap();
        assert_eq!(run.data_offset, Some(96));
        assert_eq!(run.size_hint(), (2, Some(2)));
        let samples: Vec<TrunSample> = run.collect();
        assert_eq!(
            samples,
            [
                TrunSample {
                    duration: 3000,
                    size: 10,
                    flags: 0,
                    composition_offset: 1500
                },
                TrunSample {
                    duration: 3000,
                    size: 20,
                    flags: SAMPLE_IS_NON_SYNC,
                    composition_offset: -1
                },
            ]
        );
        // Every field in the box; no defaults needed.
        let (b, at) = trun(0x100 | 0x200 | 0x400 | 0x800, 1, &[1, 2, 3, 4]);
        let one: Vec<_> = Trun::read(&b, &at, defaults).unwrap().collect();
        assert_eq!(
            one,
            [TrunSample {
                duration: 1,
                size: 2,
                flags: 3,
                composition_offset: 4
            }]
        );
    }

    #[test]
    fn a_trun_listing_more_samples_than_it_holds_is_refused() {
        let (b, at) = trun(0x200, 3, &[10, 20]);
        assert_eq!(
            Trun::read(&b, &at, SampleDefaults::default()).unwrap_err(),
            "trun lists more samples than it holds"
        );
        let (b, at) = trun(0x1, 0, &[]);
        assert_eq!(
            Trun::read(&b, &at, SampleDefaults::default()).unwrap_err(),
            "short trun"
        );
    }
}
