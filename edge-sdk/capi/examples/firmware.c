/*
 * firmware.c: a camera firmware's streaming loop on the FlowCloud edge SDK's C ABI.
 *
 * Push mode stands in for firmware that drives its own encoder (NVENC, libargus with the
 * Jetson encoder): it reads an Annex-B H.264 file, splits it into access units, and pushes
 * them at the given frame rate with CLOCK_MONOTONIC capture timestamps, as an encoder's
 * output callback would. Camera mode lets the SDK capture and encode instead.
 *
 *   firmware [options] SERVER FILE.h264 FPS        push the file's access units
 *   firmware [options] SERVER camera:SOURCE FPS    the SDK's camera: camera:pattern,
 *                                                  camera:y4m:PATH, camera:v4l2:/dev/video0
 * options:
 *   --cname NAME        camera identity (default "firmware-example")
 *   --frames N          stop after N frames (default: the whole file; 150 in camera mode)
 *   --loop              start the file again at its end (until --frames or Ctrl-C)
 *   --size WxH          camera mode picture size (default 640x360)
 *   --encoder NAME      camera mode encoder (default openh264)
 *   --wait-results MS   after the last frame, wait this long for results (default 2000)
 *
 * Prints one line per result (RTP timestamp, latency and its split, top class) and the final
 * statistics. Ctrl-C (SIGINT) or SIGTERM stops it cleanly: the last results are waited for,
 * the sender is flushed and freed. Exit status 0 unless a call failed.
 *
 * Build: cc -std=c11 firmware.c $(pkg-config --cflags --libs --static flowcloud_edge)
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flowcloud_edge.h"

/* The 19 Cityscapes train classes, in train-id order. */
static const char *const CLASS_NAMES[] = {
    "road",  "sidewalk", "building", "wall",    "fence",      "pole",  "traffic light",
    "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car",
    "truck", "bus",      "train",    "motorcycle", "bicycle",
};
#define CLASS_NAME_COUNT (sizeof CLASS_NAMES / sizeof CLASS_NAMES[0])

static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

/* What the callbacks share with the main loop (passed as userdata). */
struct app {
    atomic_uint_fast64_t results;
    atomic_uint_fast64_t keyframe_events;
};

static double ms(uint32_t us) { return us / 1000.0; }

static void on_result(void *userdata, const fc_frame_result *r) {
    struct app *app = userdata;
    atomic_fetch_add(&app->results, 1);
    const char *name = "?";
    double share = 0.0;
    if (r->top_class >= 0) {
        if ((size_t)r->top_class < CLASS_NAME_COUNT) name = CLASS_NAMES[r->top_class];
        double pixels = (double)r->map_width * (double)r->map_height;
        if (pixels > 0) share = 100.0 * r->top_class_pixels / pixels;
    }
    if (r->matched) {
        printf("result rtp=%u latency=%.1f ms (encode %.1f, queue %.1f, network %.1f, "
               "worker %.1f) top class %d (%s) %.0f%%\n",
               r->rtp_timestamp, ms(r->latency_us), ms(r->encode_us), ms(r->send_queue_us),
               ms(r->network_us), ms(r->worker_us), r->top_class, name, share);
    } else {
        printf("result rtp=%u (frame no longer known) top class %d (%s) %.0f%%\n",
               r->rtp_timestamp, r->top_class, name, share);
    }
}

static const char *keyframe_cause(fc_keyframe_cause cause) {
    switch (cause) {
    case FC_KEYFRAME_CAUSE_CONNECTED: return "new connection";
    case FC_KEYFRAME_CAUSE_PICTURE_LOSS: return "picture loss";
    case FC_KEYFRAME_CAUSE_CONGESTION: return "congestion";
    default: return "?";
    }
}

static void on_event(void *userdata, const fc_event *e) {
    struct app *app = userdata;
    switch (e->kind) {
    case FC_EVENT_KIND_CONNECTED:
        printf("event: connected\n");
        break;
    case FC_EVENT_KIND_CONNECT_FAILED:
        printf("event: connect failed, retrying in %u ms\n", e->retry_in_ms);
        break;
    case FC_EVENT_KIND_DISCONNECTED:
        printf("event: disconnected, %u queued frames lost, retrying in %u ms\n",
               e->frames_lost, e->retry_in_ms);
        break;
    case FC_EVENT_KIND_KEYFRAME_REQUESTED:
        atomic_fetch_add(&app->keyframe_events, 1);
        printf("event: keyframe requested (%s)\n", keyframe_cause(e->keyframe_cause));
        break;
    case FC_EVENT_KIND_CAMERA_STOPPED:
        printf("event: camera stopped (%s)\n", fc_result_str(e->camera_result));
        break;
    case FC_EVENT_KIND_ROUND_TRIP: /* one per second: shown in the final statistics */
    default:
        break;
    }
}

/* One access unit of the file. */
struct access_unit {
    size_t offset;
    size_t len;
    bool keyframe;
};

/* Offset of the next 00 00 01 at or after `from`, or `len`. */
static size_t find_start_code(const uint8_t *data, size_t len, size_t from) {
    for (size_t i = from; i + 2 < len; i++) {
        if (data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1) return i;
    }
    return len;
}

/*
 * Splits an Annex-B stream into access units (H.264 7.4.1.2.3): a new one begins at an
 * access unit delimiter, SEI, SPS or PPS that follows a slice, or at a slice whose
 * first_mb_in_slice is 0 (its first bit is 1) that follows a slice. Each unit runs from its
 * first start code (with leading zero bytes) to the next unit's. Returns the count, or -1 on
 * allocation failure; `*out` is malloc'd.
 */
static long split_access_units(const uint8_t *data, size_t len, struct access_unit **out) {
    size_t capacity = 64, count = 0;
    struct access_unit *units = malloc(capacity * sizeof *units);
    if (units == NULL) return -1;
    bool seen_slice = false;
    size_t sc = find_start_code(data, len, 0);
    while (sc < len) {
        size_t nal = sc + 3;
        size_t next = find_start_code(data, len, nal);
        if (nal >= len) break;
        int type = data[nal] & 0x1f;
        bool slice = type == 1 || type == 5;
        bool first_mb_zero = nal + 1 < len && (data[nal + 1] & 0x80);
        bool starts_unit = count == 0 || (seen_slice && (type == 9 || type == 6 || type == 7 ||
                                                          type == 8 || (slice && first_mb_zero)));
        if (starts_unit) {
            if (count == capacity) {
                capacity *= 2;
                struct access_unit *grown = realloc(units, capacity * sizeof *units);
                if (grown == NULL) {
                    free(units);
                    return -1;
                }
                units = grown;
            }
            size_t begin = sc;
            while (begin > 0 && data[begin - 1] == 0) begin--;
            if (count > 0) units[count - 1].len = begin - units[count - 1].offset;
            units[count++] = (struct access_unit){.offset = begin, .len = 0, .keyframe = false};
            seen_slice = false;
        }
        if (type == 5) units[count - 1].keyframe = true;
        seen_slice = seen_slice || slice;
        sc = next;
    }
    if (count > 0) units[count - 1].len = len - units[count - 1].offset;
    *out = units;
    return (long)count;
}

/* Reads a whole file into a malloc'd buffer. */
static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NULL;
    size_t capacity = 1 << 20, used = 0;
    uint8_t *buf = malloc(capacity);
    while (buf != NULL) {
        used += fread(buf + used, 1, capacity - used, f);
        if (used < capacity) break;
        capacity *= 2;
        uint8_t *grown = realloc(buf, capacity);
        if (grown == NULL) free(buf);
        buf = grown;
    }
    bool failed = ferror(f);
    fclose(f);
    if (failed) {
        free(buf);
        return NULL;
    }
    *len = used;
    return buf;
}

static uint64_t timespec_ns(const struct timespec *ts) {
    return (uint64_t)ts->tv_sec * 1000000000u + (uint64_t)ts->tv_nsec;
}

static uint64_t monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return timespec_ns(&ts);
}

/* Sleeps until `deadline_ns` (CLOCK_MONOTONIC); returns early on a stop signal. */
static void sleep_until(uint64_t deadline_ns) {
    struct timespec ts = {.tv_sec = (time_t)(deadline_ns / 1000000000u),
                          .tv_nsec = (long)(deadline_ns % 1000000000u)};
    while (!stop_requested &&
           clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static bool get_stats(fc_sender *sender, fc_stats *out) {
    fc_result r = fc_sender_stats(sender, out);
    if (r != FC_RESULT_OK) {
        fprintf(stderr, "firmware: fc_sender_stats: %s\n", fc_result_str(r));
        return false;
    }
    return true;
}

/* Waits (up to `timeout_ms`) until `connected`; false on timeout or a stop signal. */
static bool wait_connected(fc_sender *sender, int timeout_ms) {
    uint64_t deadline = monotonic_ns() + (uint64_t)timeout_ms * 1000000u;
    fc_stats s;
    while (!stop_requested && monotonic_ns() < deadline) {
        if (!get_stats(sender, &s)) return false;
        if (s.connected) return true;
        sleep_until(monotonic_ns() + 10000000u);
    }
    return false;
}

struct options {
    const char *server;
    const char *input;
    unsigned fps;
    const char *cname;
    long frames;
    bool loop;
    unsigned width, height;
    const char *encoder;
    unsigned wait_results_ms;
};

static int usage(void) {
    fprintf(stderr,
            "usage: firmware [--cname NAME] [--frames N] [--loop] [--size WxH] [--encoder NAME]\n"
            "                [--wait-results MS] SERVER (FILE.h264 | camera:SOURCE) FPS\n");
    return 2;
}

static bool parse_options(int argc, char **argv, struct options *o) {
    *o = (struct options){.cname = "firmware-example", .frames = -1, .width = 640,
                          .height = 360, .encoder = "openh264", .wait_results_ms = 2000};
    const char *positional[3];
    int n = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        if (strcmp(a, "--loop") == 0) {
            o->loop = true;
        } else if (strcmp(a, "--cname") == 0 && has_value) {
            o->cname = argv[++i];
        } else if (strcmp(a, "--frames") == 0 && has_value) {
            o->frames = strtol(argv[++i], NULL, 10);
        } else if (strcmp(a, "--size") == 0 && has_value) {
            if (sscanf(argv[++i], "%ux%u", &o->width, &o->height) != 2) return false;
        } else if (strcmp(a, "--encoder") == 0 && has_value) {
            o->encoder = argv[++i];
        } else if (strcmp(a, "--wait-results") == 0 && has_value) {
            o->wait_results_ms = (unsigned)strtoul(argv[++i], NULL, 10);
        } else if (a[0] == '-' && a[1] == '-') {
            return false;
        } else if (n < 3) {
            positional[n++] = a;
        } else {
            return false;
        }
    }
    if (n != 3) return false;
    o->server = positional[0];
    o->input = positional[1];
    o->fps = (unsigned)strtoul(positional[2], NULL, 10);
    return o->fps > 0 && o->fps <= 1000;
}

/* Pushes the file's access units at `fps`; returns false if a call failed. */
static bool push_file(fc_sender *sender, const struct options *o) {
    size_t len = 0;
    uint8_t *data = read_file(o->input, &len);
    if (data == NULL) {
        fprintf(stderr, "firmware: cannot read %s\n", o->input);
        return false;
    }
    struct access_unit *units = NULL;
    long count = split_access_units(data, len, &units);
    if (count <= 0) {
        fprintf(stderr, "firmware: %s holds no H.264 access units\n", o->input);
        free(data);
        free(units);
        return false;
    }
    long keyframes = 0;
    for (long i = 0; i < count; i++) keyframes += units[i].keyframe;
    printf("firmware: %s: %ld access units (%ld IDR), %zu bytes, pushing at %u fps\n", o->input,
           count, keyframes, len, o->fps);

    bool ok = true;
    uint64_t interval_ns = 1000000000u / o->fps;
    uint64_t start = monotonic_ns();
    long limit = o->frames >= 0 ? o->frames : (o->loop ? -1 : count);
    for (long n = 0; !stop_requested && (limit < 0 || n < limit); n++) {
        const struct access_unit *au = &units[n % count];
        if (n > 0 && n % count == 0 && !o->loop) break;
        /* The encoder delivers frame n at its capture time; this loop plays both parts. */
        uint64_t captured = start + (uint64_t)n * interval_ns;
        sleep_until(captured);
        if (stop_requested) break;
        bool requested = false;
        fc_result r = fc_sender_take_keyframe_request(sender, &requested);
        if (r != FC_RESULT_OK) {
            fprintf(stderr, "firmware: fc_sender_take_keyframe_request: %s\n", fc_result_str(r));
            ok = false;
            break;
        }
        if (requested && !au->keyframe) {
            /* A live encoder would force an IDR now; a file can only continue to its next. */
            long ahead = 1;
            while (ahead < count && !units[(n + ahead) % count].keyframe) ahead++;
            printf("firmware: keyframe requested; the file's next IDR is %ld frames ahead\n",
                   ahead);
        }
        /* FC_RESULT_DROPPED is not an error: the sender counts it and asks for an IDR. */
        r = fc_sender_push_au(sender, data + au->offset, au->len, captured, au->keyframe);
        if (r != FC_RESULT_OK && r != FC_RESULT_DROPPED) {
            fprintf(stderr, "firmware: fc_sender_push_au (frame %ld): %s\n", n, fc_result_str(r));
            ok = false;
            break;
        }
    }
    free(units);
    free(data);
    return ok;
}

/* Runs the SDK's camera until it ends, `--frames`, or a stop signal. */
static bool run_camera(fc_sender *sender, const struct options *o) {
    fc_camera_config camera;
    fc_camera_config_default(&camera);
    camera.source = o->input + strlen("camera:");
    camera.encoder = o->encoder;
    camera.width = o->width;
    camera.height = o->height;
    camera.fps = o->fps;
    camera.bitrate_bps = 1000000;
    fc_result r = fc_sender_start_camera(sender, &camera);
    if (r != FC_RESULT_OK) {
        fprintf(stderr, "firmware: fc_sender_start_camera(%s, %s): %s\n", camera.source,
                camera.encoder, fc_result_str(r));
        return false;
    }
    printf("firmware: camera %s, encoder %s, %ux%u at %u fps\n", camera.source, camera.encoder,
           camera.width, camera.height, camera.fps);
    uint64_t limit = o->frames >= 0 ? (uint64_t)o->frames : 150;
    fc_stats s = {.camera_result = FC_RESULT_OK};
    while (!stop_requested) {
        if (!get_stats(sender, &s)) return false;
        if (!s.camera_running || s.camera_frames >= limit) break;
        sleep_until(monotonic_ns() + 5000000u);
    }
    return s.camera_result == FC_RESULT_OK;
}

int main(int argc, char **argv) {
    struct options o;
    if (!parse_options(argc, argv, &o)) return usage();
    setvbuf(stdout, NULL, _IOLBF, 0);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    struct app app;
    atomic_init(&app.results, 0);
    atomic_init(&app.keyframe_events, 0);
    fc_sender_config config;
    fc_sender_config_default(&config);
    config.server = o.server;
    config.cname = o.cname;
    config.on_result = on_result;
    config.on_event = on_event;
    config.userdata = &app;
    config.max_access_unit_bytes = 2u << 20;

    fc_sender *sender = NULL;
    fc_result r = fc_sender_new(&config, &sender);
    if (r != FC_RESULT_OK) {
        fprintf(stderr, "firmware: fc_sender_new(%s): %s\n", o.server, fc_result_str(r));
        return 1;
    }
    printf("firmware: libflowcloud_edge %s, streaming to %s as %s\n", fc_version(), o.server,
           o.cname);
    /* Frames before the connection would be dropped: wait for it (a camera would start
     * streaming anyway and let the SDK drop until connected). */
    if (!wait_connected(sender, 5000)) {
        fprintf(stderr, "firmware: no connection to %s within 5 s\n", o.server);
        fc_sender_free(sender);
        return 1;
    }

    bool camera_mode = strncmp(o.input, "camera:", strlen("camera:")) == 0;
    bool ok = camera_mode ? run_camera(sender, &o) : push_file(sender, &o);
    if (stop_requested) printf("firmware: interrupted, shutting down\n");

    /* The last results are still on their way: wait briefly (a second signal cuts it short).
     * Every frame the sender took ends as a result or as a drop it counted. */
    stop_requested = 0;
    fc_stats s;
    uint64_t deadline = monotonic_ns() + (uint64_t)o.wait_results_ms * 1000000u;
    while (!stop_requested && monotonic_ns() < deadline && get_stats(sender, &s)) {
        if (s.results + (s.frames_dropped - s.dropped_handoff) >= s.frames_pushed) break;
        sleep_until(monotonic_ns() + 10000000u);
    }

    r = fc_sender_stop(sender);
    if (r != FC_RESULT_OK) {
        fprintf(stderr, "firmware: fc_sender_stop: %s\n", fc_result_str(r));
        ok = false;
    }
    if (get_stats(sender, &s)) {
        printf("firmware: %llu frames pushed, %llu sent, %llu dropped, %llu results, "
               "%llu keyframe requests, %llu reconnects\n",
               (unsigned long long)s.frames_pushed, (unsigned long long)s.frames_sent,
               (unsigned long long)s.frames_dropped, (unsigned long long)s.results,
               (unsigned long long)s.keyframe_requests, (unsigned long long)s.reconnects);
        printf("firmware: rtt %.2f ms, capture->result p50 %.1f ms p99 %.1f ms over %u results, "
               "%llu bytes sent\n",
               s.rtt_valid ? s.rtt_us / 1000.0 : 0.0, ms(s.latency_p50_us), ms(s.latency_p99_us),
               s.latency_samples, (unsigned long long)s.bytes_sent);
    }
    r = fc_sender_free(sender);
    if (r != FC_RESULT_OK) {
        fprintf(stderr, "firmware: fc_sender_free: %s\n", fc_result_str(r));
        ok = false;
    }
    return ok ? 0 : 1;
}
