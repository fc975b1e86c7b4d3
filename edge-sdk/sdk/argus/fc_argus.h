/*
 * The C ABI between FlowCloud's edge SDK (Rust, src/capture/argus.rs) and its libargus shim.
 *
 * libargus is a C++ API; this small C surface is what the SDK links against. Two
 * implementations exist:
 *   fc_argus_shim.cpp  the real one, over Argus (EGLStream FrameConsumer) and NvBufSurface, built
 *                      with the `argus` feature against the L4T Multimedia API;
 *   fc_argus_fake.c    a stand-in with the same contract, built with the `argus-fake` feature,
 *                      which the SDK's tests drive (libargus cannot be installed off a Jetson).
 *
 * Contract:
 *   - fc_argus_open starts capture from one sensor into `buffers` NV12 DMABUFs (pitch linear,
 *     Y then interleaved CbCr in one DMABUF), each mapped for reading.
 *   - fc_argus_acquire waits up to `timeout_ms` for the next frame and lends one buffer: its
 *     DMABUF fd and plane mappings stay valid until fc_argus_release(index) or fc_argus_close.
 *     The caller holds at most `buffers - 1` frames at once; with every buffer lent it returns
 *     FC_ARGUS_BUSY.
 *   - Every function but fc_argus_close returns an fc_argus_status; on failure the session's
 *     text is in fc_argus_error (fc_argus_open writes it to `error`). No function throws or
 *     aborts; none blocks longer than its timeout.
 *   - fc_argus_close stops capture, takes back lent buffers and frees everything; the fds and
 *     mappings handed out become invalid.
 */
#ifndef FC_ARGUS_H
#define FC_ARGUS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever a struct below changes; fc_argus_open refuses another version. */
#define FC_ARGUS_ABI_VERSION 1u
/* Most buffers a session has. */
#define FC_ARGUS_MAX_BUFFERS 16u

typedef enum fc_argus_status {
    FC_ARGUS_OK = 0,
    FC_ARGUS_TIMEOUT = 1,       /* no frame within the timeout; capture goes on */
    FC_ARGUS_NO_CAMERA = 2,     /* no sensor with that index, or the camera service is absent */
    FC_ARGUS_INVALID = 3,       /* bad argument: size, rate, buffer count, index, ABI version */
    FC_ARGUS_BUSY = 4,          /* every buffer is lent out: release one first */
    FC_ARGUS_FAILED = 5,        /* capture failed (sensor error, service gone); close the session */
} fc_argus_status;

typedef struct fc_argus_config {
    uint32_t abi_version;       /* FC_ARGUS_ABI_VERSION */
    uint32_t sensor_id;         /* index into Argus's camera devices */
    uint32_t sensor_mode;       /* index into the sensor's modes */
    uint32_t width;             /* even, > 0 */
    uint32_t height;            /* even, > 0 */
    uint32_t fps;               /* > 0 */
    uint32_t buffers;           /* 2..=FC_ARGUS_MAX_BUFFERS */
} fc_argus_config;

typedef struct fc_argus_frame {
    int32_t dmabuf_fd;          /* the NV12 DMABUF, owned by the session */
    uint32_t index;             /* give it back with fc_argus_release(index) */
    uint32_t width;
    uint32_t height;
    uint32_t pitch[2];          /* bytes per row of Y and of CbCr */
    uint32_t offset[2];         /* where Y and CbCr start in the DMABUF */
    uint64_t size;              /* bytes in the DMABUF */
    const uint8_t *plane[2];    /* Y and CbCr, mapped for reading */
    uint64_t sequence;          /* frame number from the sensor, from 0; a gap is a dropped frame */
    uint64_t timestamp_ns;      /* CLOCK_MONOTONIC when the frame was taken from Argus */
} fc_argus_frame;

typedef struct fc_argus_session fc_argus_session;

fc_argus_status fc_argus_open(const fc_argus_config *config, fc_argus_session **out,
                              char *error, size_t error_len);
fc_argus_status fc_argus_acquire(fc_argus_session *session, uint32_t timeout_ms,
                                 fc_argus_frame *out);
fc_argus_status fc_argus_release(fc_argus_session *session, uint32_t index);
const char *fc_argus_error(const fc_argus_session *session);
void fc_argus_close(fc_argus_session *session);

/* Fake only: make acquire fail with FC_ARGUS_FAILED after `frames` more frames. */
void fc_argus_fake_fail_after(fc_argus_session *session, uint32_t frames);
/* Fake only: buffers currently lent out and sessions currently open (teardown checks). */
uint32_t fc_argus_fake_lent(const fc_argus_session *session);
uint32_t fc_argus_fake_open_sessions(void);

#ifdef __cplusplus
}
#endif

#endif /* FC_ARGUS_H */
