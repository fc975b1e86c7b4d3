#!/usr/bin/env python3
"""Regenerates the hand-derived seed files under fuzz/seeds/ from edge-sdk/core/testdata.

Run from anywhere: `python3 edge-sdk/core/fuzz/seeds/generate.py`. Deterministic. The seeds of
the structured targets (round_trip, rtcp_parse's and results' structured halves) are not made
here: they are inputs kept from fuzzing runs (see README.md).
"""
import pathlib
import struct

FUZZ = pathlib.Path(__file__).resolve().parent.parent
TESTDATA = FUZZ.parent / "testdata"
SEEDS = FUZZ / "seeds"


def write(target, name, data):
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(bytes(data))


def deframe(stream):
    """RFC 4571 stream -> list of RTP packets."""
    out, pos = [], 0
    while pos + 2 <= len(stream):
        (n,) = struct.unpack_from(">H", stream, pos)
        out.append(stream[pos + 2 : pos + 2 + n])
        pos += 2 + n
    return out


def nal_units(annexb):
    out, i, starts = [], 0, []
    while True:
        j = annexb.find(b"\x00\x00\x01", i)
        if j < 0:
            break
        starts.append(j + 3)
        i = j + 3
    for k, s in enumerate(starts):
        e = starts[k + 1] - 3 if k + 1 < len(starts) else len(annexb)
        out.append(annexb[s:e].rstrip(b"\x00"))
    return out


gst = TESTDATA / "gstreamer"
mtu200 = (gst / "ball-160x120-mtu200.rtp").read_bytes()
mtu1400 = (gst / "ball-160x120-mtu1400-spspps.rtp").read_bytes()
mtu9000 = (gst / "ball-160x120-mtu9000.rtp").read_bytes()
p200, p1400, p9000 = deframe(mtu200), deframe(mtu1400), deframe(mtu9000)

# deframer: [k, pattern[k], stream]
write("deframer", "gst-mtu200-bytewise", [0] + list(mtu200[:1500]))
write("deframer", "gst-mtu1400-mixed", [3, 0x00, 0x06, 0x85] + list(mtu1400[:4000]))
write("deframer", "gst-mtu9000-whole", [1, 0xff] + list(mtu9000[:3000]))
# Zero-length frames, a frame over 512 bytes (skipped by Deframer<512>), a cut at the end.
odd = b"\x00\x00" + b"\x00\x03abc" + b"\x02\x58" + bytes(600) + b"\x00\x00" + b"\x00\x02ok" + b"\x00\x09cut"
write("deframer", "empty-oversized-cut", [2, 0x01, 0x10] + list(odd))

# rtp_parse: real packets, plus one with CSRCs, an extension and padding.
write("rtp_parse", "gst-stap-a", p200[0])
write("rtp_parse", "gst-fu-a-start", p200[1])
write("rtp_parse", "gst-single-nal", min(p1400, key=len))
hdr = bytes([0xB2, 0xE0]) + struct.pack(">HII", 7, 0xDEADBEEF, 0x12345678)
hdr += struct.pack(">II", 1, 2)  # two CSRCs
hdr += struct.pack(">HH", 0xBEDE, 1) + b"\x10\xAA\x00\x00"  # one-byte-header extension
write("rtp_parse", "csrc-ext-padding", hdr + b"\x65\x88\x84" + b"\x00\x00\x03")


# depacketizer: [config, records of (ctl, len u16, bytes)]
def raw_records(packets):
    out = b""
    for p in packets:
        out += bytes([0x80]) + struct.pack(">H", len(p)) + p
    return out


def synth_records(packets):
    """The payloads, with headers synthesized by the target (sequence +1, timestamp and marker
    as in the capture)."""
    out, last_ts = b"", None
    for p in packets:
        marker = p[1] & 0x80
        (ts,) = struct.unpack_from(">I", p, 4)
        ctl = 0x00
        if last_ts is not None and ts != last_ts:
            ctl |= 0x08
        if marker:
            ctl |= 0x10
        last_ts = ts
        payload = p[12:]
        out += bytes([ctl]) + struct.pack(">H", len(payload)) + payload
    return out


write("depacketizer", "gst-mtu200-raw", b"\x00" + raw_records(p200[:24]))
write("depacketizer", "gst-mtu1400-raw-pt-filter", b"\x04" + raw_records(p1400[:4]))
write("depacketizer", "gst-mtu200-synth", b"\x00" + synth_records(p200[:24]))
write("depacketizer", "gst-mtu9000-synth-small-buffer", b"\x63" + synth_records(p9000[:3]))
# The synthesized stream with faults mixed in: a gap before packet 3 (ctl 6), packet 5 sent
# twice (4: duplicate), a late packet (5) after packet 8; known initial sequence (config 0x10).
faults = b""
for i, p in enumerate(p200[:12]):
    rec = bytearray(synth_records([p]))
    if i > 0 and struct.unpack_from(">I", p, 4) != struct.unpack_from(">I", p200[i - 1], 4):
        rec[0] |= 0x08
    if i == 3:
        rec[0] |= 0x06
    faults += rec
    if i == 5:
        faults += bytes([rec[0] & ~0x0F | 0x04]) + rec[1:]
    if i == 8:
        faults += bytes([0x05]) + rec[1:]
write("depacketizer", "gst-mtu200-synth-faults", b"\x10" + faults)

# sps: every distinct SPS NAL unit in the test vectors.
seen = set()
for f in sorted(TESTDATA.glob("*.h264")) + sorted(gst.glob("*.h264")):
    for nal in nal_units(f.read_bytes()):
        if nal and nal[0] & 0x1F == 7 and nal not in seen:
            seen.add(nal)
            write("sps", f.stem, nal)


# rtcp_parse: compounds as a sender and a receiver emit them (RFC 3550 §6.1), built by hand.
def rtcp(pt, count, body, padding=b""):
    body = body + padding
    assert len(body) % 4 == 0
    b0 = 0x80 | (0x20 if padding else 0) | count
    return struct.pack(">BBH", b0, pt, (len(body) + 4) // 4 - 1) + body


def report_block(ssrc, lost=-3):
    return struct.pack(">IIIIII", ssrc, (25 << 24) | (lost & 0xFFFFFF), 0x0001FFFA, 42, 0x89ABCDEF, 0x00018000)


def sdes_cname(ssrc, cname):
    chunk = struct.pack(">I", ssrc) + bytes([1, len(cname)]) + cname + b"\x00"
    chunk += bytes(-len(chunk) % 4)
    return rtcp(202, 1, chunk)


sr = rtcp(200, 1, struct.pack(">IIIIII", 0x12345678, 0xE8A1B2C3, 0x40000000, 1000, 46, 6000) + report_block(0xCAFEBABE))
rr = rtcp(201, 2, struct.pack(">I", 0xCAFEBABE) + report_block(0x12345678) + report_block(0x11111111, lost=5))
pli = rtcp(206, 1, struct.pack(">II", 0xCAFEBABE, 0x12345678))
bye = rtcp(203, 1, struct.pack(">I", 0x12345678) + bytes([8]) + b"shutdown" + bytes(3))
write("rtcp_parse", "sr-sdes", sr + sdes_cname(0x12345678, b"camera-01@flowcloud"))
write("rtcp_parse", "rr-sdes-pli", rr + sdes_cname(0xCAFEBABE, b"worker") + pli)
write("rtcp_parse", "sr-bye-padded", sr + rtcp(203, 1, struct.pack(">I", 0x12345678), padding=b"\x00\x00\x00\x04"))
write("rtcp_parse", "rr-bye-reason", rr + bye)
write("rtcp_parse", "rtpfb-unknown", rr + rtcp(205, 1, struct.pack(">IIHH", 1, 2, 100, 0)))


# results: FCSG APP data (v1), and the same inside an RR + APP compound for rtcp_parse.
def varint(v):
    out = b""
    while v >= 0x80:
        out += bytes([(v & 0x7F) | 0x80])
        v >>= 7
    return out + bytes([v])


def fcsg(histogram, rle=None):
    flags = 1 if rle else 0
    d = struct.pack(">BBIIIIHHH", 1, flags, 0xFFFFF448, 1200, 8000, 350, 160, 120, len(histogram))
    d += b"".join(struct.pack(">I", h) for h in histogram)
    if rle:
        w, h, runs = rle
        r = b"".join(bytes([c]) + varint(n) for c, n in runs)
        d += struct.pack(">HHI", w, h, len(r)) + r
    return d + bytes(-len(d) % 4)


no_map = fcsg([19200 - 500, 500])
with_map = fcsg([100, 50, 10], (20, 8, [(0, 35), (1, 40), (2, 10), (0, 75)]))
wide_runs = fcsg([4096 * 2, 0], (128, 64, [(0, 200), (1, 7992)]))
write("results", "histogram-only", no_map)
write("results", "class-map", with_map)
write("results", "class-map-long-runs", wide_runs)
write("results", "no-histogram-map", fcsg([], (4, 4, [(7, 16)])))
app = rtcp(204, 0, struct.pack(">I", 0xCAFEBABE) + b"FCSG" + with_map)
write("rtcp_parse", "rr-app-fcsg", rr + app)
