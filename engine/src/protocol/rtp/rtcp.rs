//! RTCP receiver reports (RFC 3550 §6.4.2, A.3, A.8): per track, the reception statistics of the
//! RTP stream (extended highest sequence number, cumulative and fractional loss, interarrival
//! jitter) and the last sender report's timing, written as a compound RR + SDES packet.
//!
//! Sans-IO: fed RTP and RTCP packets with their arrival time; the caller decides when to report
//! (every few seconds) and sends the bytes on the track's RTCP channel.

use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};

/// How often a receiver reports (RFC 3550's minimum interval).
pub const REPORT_INTERVAL: Duration = Duration::from_secs(5);

const PT_SR: u8 = 200;
const PT_RR: u8 = 201;
const PT_SDES: u8 = 202;
const SDES_CNAME: u8 = 1;

/// One track's reception statistics.
#[derive(Debug)]
pub struct Receiver {
    /// Our SSRC, the reports' sender.
    ssrc: u32,
    cname: String,
    clock_rate: u32,
    /// The first packet's arrival: jitter measures arrival times from it.
    start: Option<Instant>,
    source: Option<u32>,
    base_seq: u32,
    /// Extended highest sequence number received.
    max_seq: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    last_transit: Option<i64>,
    /// Interarrival jitter in clock units, scaled by 16 (RFC 3550 A.8).
    jitter16: u64,
    /// The last sender report's middle 32 NTP bits, and when it arrived.
    last_sr: Option<(u32, Instant)>,
}

impl Receiver {
    pub fn new(ssrc: u32, cname: &str, clock_rate: u32) -> Receiver {
        Receiver {
            ssrc,
            cname: cname.to_owned(),
            clock_rate: clock_rate.max(1),
            start: None,
            source: None,
            base_seq: 0,
            max_seq: 0,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            last_transit: None,
            jitter16: 0,
            last_sr: None,
        }
    }

    /// Counts an RTP packet (its raw bytes) that arrived at `now`.
    pub fn on_rtp(&mut self, now: Instant, packet: &[u8]) {
        if packet.len() < 12 {
            return;
        }
        let seq = u16::from_be_bytes([packet[2], packet[3]]);
        let ts = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        let ssrc = u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]);
        if self.source != Some(ssrc) {
            // A new source (or the first): statistics start over.
            self.source = Some(ssrc);
            self.base_seq = u32::from(seq);
            self.max_seq = u32::from(seq);
            self.received = 0;
            self.expected_prior = 0;
            self.received_prior = 0;
            self.last_transit = None;
            self.jitter16 = 0;
        }
        let delta = seq.wrapping_sub(self.max_seq as u16) as i16;
        if delta > 0 {
            self.max_seq = self.max_seq.wrapping_add(delta as u32);
        }
        self.received = self.received.wrapping_add(1);
        let start = *self.start.get_or_insert(now);
        let arrival = (now.duration_since(start).as_secs_f64() * f64::from(self.clock_rate)) as i64;
        let transit = arrival - i64::from(ts);
        if let Some(last) = self.last_transit {
            let d = (transit - last).unsigned_abs();
            // J += (|D| - J) / 16, kept scaled by 16.
            self.jitter16 = self.jitter16 + d - ((self.jitter16 + 8) >> 4);
        }
        self.last_transit = Some(transit);
    }

    /// Notes the sender reports in a (compound) RTCP packet that arrived at `now`.
    pub fn on_rtcp(&mut self, now: Instant, mut packet: &[u8]) {
        while packet.len() >= 4 {
            let words = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
            let len = (words + 1) * 4;
            if packet[1] == PT_SR && packet.len() >= 20 {
                let middle = u32::from_be_bytes([packet[10], packet[11], packet[12], packet[13]]);
                self.last_sr = Some((middle, now));
            }
            packet = packet.get(len..).unwrap_or_default();
        }
    }

    /// Writes a receiver report (with an SDES CNAME) to `out`; nothing before the first packet.
    pub fn report(&mut self, now: Instant, out: &mut BytesMut) {
        let Some(source) = self.source else {
            return;
        };
        let expected = self.max_seq.wrapping_sub(self.base_seq).wrapping_add(1);
        let lost = i64::from(expected) - i64::from(self.received);
        let lost = lost.clamp(-0x80_0000, 0x7f_ffff) as i32;
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        let fraction = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        };
        let (lsr, dlsr) = match self.last_sr {
            Some((middle, at)) => {
                let delay = now.duration_since(at).as_secs_f64() * 65536.0;
                (middle, delay as u32)
            }
            None => (0, 0),
        };
        // RR: header, our SSRC, one report block (6 words).
        out.put_slice(&[0x81, PT_RR]);
        out.put_u16(7);
        out.put_u32(self.ssrc);
        out.put_u32(source);
        out.put_u32((u32::from(fraction) << 24) | (lost as u32 & 0x00ff_ffff));
        out.put_u32(self.max_seq);
        out.put_u32((self.jitter16 >> 4) as u32);
        out.put_u32(lsr);
        out.put_u32(dlsr);
        // SDES: one chunk, CNAME, END, padded to a word.
        let cname = &self.cname.as_bytes()[..self.cname.len().min(255)];
        let chunk = 4 + 2 + cname.len() + 1;
        let padded = chunk.div_ceil(4) * 4;
        out.put_slice(&[0x81, PT_SDES]);
        out.put_u16((padded / 4) as u16);
        out.put_u32(self.ssrc);
        out.put_slice(&[SDES_CNAME, cname.len() as u8]);
        out.put_slice(cname);
        out.put_bytes(0, padded - chunk + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::rtp;
    use super::*;

    #[test]
    fn report_counts_loss_and_echoes_the_sender_report() {
        let t0 = Instant::now();
        let mut r = Receiver::new(0xaabb_ccdd, "cs", 90_000);
        // 65534, 65535, 0, then 3 after a gap of two (1 and 2 lost): all at steady pace, no jitter.
        for (i, seq) in [65534u16, 65535, 0, 3].into_iter().enumerate() {
            let at = t0 + Duration::from_millis(40 * i as u64);
            r.on_rtp(at, &rtp(96, seq, 3600 * i as u32, false, &[0]));
        }
        let mut sr = vec![0x80, PT_SR, 0, 6, 0x12, 0x34, 0x56, 0x78];
        sr.extend_from_slice(&[0xe0, 0x00, 0x11, 0x22, 0x33, 0x44, 0x00, 0x00]);
        sr.extend_from_slice(&[0; 12]);
        r.on_rtcp(t0, &sr);
        let mut out = BytesMut::new();
        r.report(t0 + Duration::from_millis(500), &mut out);
        let w = |i: usize| u32::from_be_bytes(out[i * 4..i * 4 + 4].try_into().unwrap());
        assert_eq!(&out[..4], &[0x81, PT_RR, 0, 7]);
        assert_eq!(w(1), 0xaabb_ccdd);
        assert_eq!(w(2), 0x1234_5678);
        // 6 expected, 4 received: fraction 2/6 of 256 = 85, cumulative 2.
        assert_eq!(w(3), (85 << 24) | 2);
        // One wrap: extended highest 65536 + 3.
        assert_eq!(w(4), 0x1_0003);
        assert_eq!(w(5), 0, "steady pace: no jitter");
        assert_eq!(w(6), 0x1122_3344);
        assert_eq!(w(7), 32768, "half a second in 1/65536 s");
        // SDES: header, SSRC, CNAME "cs", END, padding to 12 bytes of chunk.
        assert_eq!(
            &out[32..],
            &[0x81, PT_SDES, 0, 3, 0xaa, 0xbb, 0xcc, 0xdd, 1, 2, b'c', b's', 0, 0, 0, 0]
        );
        // The next interval lost nothing.
        let mut out = BytesMut::new();
        r.on_rtp(t0, &rtp(96, 4, 0, false, &[0]));
        r.report(t0, &mut out);
        assert_eq!(u32::from_be_bytes(out[12..16].try_into().unwrap()), 2);
    }

    #[test]
    fn nothing_to_report_before_media() {
        let mut out = BytesMut::new();
        Receiver::new(1, "x", 8000).report(Instant::now(), &mut out);
        assert!(out.is_empty());
    }
}
