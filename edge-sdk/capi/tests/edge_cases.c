/*
 * The C ABI's error paths, from C: NULL handles and buffers, malformed and oversized access
 * units, bad configs, calls after stop, double free. Run by tests/capi.sh, plain and under
 * AddressSanitizer (with LeakSanitizer): every call must return its documented code and
 * nothing may crash or leak. The sender points at a port nobody listens on; it keeps
 * retrying in the background, which is part of what is checked.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flowcloud_edge.h"

static int passed, failed;

#define CHECK_EQ(call, expected)                                                            \
    do {                                                                                    \
        fc_result got_ = (call);                                                            \
        if (got_ == (expected)) {                                                           \
            passed++;                                                                       \
        } else {                                                                            \
            failed++;                                                                       \
            fprintf(stderr, "%s:%d: %s returned %s (%d), expected %s\n", __FILE__, __LINE__, \
                    #call, fc_result_str(got_), (int)got_, fc_result_str(expected));        \
        }                                                                                   \
    } while (0)

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (cond) {                                                                  \
            passed++;                                                                \
        } else {                                                                     \
            failed++;                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

/* SPS, PPS and an IDR slice: small but well-formed Annex-B (the sender does not decode). */
static const uint8_t IDR[] = {0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x0d, 0, 0, 0, 1, 0x68, 0xce,
                              0x3c, 0x80, 0, 0, 0, 1, 0x65, 0x88, 0x84, 0x00};
/* A non-IDR slice. */
static const uint8_t P_SLICE[] = {0, 0, 0, 1, 0x41, 0x9a, 0x00, 0x10};

int main(void) {
    /* Result codes start at 9000 and all have names. */
    CHECK(FC_RESULT_OK == 9000);
    CHECK(strcmp(fc_result_str(FC_RESULT_OK), "ok") == 0);
    CHECK(strcmp(fc_result_str(12345), "unknown result code") == 0);
    CHECK(strcmp(fc_result_str(-1), "unknown result code") == 0);
    CHECK(fc_version() != NULL && strlen(fc_version()) > 0);

    /* Defaults. */
    CHECK_EQ(fc_sender_config_default(NULL), FC_RESULT_NULL_ARGUMENT);
    CHECK_EQ(fc_camera_config_default(NULL), FC_RESULT_NULL_ARGUMENT);
    fc_sender_config config;
    CHECK_EQ(fc_sender_config_default(&config), FC_RESULT_OK);
    CHECK(strcmp(config.server, "127.0.0.1:5004") == 0);

    /* Creating: NULL arguments, bad configs; *out is NULL after a failure. */
    fc_sender *sender = (fc_sender *)&passed;
    CHECK_EQ(fc_sender_new(NULL, &sender), FC_RESULT_NULL_ARGUMENT);
    CHECK(sender == NULL);
    CHECK_EQ(fc_sender_new(&config, NULL), FC_RESULT_NULL_ARGUMENT);
    fc_sender_config bad = config;
    bad.server = "no-port-here";
    CHECK_EQ(fc_sender_new(&bad, &sender), FC_RESULT_ADDRESS_UNRESOLVED);
    bad = config;
    bad.cname = "";
    CHECK_EQ(fc_sender_new(&bad, &sender), FC_RESULT_INVALID_CONFIG);
    bad = config;
    bad.handoff_slots = 0;
    CHECK_EQ(fc_sender_new(&bad, &sender), FC_RESULT_INVALID_CONFIG);
    bad = config;
    bad.server = NULL;
    CHECK_EQ(fc_sender_new(&bad, &sender), FC_RESULT_NULL_ARGUMENT);

    /* NULL and never-created handles. */
    fc_stats stats;
    bool requested = false;
    fc_sender *bogus = (fc_sender *)(uintptr_t)0x7ff0;
    CHECK_EQ(fc_sender_push_au(NULL, IDR, sizeof IDR, 0, true), FC_RESULT_NULL_ARGUMENT);
    CHECK_EQ(fc_sender_push_au(bogus, IDR, sizeof IDR, 0, true), FC_RESULT_INVALID_HANDLE);
    CHECK_EQ(fc_sender_stats(NULL, &stats), FC_RESULT_NULL_ARGUMENT);
    CHECK_EQ(fc_sender_stats(bogus, &stats), FC_RESULT_INVALID_HANDLE);
    CHECK_EQ(fc_sender_take_keyframe_request(NULL, &requested), FC_RESULT_NULL_ARGUMENT);
    CHECK_EQ(fc_sender_stop(NULL), FC_RESULT_NULL_ARGUMENT);
    CHECK_EQ(fc_sender_stop(bogus), FC_RESULT_INVALID_HANDLE);
    CHECK_EQ(fc_sender_free(NULL), FC_RESULT_OK);
    CHECK_EQ(fc_sender_free(bogus), FC_RESULT_INVALID_HANDLE);

    /* A live sender (nobody listens on port 9 of loopback: it keeps retrying). */
    config.server = "127.0.0.1:9";
    config.cname = "edge-cases";
    config.max_access_unit_bytes = 1024;
    CHECK_EQ(fc_sender_new(&config, &sender), FC_RESULT_OK);
    CHECK(sender != NULL);

    /* Buffers: NULL, empty, oversized, not Annex-B, wrong keyframe flag. */
    static uint8_t big[1025];
    CHECK_EQ(fc_sender_push_au(sender, NULL, 10, 0, false), FC_RESULT_NULL_ARGUMENT);
    CHECK_EQ(fc_sender_push_au(sender, IDR, 0, 0, true), FC_RESULT_EMPTY_ACCESS_UNIT);
    CHECK_EQ(fc_sender_push_au(sender, big, sizeof big, 0, false),
             FC_RESULT_ACCESS_UNIT_TOO_LARGE);
    static const uint8_t garbage[] = "definitely not H.264";
    CHECK_EQ(fc_sender_push_au(sender, garbage, sizeof garbage, 0, false),
             FC_RESULT_INVALID_ACCESS_UNIT);
    CHECK_EQ(fc_sender_push_au(sender, IDR, sizeof IDR, 0, false), FC_RESULT_KEYFRAME_MISMATCH);
    CHECK_EQ(fc_sender_push_au(sender, P_SLICE, sizeof P_SLICE, 0, true),
             FC_RESULT_KEYFRAME_MISMATCH);
    /* Well-formed frames are taken (and dropped on the I/O thread: not connected). */
    CHECK_EQ(fc_sender_push_au(sender, IDR, sizeof IDR, 0, true), FC_RESULT_OK);
    CHECK_EQ(fc_sender_stats(sender, NULL), FC_RESULT_NULL_ARGUMENT);
    CHECK_EQ(fc_sender_take_keyframe_request(sender, NULL), FC_RESULT_NULL_ARGUMENT);
    CHECK_EQ(fc_sender_take_keyframe_request(sender, &requested), FC_RESULT_OK);
    CHECK_EQ(fc_sender_start_camera(sender, NULL), FC_RESULT_NULL_ARGUMENT);
    fc_camera_config camera;
    CHECK_EQ(fc_camera_config_default(&camera), FC_RESULT_OK);
    camera.source = "no-such-source";
    CHECK_EQ(fc_sender_start_camera(sender, &camera), FC_RESULT_UNSUPPORTED);

    /* Stop: later calls say so; stats still answer. */
    CHECK_EQ(fc_sender_stop(sender), FC_RESULT_OK);
    CHECK_EQ(fc_sender_stop(sender), FC_RESULT_STOPPED);
    CHECK_EQ(fc_sender_push_au(sender, IDR, sizeof IDR, 0, true), FC_RESULT_STOPPED);
    CHECK_EQ(fc_sender_take_keyframe_request(sender, &requested), FC_RESULT_STOPPED);
    camera.source = "pattern";
    CHECK_EQ(fc_sender_start_camera(sender, &camera), FC_RESULT_STOPPED);
    CHECK_EQ(fc_sender_stats(sender, &stats), FC_RESULT_OK);
    CHECK(stats.frames_pushed == 1 && stats.frames_dropped == 1 && !stats.connected);

    /* Free, then the handle is dead for good. */
    CHECK_EQ(fc_sender_free(sender), FC_RESULT_OK);
    CHECK_EQ(fc_sender_free(sender), FC_RESULT_INVALID_HANDLE);
    CHECK_EQ(fc_sender_push_au(sender, IDR, sizeof IDR, 0, true), FC_RESULT_INVALID_HANDLE);
    CHECK_EQ(fc_sender_stats(sender, &stats), FC_RESULT_INVALID_HANDLE);

    /* Free without stop. */
    fc_sender *other = NULL;
    CHECK_EQ(fc_sender_new(&config, &other), FC_RESULT_OK);
    CHECK(other != sender);
    CHECK_EQ(fc_sender_free(other), FC_RESULT_OK);

    printf("edge_cases: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
