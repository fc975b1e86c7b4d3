//! One named regression test per malformed-input rule of the protocol (DESIGN.md, "limits
//! that hold everywhere"). Each asserts the typed error, that the damaged access unit is
//! reported as lost rather than emitted, and that the next valid access unit still comes out.
#![allow(clippy::unwrap_used)]

mod common;

use common::{PPS, SPS_64X64, annex_b, nal_unit, rtp};
use flowcloud_core::h264::depacketizer::LossReason;
use flowcloud_core::h264::{
    DepacketizeError, Depacketizer, DepacketizerConfig, Event, Loss, MAX_ACCESS_UNIT_BYTES,
    MAX_NALS_PER_ACCESS_UNIT, PacketizeError, Packetizer, PacketizerConfig,
};
use flowcloud_core::rtp::RtpError;

#[derive(Debug, PartialEq, Eq)]
enum Out {
    Au { ts: u32, data: Vec<u8> },
    Loss(Loss),
}

struct Receiver {
    depacketizer: Depacketizer<Vec<u8>>,
    out: Vec<Out>,
}

impl Receiver {
    fn new() -> Self {
        Self::with_config(DepacketizerConfig::default())
    }

    fn with_config(config: DepacketizerConfig) -> Self {
        let len = Depacketizer::<Vec<u8>>::buffer_len_for(config.max_access_unit_bytes);
        Self {
            depacketizer: Depacketizer::new(vec![0; len], config),
            out: Vec::new(),
        }
    }

    fn push(&mut self, packet: &[u8]) -> Result<(), DepacketizeError> {
        let result = self.depacketizer.push(packet);
        while let Some(event) = self.depacketizer.poll_event() {
            self.out.push(match event {
                Event::AccessUnit(au) => Out::Au {
                    ts: au.rtp_timestamp,
                    data: au.data.to_vec(),
                },
                Event::Loss(loss) => Out::Loss(loss),
            });
        }
        result
    }

    fn push_ok(&mut self, packet: &[u8]) {
        assert_eq!(self.push(packet), Ok(()));
    }
}

/// A small valid access unit: one non-IDR slice as a single NAL unit packet, the first of
/// its picture (`first_mb_in_slice` = 0), so it may also begin a stream.
fn valid_slice() -> Vec<u8> {
    let mut slice = nal_unit(1, 2, 40, 7);
    slice[1] |= 0x80;
    slice
}

/// Sends `valid_slice()` as its own access unit and asserts it comes out intact.
fn assert_next_access_unit_comes_out(rx: &mut Receiver, seq: u16, ts: u32) {
    let slice = valid_slice();
    rx.push_ok(&rtp(seq, ts, true, &slice));
    assert_eq!(
        rx.out.last(),
        Some(&Out::Au {
            ts,
            data: annex_b(&[slice])
        })
    );
}

fn lost(ts: u32, error: DepacketizeError) -> Out {
    Out::Loss(Loss {
        rtp_timestamp: ts,
        reason: LossReason::Malformed(error),
    })
}

fn fu_a(nri_type: u8, start: bool, end: bool, nal_type: u8, data: &[u8]) -> Vec<u8> {
    let mut p = vec![
        (nri_type & 0xe0) | 28,
        (u8::from(start) << 7) | (u8::from(end) << 6) | nal_type,
    ];
    p.extend_from_slice(data);
    p
}

#[test]
fn access_unit_over_8_mib_is_lost() {
    let mut rx = Receiver::new();
    // Each fragment starts like a first slice (first_mb_in_slice = 0), as the stream's first must.
    let mut chunk = vec![0x55u8; 60_000];
    chunk[0] = 0x88;
    let fragments = MAX_ACCESS_UNIT_BYTES / chunk.len() + 2;
    let mut first_error = None;
    for i in 0..fragments {
        let p = fu_a(0x60, i == 0, i + 1 == fragments, 5, &chunk);
        if let Err(e) = rx.push(&rtp(i as u16, 3000, i + 1 == fragments, &p)) {
            first_error.get_or_insert(e);
        }
    }
    let error = DepacketizeError::AccessUnitTooLarge {
        limit: MAX_ACCESS_UNIT_BYTES,
    };
    assert_eq!(first_error, Some(error));
    assert_eq!(rx.out, [lost(3000, error)]);
    assert_next_access_unit_comes_out(&mut rx, fragments as u16, 6000);
}

#[test]
fn access_unit_over_the_configured_limit_is_lost() {
    let config = DepacketizerConfig {
        max_access_unit_bytes: 1000,
        ..Default::default()
    };
    let mut rx = Receiver::with_config(config);
    let big = nal_unit(1, 2, 1200, 1);
    let error = DepacketizeError::AccessUnitTooLarge { limit: 1000 };
    assert_eq!(rx.push(&rtp(0, 3000, true, &big)), Err(error));
    assert_eq!(rx.out, [lost(3000, error)]);
    assert_next_access_unit_comes_out(&mut rx, 1, 6000);
}

#[test]
fn more_than_64_nal_units_is_lost() {
    let mut rx = Receiver::new();
    let slice = valid_slice();
    for i in 0..MAX_NALS_PER_ACCESS_UNIT {
        rx.push_ok(&rtp(i as u16, 3000, false, &slice));
    }
    let error = DepacketizeError::TooManyNals {
        limit: MAX_NALS_PER_ACCESS_UNIT,
    };
    assert_eq!(rx.push(&rtp(64, 3000, true, &slice)), Err(error));
    assert_eq!(rx.out, [lost(3000, error)]);
    assert_next_access_unit_comes_out(&mut rx, 65, 6000);
}

#[test]
fn packetizer_refuses_more_than_64_nal_units() {
    let nals: Vec<Vec<u8>> = (0..65).map(|i| nal_unit(1, 2, 10, i)).collect();
    let mut packetizer = Packetizer::new(PacketizerConfig::default()).unwrap();
    assert_eq!(
        packetizer.packetize(&annex_b(&nals), 0).err(),
        Some(PacketizeError::TooManyNals { limit: 64 })
    );
}

#[test]
fn fu_a_without_start_is_dropped_until_next_start() {
    let mut rx = Receiver::new();
    assert_eq!(
        rx.push(&rtp(
            0,
            3000,
            false,
            &fu_a(0x60, false, false, 5, b"middle")
        )),
        Err(DepacketizeError::FuAWithoutStart)
    );
    // The end fragment of the same NAL is ignored: the access unit is already damaged.
    rx.push_ok(&rtp(1, 3000, true, &fu_a(0x60, false, true, 5, b"end")));
    assert_eq!(rx.out, [lost(3000, DepacketizeError::FuAWithoutStart)]);
    // A complete FU-A in the next access unit is reassembled.
    rx.push_ok(&rtp(2, 6000, false, &fu_a(0x60, true, false, 5, b"abc")));
    rx.push_ok(&rtp(3, 6000, true, &fu_a(0x60, false, true, 5, b"def")));
    assert_eq!(
        rx.out.last(),
        Some(&Out::Au {
            ts: 6000,
            data: b"\0\0\0\x01\x65abcdef".to_vec()
        })
    );
}

#[test]
fn fu_a_with_a_gap_is_reported_lost() {
    let mut rx = Receiver::new();
    rx.push_ok(&rtp(
        10,
        3000,
        false,
        &fu_a(0x60, true, false, 5, &[0x88, 0x84]),
    ));
    // Sequence 11 (a middle fragment) never arrives.
    rx.push_ok(&rtp(12, 3000, true, &fu_a(0x60, false, true, 5, b"ghi")));
    assert_eq!(
        rx.out,
        [Out::Loss(Loss {
            rtp_timestamp: 3000,
            reason: LossReason::SequenceGap { missing: 1 }
        })]
    );
    assert_eq!(rx.depacketizer.stats().lost_packets, 1);
    assert_next_access_unit_comes_out(&mut rx, 13, 6000);
}

#[test]
fn fu_a_interrupted_before_its_end_is_lost() {
    let mut rx = Receiver::new();
    rx.push_ok(&rtp(
        0,
        3000,
        false,
        &fu_a(0x60, true, false, 5, &[0x88, 0x84]),
    ));
    assert_eq!(
        rx.push(&rtp(1, 3000, true, &valid_slice())),
        Err(DepacketizeError::FuAMissingEnd)
    );
    assert_eq!(rx.out, [lost(3000, DepacketizeError::FuAMissingEnd)]);
    // A second start before the end is the same fault.
    rx.push_ok(&rtp(2, 6000, false, &fu_a(0x60, true, false, 5, b"abc")));
    assert_eq!(
        rx.push(&rtp(3, 6000, true, &fu_a(0x60, true, false, 5, b"abc"))),
        Err(DepacketizeError::FuAMissingEnd)
    );
    // And so is a marker inside a FU-A.
    rx.push_ok(&rtp(4, 9000, true, &fu_a(0x60, true, false, 5, b"abc")));
    assert_eq!(
        rx.out[1..],
        [
            lost(6000, DepacketizeError::FuAMissingEnd),
            Out::Loss(Loss {
                rtp_timestamp: 9000,
                reason: LossReason::Incomplete
            }),
        ]
    );
    assert_next_access_unit_comes_out(&mut rx, 5, 12000);
}

#[test]
fn fu_a_with_start_and_end_bits_is_rejected() {
    let mut rx = Receiver::new();
    assert_eq!(
        rx.push(&rtp(0, 3000, true, &fu_a(0x60, true, true, 5, b"abc"))),
        Err(DepacketizeError::FuAStartAndEnd)
    );
    assert_eq!(rx.out, [lost(3000, DepacketizeError::FuAStartAndEnd)]);
    assert_next_access_unit_comes_out(&mut rx, 1, 6000);
}

#[test]
fn fu_a_of_an_aggregation_type_is_rejected() {
    let mut rx = Receiver::new();
    let error = DepacketizeError::FuAInvalidType { nal_type: 24 };
    assert_eq!(
        rx.push(&rtp(0, 3000, true, &fu_a(0x60, true, false, 24, b"abc"))),
        Err(error)
    );
    assert_eq!(rx.out, [lost(3000, error)]);
    assert_next_access_unit_comes_out(&mut rx, 1, 6000);
}

#[test]
fn fu_a_without_data_is_rejected() {
    let mut rx = Receiver::new();
    let error = DepacketizeError::FuATooShort { len: 2 };
    assert_eq!(
        rx.push(&rtp(0, 3000, true, &fu_a(0x60, true, false, 5, b""))),
        Err(error)
    );
    assert_eq!(rx.out, [lost(3000, error)]);
    assert_next_access_unit_comes_out(&mut rx, 1, 6000);
}

#[test]
fn stap_a_size_past_the_packet_is_rejected_before_copying() {
    let mut rx = Receiver::new();
    // First unit is fine (4 bytes), second declares 200 bytes but 3 remain.
    let payload = [24, 0, 4, 0x68, 0xcb, 0x8c, 0xb2, 0, 200, 0x65, 1, 2];
    let error = DepacketizeError::StapATruncated {
        offset: 7,
        declared: 200,
        available: 3,
    };
    assert_eq!(rx.push(&rtp(0, 3000, true, &payload)), Err(error));
    assert_eq!(rx.out, [lost(3000, error)]);
    assert_next_access_unit_comes_out(&mut rx, 1, 6000);
}

#[test]
fn stap_a_with_a_cut_size_field_is_rejected() {
    let mut rx = Receiver::new();
    let payload = [24, 0, 4, 0x68, 0xcb, 0x8c, 0xb2, 0];
    let error = DepacketizeError::StapATruncated {
        offset: 7,
        declared: 0,
        available: 1,
    };
    assert_eq!(rx.push(&rtp(0, 3000, true, &payload)), Err(error));
    assert_eq!(rx.out, [lost(3000, error)]);
    assert_next_access_unit_comes_out(&mut rx, 1, 6000);
}

#[test]
fn stap_a_with_a_zero_size_unit_is_rejected() {
    let mut rx = Receiver::new();
    let error = DepacketizeError::StapAZeroSize { offset: 1 };
    assert_eq!(rx.push(&rtp(0, 3000, true, &[24, 0, 0, 0x65])), Err(error));
    assert_eq!(rx.out, [lost(3000, error)]);
    assert_next_access_unit_comes_out(&mut rx, 1, 6000);
}

#[test]
fn stap_a_without_units_is_rejected() {
    let mut rx = Receiver::new();
    assert_eq!(
        rx.push(&rtp(0, 3000, true, &[24])),
        Err(DepacketizeError::StapAEmpty)
    );
    assert_eq!(rx.out, [lost(3000, DepacketizeError::StapAEmpty)]);
    assert_next_access_unit_comes_out(&mut rx, 1, 6000);
}

#[test]
fn stap_a_nesting_a_fragment_is_rejected() {
    let mut rx = Receiver::new();
    let error = DepacketizeError::StapANestedType { nal_type: 28 };
    assert_eq!(
        rx.push(&rtp(0, 3000, true, &[24, 0, 3, 28, 0x85, 1])),
        Err(error)
    );
    assert_eq!(rx.out, [lost(3000, error)]);
    assert_next_access_unit_comes_out(&mut rx, 1, 6000);
}

/// STAP-B, MTAP16, MTAP24, FU-B and the reserved types are refused from the header byte
/// alone: the payload here has no length fields at all, and the error is about the type.
#[test]
fn interleaved_mode_and_reserved_types_are_rejected_before_reading_lengths() {
    for (i, nal_type) in [25u8, 26, 27, 29, 0, 30, 31].into_iter().enumerate() {
        let mut rx = Receiver::new();
        let error = DepacketizeError::UnsupportedNalType { nal_type };
        assert_eq!(
            rx.push(&rtp(0, 3000, true, &[0x60 | nal_type])),
            Err(error),
            "type {nal_type}"
        );
        assert_eq!(rx.out, [lost(3000, error)], "type {nal_type}");
        assert_next_access_unit_comes_out(&mut rx, 1, 6000 + i as u32);
    }
}

#[test]
fn forbidden_bit_is_rejected() {
    let mut rx = Receiver::new();
    let error = DepacketizeError::ForbiddenBitSet { header: 0xe5 };
    assert_eq!(rx.push(&rtp(0, 3000, true, &[0xe5, 1, 2])), Err(error));
    assert_eq!(rx.out, [lost(3000, error)]);
    assert_next_access_unit_comes_out(&mut rx, 1, 6000);
}

#[test]
fn rtp_padding_longer_than_the_payload_is_rejected() {
    let mut rx = Receiver::new();
    let mut packet = rtp(0, 3000, true, &[0x65, 1, 9]);
    packet[0] |= 0x20; // P bit: the last byte (9) claims 9 bytes of padding; 3 exist
    let error = DepacketizeError::Rtp(RtpError::BadPadding {
        count: 9,
        available: 3,
    });
    assert_eq!(rx.push(&packet), Err(error));
    // Unparseable packets cannot be placed, so they damage whatever comes next.
    rx.push_ok(&rtp(1, 6000, true, &valid_slice()));
    assert_eq!(rx.out, [lost(6000, error)]);
    assert_next_access_unit_comes_out(&mut rx, 2, 9000);
}

#[test]
fn rtp_extension_past_the_packet_is_rejected() {
    let mut rx = Receiver::new();
    let mut packet = rtp(0, 3000, true, &[0xbe, 0xde, 0x00, 0x10, 0x65]);
    packet[0] |= 0x10; // X bit: extension of 16 words, 1 byte present
    let error = DepacketizeError::Rtp(RtpError::ExtensionOverrun { words: 16, len: 17 });
    assert_eq!(rx.push(&packet), Err(error));
    rx.push_ok(&rtp(1, 6000, true, &valid_slice()));
    assert_eq!(rx.out, [lost(6000, error)]);
    assert_next_access_unit_comes_out(&mut rx, 2, 9000);
}

#[test]
fn rtp_csrc_list_past_the_packet_is_rejected() {
    let mut rx = Receiver::new();
    let mut packet = rtp(0, 3000, true, &[0x65, 1, 2, 3]);
    packet[0] |= 0x0f; // 15 CSRCs need 60 bytes
    let error = DepacketizeError::Rtp(RtpError::CsrcOverrun { count: 15, len: 16 });
    assert_eq!(rx.push(&packet), Err(error));
    rx.push_ok(&rtp(1, 6000, true, &valid_slice()));
    assert_eq!(rx.out, [lost(6000, error)]);
    assert_next_access_unit_comes_out(&mut rx, 2, 9000);
}

#[test]
fn sequence_wrap_is_not_loss() {
    let mut rx = Receiver::new();
    let nals = [nal_unit(5, 3, 3000, 1), nal_unit(5, 3, 3000, 2)];
    let mut packetizer = Packetizer::new(PacketizerConfig {
        ssrc: 0x1234,
        payload_budget: 1000,
        initial_sequence: 65533,
        ..Default::default()
    })
    .unwrap();
    let au = annex_b(&nals);
    let mut packets = packetizer.packetize(&au, 3000).unwrap();
    let mut buf = vec![0u8; 2000];
    let mut count = 0;
    while let Some(n) = packets.next_packet(&mut buf).unwrap() {
        rx.push_ok(&buf[..n]);
        count += 1;
    }
    assert!(count > 4, "the access unit must span the wrap");
    assert_eq!(rx.out, [Out::Au { ts: 3000, data: au }]);
    assert_eq!(rx.depacketizer.stats().lost_packets, 0);
    assert_next_access_unit_comes_out(&mut rx, packetizer.next_sequence().0, 6000);
}

#[test]
fn sps_above_the_dimension_limit_is_rejected_before_use() {
    let config = DepacketizerConfig {
        max_width: 32,
        max_height: 32,
        ..Default::default()
    };
    let mut rx = Receiver::with_config(config);
    let error = DepacketizeError::SpsDimensionsTooLarge {
        width: 64,
        height: 64,
        max_width: 32,
        max_height: 32,
    };
    let mut stap = vec![24];
    for nal in [SPS_64X64, PPS] {
        stap.extend_from_slice(&(nal.len() as u16).to_be_bytes());
        stap.extend_from_slice(nal);
    }
    assert_eq!(rx.push(&rtp(0, 3000, false, &stap)), Err(error));
    rx.push_ok(&rtp(1, 3000, true, &nal_unit(5, 3, 100, 1)));
    assert_eq!(rx.out, [lost(3000, error)]);
    assert!(
        rx.depacketizer.sps().is_none(),
        "a rejected SPS must not be kept"
    );
    assert_next_access_unit_comes_out(&mut rx, 2, 6000);
}

#[test]
fn unparseable_sps_is_rejected() {
    let mut rx = Receiver::new();
    let truncated = &SPS_64X64[..6];
    let result = rx.push(&rtp(0, 3000, true, truncated));
    assert!(
        matches!(result, Err(DepacketizeError::Sps(_))),
        "{result:?}"
    );
    assert!(matches!(
        rx.out[..],
        [Out::Loss(Loss {
            rtp_timestamp: 3000,
            ..
        })]
    ));
    assert_next_access_unit_comes_out(&mut rx, 1, 6000);
}

#[test]
fn sps_within_limits_is_kept() {
    let mut rx = Receiver::new();
    rx.push_ok(&rtp(0, 3000, true, SPS_64X64));
    let sps = rx.depacketizer.sps().unwrap();
    assert_eq!((sps.width, sps.height), (64, 64));
}

#[test]
fn other_ssrc_is_rejected_without_harming_the_stream() {
    let mut rx = Receiver::new();
    let slice = valid_slice();
    rx.push_ok(&rtp(0, 3000, false, &slice));
    let mut foreign = rtp(1, 3000, true, &slice);
    foreign[8..12].copy_from_slice(&0x9999u32.to_be_bytes());
    assert_eq!(
        rx.push(&foreign),
        Err(DepacketizeError::SsrcMismatch {
            expected: 0x1234,
            got: 0x9999
        })
    );
    rx.push_ok(&rtp(1, 3000, true, &slice));
    assert_eq!(
        rx.out,
        [Out::Au {
            ts: 3000,
            data: annex_b(&[slice.clone(), slice])
        }]
    );
}

#[test]
fn duplicate_and_late_packets_are_ignored() {
    let mut rx = Receiver::new();
    let slice = valid_slice();
    rx.push_ok(&rtp(0, 3000, false, &slice));
    rx.push_ok(&rtp(0, 3000, false, &slice));
    rx.push_ok(&rtp(1, 3000, true, &slice));
    rx.push_ok(&rtp(0, 3000, false, &slice));
    assert_eq!(
        rx.out,
        [Out::Au {
            ts: 3000,
            data: annex_b(&[slice.clone(), slice])
        }]
    );
    assert_eq!(rx.depacketizer.stats().duplicates, 1);
    assert_eq!(rx.depacketizer.stats().late, 1);
}

#[test]
fn missing_marker_ends_the_access_unit_at_the_next_timestamp() {
    let mut rx = Receiver::new();
    let a = nal_unit(5, 3, 50, 1);
    let b = nal_unit(1, 2, 50, 2);
    rx.push_ok(&rtp(0, 3000, false, &a));
    assert!(rx.out.is_empty());
    rx.push_ok(&rtp(1, 6000, true, &b));
    assert_eq!(
        rx.out,
        [
            Out::Au {
                ts: 3000,
                data: annex_b(&[a])
            },
            Out::Au {
                ts: 6000,
                data: annex_b(&[b])
            }
        ]
    );
}

#[test]
fn undrained_events_refuse_the_next_packet_without_losing_it() {
    let mut rx = Receiver::new();
    let slice = valid_slice();
    assert_eq!(rx.depacketizer.push(&rtp(0, 3000, true, &slice)), Ok(()));
    assert_eq!(
        rx.depacketizer.push(&rtp(1, 6000, true, &slice)),
        Err(DepacketizeError::EventsPending)
    );
    assert!(matches!(
        rx.depacketizer.poll_event(),
        Some(Event::AccessUnit(_))
    ));
    rx.push_ok(&rtp(1, 6000, true, &slice));
    assert_eq!(
        rx.out,
        [Out::Au {
            ts: 6000,
            data: annex_b(&[slice])
        }]
    );
    assert_eq!(rx.depacketizer.stats().lost_packets, 0);
}

#[test]
fn gap_between_access_units_damages_only_the_next_one() {
    let mut rx = Receiver::new();
    let slice = valid_slice();
    rx.push_ok(&rtp(0, 3000, true, &slice));
    // Sequence 1 (all of the access unit at 6000, or the start of the one at 9000) is lost.
    rx.push_ok(&rtp(2, 9000, true, &slice));
    rx.push_ok(&rtp(3, 12000, true, &slice));
    assert_eq!(
        rx.out,
        [
            Out::Au {
                ts: 3000,
                data: annex_b(std::slice::from_ref(&slice))
            },
            Out::Loss(Loss {
                rtp_timestamp: 9000,
                reason: LossReason::SequenceGap { missing: 1 }
            }),
            Out::Au {
                ts: 12000,
                data: annex_b(&[slice])
            },
        ]
    );
}

#[test]
fn loss_before_the_first_packet_is_detected_when_the_start_is_known() {
    let config = DepacketizerConfig {
        initial_sequence: Some(65535),
        ..Default::default()
    };
    let mut rx = Receiver::with_config(config);
    // Sequence 65535 never arrives; 0 does.
    rx.push_ok(&rtp(0, 3000, true, &valid_slice()));
    assert_eq!(
        rx.out,
        [Out::Loss(Loss {
            rtp_timestamp: 3000,
            reason: LossReason::SequenceGap { missing: 1 }
        })]
    );
    assert_next_access_unit_comes_out(&mut rx, 1, 6000);
}

#[test]
fn joining_a_stream_mid_access_unit_is_reported_lost() {
    let mut rx = Receiver::new();
    // A slice that is not the first of its picture: first_mb_in_slice's ue(v) starts with 0.
    let mut second_slice = nal_unit(1, 2, 40, 3);
    second_slice[1] &= 0x7f;
    rx.push_ok(&rtp(0, 3000, true, &second_slice));
    assert_eq!(
        rx.out,
        [Out::Loss(Loss {
            rtp_timestamp: 3000,
            reason: LossReason::JoinedMidAccessUnit
        })]
    );
    assert_next_access_unit_comes_out(&mut rx, 1, 6000);
}

#[test]
fn streams_may_begin_with_parameter_sets_or_a_first_slice() {
    let mut stap = vec![24];
    for nal in [SPS_64X64, PPS] {
        stap.extend_from_slice(&(nal.len() as u16).to_be_bytes());
        stap.extend_from_slice(nal);
    }
    let first_fu = fu_a(0x60, true, false, 5, &[0x88, 0x84]);
    for first in [
        stap,
        SPS_64X64.to_vec(),
        valid_slice(),
        vec![0x09, 0xf0],
        first_fu,
    ] {
        let mut rx = Receiver::new();
        rx.push_ok(&rtp(0, 3000, false, &first));
        assert!(rx.out.is_empty(), "{first:02x?}");
        // End the access unit with the end fragment if a FU-A is open, else with a slice.
        let last = if first[0] & 0x1f == 28 {
            fu_a(0x60, false, true, 5, &[1])
        } else {
            valid_slice()
        };
        rx.push_ok(&rtp(1, 3000, true, &last));
        assert!(
            matches!(rx.out[..], [Out::Au { ts: 3000, .. }]),
            "{first:02x?}: {:?}",
            rx.out
        );
    }
}
