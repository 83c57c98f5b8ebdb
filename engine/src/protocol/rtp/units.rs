//! What the H.264 and H.265 depacketizers share: sequence checking, access-unit assembly by
//! marker bit and timestamp, FU and aggregation-packet reassembly, parameter sets from the SDP,
//! and the loss rule (an access unit with a lost packet is dropped, and so is everything up to
//! the next keyframe).

use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};

use super::{RtpPacket, SeqCheck, Sequence, Timeline};
use crate::media::Frame;
use crate::protocol::rtsp::Track;

/// The codec half of an H.264 or H.265 depacketizer: how a payload splits into NAL units, which
/// of those are parameter sets, and how an access unit becomes frames. The packet loop and the
/// payload layouts both RFCs share are the provided methods.
pub(super) trait NalCodec {
    fn units(&mut self) -> &mut AccessUnits;

    /// Splits one packet's payload into NAL units for [`NalCodec::nal`], aggregation packets
    /// through [`NalCodec::aggregated`] and fragments through [`AccessUnits::fragment`].
    fn payload(&mut self, ts: u32, data: &Bytes);

    /// Takes one NAL unit of the unit of `ts`: a parameter set, a picture's, or one to skip.
    fn nal(&mut self, ts: u32, nal: Bytes);

    /// Keeps a parameter set (from the SDP or in band); anything else is ignored.
    fn parameter_set(&mut self, nal: Bytes);

    /// Ends the access unit being assembled and emits it if it is whole and decodable.
    fn flush(&mut self, out: &mut Vec<Frame>);

    /// Feeds one packet; a unit ends at a packet with the marker bit, or, when that was lost or
    /// not set, at the first packet of the next timestamp.
    fn push(&mut self, p: &RtpPacket, out: &mut Vec<Frame>) {
        if !self.units().accept(p) {
            return;
        }
        if self.units().starts_new(p) {
            self.flush(out);
        }
        self.units().touch(p.timestamp);
        self.payload(p.timestamp, &p.payload);
        if p.marker {
            self.flush(out);
        }
    }

    /// Takes the parameter sets in the fmtp parameters `names`, each a comma-separated list of
    /// base64 NAL units. One that does not decode is skipped: the stream may repeat it in band.
    fn sprop_parameter_sets(&mut self, track: &Track, names: &[&str]) {
        for sets in names.iter().filter_map(|name| track.fmtp(name)) {
            for set in sets.split(',') {
                if let Ok(nal) = base64::engine::general_purpose::STANDARD.decode(set.trim()) {
                    self.parameter_set(Bytes::from(nal));
                }
            }
        }
    }

    /// The NAL units of an aggregation packet (STAP-A, H.265 AP) from byte `at`, each behind
    /// its 16-bit size. A size under `min` or past the end damages the unit and ends the packet.
    fn aggregated(&mut self, ts: u32, data: &Bytes, mut at: usize, min: usize) {
        while at + 2 <= data.len() {
            let size = usize::from(u16::from_be_bytes([data[at], data[at + 1]]));
            at += 2;
            if size < min || at + size > data.len() {
                self.units().damaged = true;
                return;
            }
            self.nal(ts, data.slice(at..at + size));
            at += size;
        }
    }
}

/// Access units of NAL units being assembled from RTP packets.
///
/// Call order per packet, as [`NalCodec::push`] makes it: [`AccessUnits::accept`] (false: drop
/// the packet), then, when [`AccessUnits::starts_new`] says so, flush the previous unit with
/// [`AccessUnits::take`]; [`AccessUnits::touch`], feed the payload's NAL units with
/// [`AccessUnits::push_nal`] (fragments through [`AccessUnits::fragment`]), and flush again
/// after a packet with the marker bit.
#[derive(Debug)]
pub(super) struct AccessUnits {
    timeline: Timeline,
    seq: Sequence,
    ts: Option<u32>,
    nals: Vec<Bytes>,
    /// The fragmented NAL unit being reassembled, its header first.
    fu: Option<BytesMut>,
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
    fn accept(&mut self, p: &RtpPacket) -> bool {
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
    fn starts_new(&self, p: &RtpPacket) -> bool {
        self.ts.is_some_and(|ts| ts != p.timestamp)
    }

    /// Adds a NAL unit (not a parameter set) to the unit of `ts`.
    pub(super) fn push_nal(&mut self, ts: u32, nal: Bytes) {
        self.ts = Some(ts);
        self.nals.push(nal);
    }

    /// Notes that a packet of `ts` arrived, whatever it carried.
    fn touch(&mut self, ts: u32) {
        self.ts = Some(ts);
    }

    /// Adds a fragmentation unit (FU-A, H.265 FU) to the NAL unit being reassembled:
    /// `fu_header` holds the start and end bits, `nal_header` heads the NAL unit a start fragment
    /// begins. The whole NAL unit once its end fragment is in.
    pub(super) fn fragment(
        &mut self,
        fu_header: u8,
        nal_header: &[u8],
        data: &[u8],
    ) -> Option<Bytes> {
        let (start, end) = (fu_header & 0x80 != 0, fu_header & 0x40 != 0);
        if start {
            let mut nal = BytesMut::with_capacity((nal_header.len() + data.len()) * 4);
            nal.put_slice(nal_header);
            nal.put_slice(data);
            self.fu = Some(nal);
        } else if let Some(nal) = &mut self.fu {
            nal.put_slice(data);
        } else {
            // A middle or end fragment without its start: its start was lost.
            self.damaged = true;
            return None;
        }
        if end {
            self.fu.take().map(BytesMut::freeze)
        } else {
            None
        }
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
