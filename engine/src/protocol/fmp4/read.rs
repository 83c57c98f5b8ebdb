//! Reading ISO BMFF boxes in a buffer: the boxes directly inside a range, and big-endian fields.
//! Shared by the demuxer of pulled fMP4 segments and the reader of recorded ones.

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
}
