/*
 * A stand-in for fc_argus_shim.cpp with the same C ABI (fc_argus.h), for tests off a Jetson.
 *
 * Sensor 0 exists (any other index is FC_ARGUS_NO_CAMERA). Each buffer is a memfd sized and laid
 * out as a pitch-linear NV12 NvBufSurface (pitch rounded up to 256 bytes, CbCr after the Y rows),
 * mapped read-write here and lent read-only; frames are paced at the configured rate and carry a
 * moving pattern whose first Y byte is the frame number (mod 256), so a test can tell frames
 * apart. A memfd is not a DMABUF: a V4L2 driver would refuse to import it.
 */
#define _GNU_SOURCE
#include "fc_argus.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* The layouts src/capture/argus.rs mirrors (LP64). */
_Static_assert(sizeof(fc_argus_config) == 28, "fc_argus_config layout");
_Static_assert(sizeof(fc_argus_frame) == 72, "fc_argus_frame layout");

struct fc_argus_session {
    fc_argus_config config;
    uint32_t pitch;
    uint64_t size;
    int fd[FC_ARGUS_MAX_BUFFERS];
    uint8_t *map[FC_ARGUS_MAX_BUFFERS];
    int lent[FC_ARGUS_MAX_BUFFERS];
    uint64_t sequence;
    uint32_t next; /* round robin: the buffer after the last one lent */
    uint64_t next_due_ns;
    int64_t fail_after; /* -1: never */
    char error[256];
};

/* Tests open sessions from several threads at once. */
static uint32_t open_sessions;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void set_error(char *dst, size_t len, const char *text) {
    if (dst != NULL && len > 0) {
        snprintf(dst, len, "%s", text);
    }
}

static void free_session(fc_argus_session *s) {
    for (uint32_t i = 0; i < FC_ARGUS_MAX_BUFFERS; i++) {
        if (s->map[i] != NULL) {
            munmap(s->map[i], s->size);
        }
        if (s->fd[i] >= 0) {
            close(s->fd[i]);
        }
    }
    free(s);
}

fc_argus_status fc_argus_open(const fc_argus_config *config, fc_argus_session **out,
                              char *error, size_t error_len) {
    if (config == NULL || out == NULL) {
        set_error(error, error_len, "config and out must not be NULL");
        return FC_ARGUS_INVALID;
    }
    *out = NULL;
    if (config->abi_version != FC_ARGUS_ABI_VERSION) {
        set_error(error, error_len, "fc_argus ABI version mismatch");
        return FC_ARGUS_INVALID;
    }
    if (config->width == 0 || config->height == 0 || config->width % 2 || config->height % 2 ||
        config->width > 8192 || config->height > 8192 || config->fps == 0 ||
        config->buffers < 2 || config->buffers > FC_ARGUS_MAX_BUFFERS) {
        set_error(error, error_len, "invalid size, rate or buffer count");
        return FC_ARGUS_INVALID;
    }
    if (config->sensor_id != 0) {
        char text[96];
        snprintf(text, sizeof text, "no camera device %u (the fake has one sensor, 0)",
                 config->sensor_id);
        set_error(error, error_len, text);
        return FC_ARGUS_NO_CAMERA;
    }
    fc_argus_session *s = calloc(1, sizeof *s);
    if (s == NULL) {
        set_error(error, error_len, "out of memory");
        return FC_ARGUS_FAILED;
    }
    s->config = *config;
    s->pitch = (config->width + 255u) & ~255u;
    s->size = (uint64_t)s->pitch * config->height * 3 / 2;
    s->fail_after = -1;
    for (uint32_t i = 0; i < FC_ARGUS_MAX_BUFFERS; i++) {
        s->fd[i] = -1;
    }
    for (uint32_t i = 0; i < config->buffers; i++) {
        s->fd[i] = memfd_create("fc-argus-fake", MFD_CLOEXEC);
        if (s->fd[i] < 0 || ftruncate(s->fd[i], (off_t)s->size) != 0) {
            set_error(error, error_len, strerror(errno));
            free_session(s);
            return FC_ARGUS_FAILED;
        }
        void *map = mmap(NULL, s->size, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd[i], 0);
        if (map == MAP_FAILED) {
            set_error(error, error_len, strerror(errno));
            free_session(s);
            return FC_ARGUS_FAILED;
        }
        s->map[i] = map;
    }
    s->next_due_ns = now_ns();
    __atomic_fetch_add(&open_sessions, 1, __ATOMIC_SEQ_CST);
    *out = s;
    return FC_ARGUS_OK;
}

static void paint(fc_argus_session *s, uint8_t *base) {
    const uint32_t w = s->config.width, h = s->config.height;
    const uint8_t n = (uint8_t)s->sequence;
    for (uint32_t y = 0; y < h; y++) {
        uint8_t *row = base + (size_t)y * s->pitch;
        for (uint32_t x = 0; x < w; x++) {
            row[x] = (uint8_t)(x + y + n);
        }
        row[0] = n;
    }
    uint8_t *uv = base + (size_t)s->pitch * h;
    for (uint32_t y = 0; y < h / 2; y++) {
        memset(uv + (size_t)y * s->pitch, 128 + (n & 15), w);
    }
    base[0] = n;
}

fc_argus_status fc_argus_acquire(fc_argus_session *s, uint32_t timeout_ms, fc_argus_frame *out) {
    if (s == NULL || out == NULL) {
        return FC_ARGUS_INVALID;
    }
    if (s->fail_after == 0) {
        snprintf(s->error, sizeof s->error, "sensor stopped streaming (injected by the fake)");
        return FC_ARGUS_FAILED;
    }
    uint32_t index = FC_ARGUS_MAX_BUFFERS;
    for (uint32_t k = 0; k < s->config.buffers; k++) {
        const uint32_t i = (s->next + k) % s->config.buffers;
        if (!s->lent[i]) {
            index = i;
            break;
        }
    }
    if (index == FC_ARGUS_MAX_BUFFERS) {
        snprintf(s->error, sizeof s->error, "all %u buffers are lent out", s->config.buffers);
        return FC_ARGUS_BUSY;
    }
    const uint64_t now = now_ns();
    if (s->next_due_ns > now) {
        const uint64_t wait = s->next_due_ns - now;
        if (wait > (uint64_t)timeout_ms * 1000000u) {
            struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000};
            nanosleep(&ts, NULL);
            snprintf(s->error, sizeof s->error, "no frame within %u ms", timeout_ms);
            return FC_ARGUS_TIMEOUT;
        }
        struct timespec ts = {(time_t)(wait / 1000000000u), (long)(wait % 1000000000u)};
        nanosleep(&ts, NULL);
    }
    s->next_due_ns += 1000000000u / s->config.fps;
    paint(s, s->map[index]);
    s->lent[index] = 1;
    s->next = (index + 1) % s->config.buffers;
    if (s->fail_after > 0) {
        s->fail_after--;
    }
    memset(out, 0, sizeof *out);
    out->dmabuf_fd = s->fd[index];
    out->index = index;
    out->width = s->config.width;
    out->height = s->config.height;
    out->pitch[0] = out->pitch[1] = s->pitch;
    out->offset[0] = 0;
    out->offset[1] = s->pitch * s->config.height;
    out->size = s->size;
    out->plane[0] = s->map[index];
    out->plane[1] = s->map[index] + out->offset[1];
    out->sequence = s->sequence++;
    out->timestamp_ns = now_ns();
    return FC_ARGUS_OK;
}

fc_argus_status fc_argus_release(fc_argus_session *s, uint32_t index) {
    if (s == NULL || index >= s->config.buffers || !s->lent[index]) {
        if (s != NULL) {
            snprintf(s->error, sizeof s->error, "buffer %u is not lent out", index);
        }
        return FC_ARGUS_INVALID;
    }
    s->lent[index] = 0;
    return FC_ARGUS_OK;
}

const char *fc_argus_error(const fc_argus_session *s) {
    return s == NULL ? "no session" : s->error;
}

void fc_argus_close(fc_argus_session *s) {
    if (s != NULL) {
        free_session(s);
        __atomic_fetch_sub(&open_sessions, 1, __ATOMIC_SEQ_CST);
    }
}

void fc_argus_fake_fail_after(fc_argus_session *s, uint32_t frames) {
    if (s != NULL) {
        s->fail_after = frames;
    }
}

uint32_t fc_argus_fake_lent(const fc_argus_session *s) {
    uint32_t lent = 0;
    for (uint32_t i = 0; s != NULL && i < s->config.buffers; i++) {
        lent += (uint32_t)s->lent[i];
    }
    return lent;
}

uint32_t fc_argus_fake_open_sessions(void) {
    return __atomic_load_n(&open_sessions, __ATOMIC_SEQ_CST);
}
