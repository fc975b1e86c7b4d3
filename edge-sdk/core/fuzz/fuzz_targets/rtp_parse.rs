//! RTP fixed header: `RtpPacket::parse` on arbitrary bytes.
//!
//! Invariants when it parses:
//! - header length (`RtpHeader::len`) + payload + padding == packet length;
//! - writing the parsed fields back with `RtpHeader::write`, then the payload and the
//!   original padding bytes, reproduces the packet byte for byte;
//! - parsing that again gives identical fields (CSRCs, extension, payload, padding).
//!
//! When it does not parse, the error must be consistent with the input (too short, version,
//! padding count).
#![no_main]

use flowcloud_core::rtp::{FIXED_HEADER_LEN, RtpError, RtpHeader, RtpPacket};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let pkt = match RtpPacket::parse(data) {
        Ok(p) => p,
        Err(e) => {
            match e {
                RtpError::TooShort { len } => assert!(len == data.len() && len < FIXED_HEADER_LEN),
                RtpError::BadVersion { version } => {
                    assert!(version == data[0] >> 6 && version != 2)
                }
                RtpError::CsrcOverrun { count, len } => {
                    assert!(count == data[0] & 0x0f && len == data.len());
                    assert!(FIXED_HEADER_LEN + 4 * usize::from(count) > len);
                }
                RtpError::ExtensionOverrun { len, .. } => {
                    assert!(data[0] & 0x10 != 0 && len == data.len());
                }
                RtpError::BadPadding { count, available } => {
                    assert!(data[0] & 0x20 != 0);
                    assert!(count == 0 || usize::from(count) > available);
                    if available > 0 {
                        assert_eq!(count, data[data.len() - 1]);
                    }
                }
                other => panic!("parse returned a writer-side error: {other:?}"),
            }
            return;
        }
    };

    let csrcs: Vec<u32> = pkt.csrcs().collect();
    assert_eq!(csrcs.len(), usize::from(data[0] & 0x0f));
    assert_eq!(pkt.extension.is_some(), data[0] & 0x10 != 0);
    assert_eq!(pkt.padding != 0, data[0] & 0x20 != 0);
    if let Some(ext) = pkt.extension {
        assert_eq!(ext.data.len() % 4, 0);
    }

    let header = RtpHeader {
        marker: pkt.marker,
        payload_type: pkt.payload_type,
        sequence: pkt.sequence,
        timestamp: pkt.timestamp,
        ssrc: pkt.ssrc,
        csrcs: &csrcs,
        extension: pkt.extension,
    };
    let padding = usize::from(pkt.padding);
    assert_eq!(
        header.len() + pkt.payload.len() + padding,
        data.len(),
        "header + payload + padding do not add up to the packet"
    );

    // Too small a buffer is an error, not a panic.
    assert_eq!(
        header.write(&mut vec![0u8; header.len() - 1]),
        Err(RtpError::BufferTooSmall {
            needed: header.len(),
            capacity: header.len() - 1
        })
    );

    let mut out = vec![0u8; data.len()];
    let n = header
        .write(&mut out)
        .expect("fields from a parsed packet are writable");
    assert_eq!(n, header.len());
    out[n..n + pkt.payload.len()].copy_from_slice(pkt.payload);
    if padding > 0 {
        out[0] |= 0x20;
        // Keep the original padding bytes (only the last one, the count, is meaningful).
        out[data.len() - padding..].copy_from_slice(&data[data.len() - padding..]);
    }
    assert_eq!(out, data, "re-serialized packet differs");

    let again = RtpPacket::parse(&out).expect("re-serialized packet parses");
    assert_eq!(again, pkt);
    assert_eq!(again.csrcs().collect::<Vec<_>>(), csrcs);

    // Without padding, header + payload alone also round-trips.
    let mut plain = vec![0u8; header.len() + pkt.payload.len()];
    let n = header.write(&mut plain).expect("writable");
    plain[n..].copy_from_slice(pkt.payload);
    let plain_pkt = RtpPacket::parse(&plain).expect("unpadded packet parses");
    assert_eq!(plain_pkt.payload, pkt.payload);
    assert_eq!(plain_pkt.padding, 0);
    assert_eq!(plain_pkt.extension, pkt.extension);
    assert_eq!(
        (
            plain_pkt.marker,
            plain_pkt.payload_type,
            plain_pkt.sequence,
            plain_pkt.timestamp,
            plain_pkt.ssrc
        ),
        (
            pkt.marker,
            pkt.payload_type,
            pkt.sequence,
            pkt.timestamp,
            pkt.ssrc
        )
    );
});
