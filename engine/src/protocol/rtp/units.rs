//! What the H.264 and H.265 depacketizers share: sequence checking, access-unit assembly by
//! marker bit and timestamp, FU reassembly state, and the loss rule (an access unit with a lost
//! packet is dropped, and so is everything up to the next keyframe).

use bytes::{Bytes, BytesMut};

use super::{RtpPacket, SeqCheck, Sequence, Timeline};

/// Access units of NAL units being assembled from RTP packets.
///
/// Call order per packet: [`AccessUnits::accept`] (false: drop the packet), then, when
/// [`AccessUnits::starts_new`] says so, flush the previous unit with [`AccessUnits::take`]; feed
/// the payload's NAL units with [`AccessUnits::push_nal`] (fragments through `fu`), and flush
/// again after a packet with the marker bit.
#[derive(Debug)]
pub(super) struct AccessUnits {
    timeline: Timeline,
    seq: Sequence,
    ts: Option<u32>,
    nals: Vec<Bytes>,
    /// The fragmented NAL unit being reassembled, its header first.
    pub(super) fu: Option<BytesMut>,
    /// A packet of the current unit was lost or malformed.
    pub(super) damaged: bool,
    /// Units are dropped until a keyframe.
    wait_keyframe: bool,
    /// Units dropped for loss, while waiting for a keyframe, or without parameter sets.
    pub(super) dropped: u64,
}

impl AccessUnits {
    pub(super) fn new(timeline: Timeline) -> AccessUnits {
        AccessUnits {
            timeline,
            seq: Sequence::default(),
            ts: None,
            nals: Vec::new(),
            fu: None,
            damaged: false,
            wait_keyframe: true,
            dropped: 0,
        }
    }

    /// Checks the packet's sequence number: false for a late one (drop it); a gap damages the
    /// unit being assembled.
    pub(super) fn accept(&mut self, p: &RtpPacket) -> bool {
        match self.seq.check(p.sequence) {
            SeqCheck::Late => return false,
            SeqCheck::Lost(_) => {
                self.damaged = true;
                self.fu = None;
            }
            SeqCheck::InOrder => {}
        }
        true
    }

    /// Whether `p` begins a new unit while one is pending (its marker bit was lost or not set).
    pub(super) fn starts_new(&self, p: &RtpPacket) -> bool {
        self.ts.is_some_and(|ts| ts != p.timestamp)
    }

    /// Adds a NAL unit (not a parameter set) to the unit of `ts`.
    pub(super) fn push_nal(&mut self, ts: u32, nal: Bytes) {
        self.ts = Some(ts);
        self.nals.push(nal);
    }

    /// Notes that a packet of `ts` arrived, whatever it carried.
    pub(super) fn touch(&mut self, ts: u32) {
        self.ts = Some(ts);
    }

    /// Ends the pending unit: its time in milliseconds and NAL units when it is whole and a
    /// decoder can use it (`is_key` tells keyframes; `ready` whether parameter sets are known).
    pub(super) fn take(
        &mut self,
        is_key: impl Fn(&[u8]) -> bool,
        ready: bool,
    ) -> Option<(u32, bool, Vec<Bytes>)> {
        let nals = std::mem::take(&mut self.nals);
        let ts = self.ts.take()?;
        if self.fu.take().is_some() {
            self.damaged = true;
        }
        if std::mem::take(&mut self.damaged) {
            self.wait_keyframe = true;
            self.dropped += 1;
            return None;
        }
        if nals.is_empty() {
            return None;
        }
        let keyframe = nals.iter().any(|n| is_key(n));
        if (self.wait_keyframe && !keyframe) || !ready {
            self.dropped += 1;
            return None;
        }
        self.wait_keyframe = false;
        Some((self.timeline.ms(ts), keyframe, nals))
    }
}
