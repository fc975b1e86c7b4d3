// The libargus shim: fc_argus.h over NVIDIA's Argus camera API and NvBufSurface.
//
// Built only with the SDK's `argus` feature, for aarch64, against the L4T Multimedia API
// (FLOWCLOUD_L4T_ROOT; the cross image unpacks it to /opt/l4t). It has not been compiled against
// L4T or run: no L4T headers or Jetson are available here; the SDK's tests run the same C ABI
// against fc_argus_fake.c.
// API facts checked against public copies of Argus/{Types,CameraProvider,CameraDevice,
// CaptureSession,Request,Settings,EGLStream}.h and EGLStream/{FrameConsumer,Frame,Image,
// NV/ImageNativeBuffer}.h of L4T r32 (JetPack 4; JetPack 5/6 code calls the same signatures) and
// nvbufsurface.h (2019-2023 revision, as in L4T r35.4). Needs L4T r35+ (JetPack 5/6): on r32
// copyToNvBuffer fills an nvbuf_utils NvBuffer and there is no nvbufsurface.h.
//
// One capture session with one EGLStream output and a FrameConsumer; each acquired frame is
// copied by the hardware (IImageNativeBuffer::copyToNvBuffer) into one of our pitch-linear NV12
// NvBufSurface DMABUFs, which the encoder can import and the CPU reads through a mapping.
//
// No C++ exception crosses into Rust: every call into Argus sits under a catch-all, and error text
// lives in a fixed buffer so that reporting an error cannot itself throw.

#include "fc_argus.h"

#include <Argus/Argus.h>
#include <EGLStream/EGLStream.h>
#include <EGLStream/NV/ImageNativeBuffer.h>
#include <nvbufsurface.h>

#include <pthread.h>
#include <time.h>

#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <vector>

namespace {

// Bounds the wait for in-flight captures at close (Argus timeouts are in nanoseconds).
const uint64_t kIdleTimeoutNs = 2000000000ull;
// Pause before asking again when the stream hands back a frame already seen.
const uint64_t kRepeatPauseNs = 1000000ull;

// CameraProvider::create hands every caller the same process-wide provider, so one session
// destroying it would pull it from under the others: count the sessions using it.
pthread_mutex_t provider_lock = PTHREAD_MUTEX_INITIALIZER;
Argus::CameraProvider *provider_object = nullptr;
unsigned provider_users = 0;

// Unlocks on every way out, exceptions included.
struct ProviderLock {
    ProviderLock() { pthread_mutex_lock(&provider_lock); }
    ~ProviderLock() { pthread_mutex_unlock(&provider_lock); }
    ProviderLock(const ProviderLock &) = delete;
    ProviderLock &operator=(const ProviderLock &) = delete;
};

Argus::CameraProvider *provider_acquire() {
    ProviderLock lock;
    if (provider_object == nullptr) {
        provider_object = Argus::CameraProvider::create();
    }
    if (provider_object != nullptr) {
        provider_users++;
    }
    return provider_object;
}

void provider_release() {
    ProviderLock lock;
    if (provider_users > 0 && --provider_users == 0 && provider_object != nullptr) {
        provider_object->destroy();
        provider_object = nullptr;
    }
}

uint64_t now_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

void sleep_ns(uint64_t ns) {
    timespec ts{};
    ts.tv_sec = time_t(ns / 1000000000u);
    ts.tv_nsec = long(ns % 1000000000u);
    nanosleep(&ts, nullptr);
}

}  // namespace

struct fc_argus_session {
    fc_argus_config config{};
    Argus::CameraProvider *provider = nullptr;  // counted in provider_users while set
    Argus::UniqueObj<Argus::CaptureSession> session;
    Argus::UniqueObj<Argus::OutputStream> stream;
    Argus::UniqueObj<EGLStream::FrameConsumer> consumer;
    Argus::UniqueObj<Argus::Request> request;
    NvBufSurface *surface[FC_ARGUS_MAX_BUFFERS];
    int fd[FC_ARGUS_MAX_BUFFERS];
    bool lent[FC_ARGUS_MAX_BUFFERS];
    unsigned next = 0;  // round robin: the buffer after the last one lent
    // Argus numbers frames its own way; the ABI counts from the first frame delivered.
    bool numbered = false;
    uint64_t first_number = 0;
    uint64_t last_number = 0;
    char error[256];

    fc_argus_session() {
        for (unsigned i = 0; i < FC_ARGUS_MAX_BUFFERS; i++) {
            surface[i] = nullptr;
            fd[i] = -1;
            lent[i] = false;
        }
        error[0] = '\0';
    }

    ~fc_argus_session() {
        // Teardown goes on whatever Argus throws: close has nobody to report to.
        try {
            Argus::ICaptureSession *capture =
                Argus::interface_cast<Argus::ICaptureSession>(session);
            if (capture != nullptr) {
                capture->stopRepeat();
                capture->waitForIdle(kIdleTimeoutNs);
            }
        } catch (...) {
        }
        // Argus objects go before the provider that made them; the consumer goes before its
        // stream (destroying it disconnects the EGLStream), the stream before its session.
        try {
            request.reset();
            consumer.reset();
            stream.reset();
            session.reset();
            if (provider != nullptr) {
                provider_release();
            }
        } catch (...) {
        }
        for (unsigned i = 0; i < FC_ARGUS_MAX_BUFFERS; i++) {
            if (surface[i] != nullptr) {
                NvBufSurfaceUnMap(surface[i], 0, -1);
                NvBufSurfaceDestroy(surface[i]);
            }
        }
    }

    __attribute__((format(printf, 2, 3))) void set_error(const char *format, ...) {
        va_list args;
        va_start(args, format);
        std::vsnprintf(error, sizeof error, format, args);
        va_end(args);
    }
};

namespace {

void copy_error(char *dst, size_t len, const char *text) {
    if (dst != nullptr && len > 0) {
        std::snprintf(dst, len, "%s", text);
    }
}

// Allocates a pitch-linear NV12 DMABUF of the session's size and maps both planes for reading.
bool allocate(fc_argus_session &s, unsigned i) {
    NvBufSurfaceCreateParams params;
    std::memset(&params, 0, sizeof params);
    params.gpuId = 0;
    params.width = s.config.width;
    params.height = s.config.height;
    params.colorFormat = NVBUF_COLOR_FORMAT_NV12;
    params.layout = NVBUF_LAYOUT_PITCH;
    params.memType = NVBUF_MEM_SURFACE_ARRAY;
    NvBufSurface *surface = nullptr;
    if (NvBufSurfaceCreate(&surface, 1, &params) != 0 || surface == nullptr) {
        s.set_error("NvBufSurfaceCreate (%ux%u NV12) failed", s.config.width, s.config.height);
        return false;
    }
    s.surface[i] = surface;
    surface->numFilled = 1;
    const NvBufSurfaceParams &buffer = surface->surfaceList[0];
    if (buffer.planeParams.num_planes != 2) {
        s.set_error("NvBufSurface NV12 buffer has %u planes, not 2", buffer.planeParams.num_planes);
        return false;
    }
    // For NVBUF_MEM_SURFACE_ARRAY memory bufferDesc is the DMABUF fd; the surface owns it.
    s.fd[i] = int(buffer.bufferDesc);
    if (NvBufSurfaceMap(surface, 0, -1, NVBUF_MAP_READ) != 0) {
        s.set_error("NvBufSurfaceMap failed");
        return false;
    }
    return true;
}

fc_argus_status open_session(const fc_argus_config &config, fc_argus_session &s) {
    s.config = config;
    s.provider = provider_acquire();
    Argus::ICameraProvider *provider = Argus::interface_cast<Argus::ICameraProvider>(s.provider);
    if (provider == nullptr) {
        s.set_error("cannot create the Argus camera provider (is nvargus-daemon running?)");
        return FC_ARGUS_NO_CAMERA;
    }
    std::vector<Argus::CameraDevice *> devices;
    if (provider->getCameraDevices(&devices) != Argus::STATUS_OK ||
        config.sensor_id >= devices.size()) {
        s.set_error("no camera device %u (Argus lists %zu)", config.sensor_id, devices.size());
        return FC_ARGUS_NO_CAMERA;
    }
    Argus::CameraDevice *device = devices[config.sensor_id];
    Argus::ICameraProperties *properties =
        Argus::interface_cast<Argus::ICameraProperties>(device);
    std::vector<Argus::SensorMode *> modes;
    if (properties == nullptr || properties->getAllSensorModes(&modes) != Argus::STATUS_OK ||
        config.sensor_mode >= modes.size()) {
        s.set_error("no sensor mode %u on camera %u (it has %zu)", config.sensor_mode,
                    config.sensor_id, modes.size());
        return FC_ARGUS_INVALID;
    }
    Argus::SensorMode *mode = modes[config.sensor_mode];
    Argus::ISensorMode *mode_info = Argus::interface_cast<Argus::ISensorMode>(mode);
    const uint64_t frame_ns = 1000000000ull / config.fps;
    if (mode_info != nullptr) {
        // Argus clamps a duration outside the mode's range without an error; the SDK would then
        // get another rate than it asked for.
        const Argus::Range<uint64_t> range = mode_info->getFrameDurationRange();
        if (frame_ns < range.min() || frame_ns > range.max()) {
            s.set_error("sensor mode %u takes frame durations %llu..%llu ns, not %llu (%u fps)",
                        config.sensor_mode, (unsigned long long)range.min(),
                        (unsigned long long)range.max(), (unsigned long long)frame_ns,
                        config.fps);
            return FC_ARGUS_INVALID;
        }
    }

    Argus::Status status = Argus::STATUS_OK;
    s.session.reset(provider->createCaptureSession(device, &status));
    Argus::ICaptureSession *capture = Argus::interface_cast<Argus::ICaptureSession>(s.session);
    if (capture == nullptr) {
        s.set_error("cannot create a capture session on camera %u (status %d%s)",
                    config.sensor_id, int(status),
                    status == Argus::STATUS_UNAVAILABLE ? ", camera in use" : "");
        return FC_ARGUS_FAILED;
    }
    Argus::UniqueObj<Argus::OutputStreamSettings> settings(
        capture->createOutputStreamSettings(Argus::STREAM_TYPE_EGL, &status));
    Argus::IEGLOutputStreamSettings *egl =
        Argus::interface_cast<Argus::IEGLOutputStreamSettings>(settings);
    if (egl == nullptr) {
        s.set_error("cannot create EGL output stream settings (status %d)", int(status));
        return FC_ARGUS_FAILED;
    }
    // Mailbox: the consumer always gets the newest frame; a slow consumer drops old ones rather
    // than stalling the sensor.
    if (egl->setPixelFormat(Argus::PIXEL_FMT_YCbCr_420_888) != Argus::STATUS_OK ||
        egl->setResolution(Argus::Size2D<uint32_t>(config.width, config.height)) !=
            Argus::STATUS_OK ||
        egl->setMode(Argus::EGL_STREAM_MODE_MAILBOX) != Argus::STATUS_OK) {
        s.set_error("Argus refuses a %ux%u YCbCr 4:2:0 mailbox stream", config.width,
                    config.height);
        return FC_ARGUS_INVALID;
    }
    s.stream.reset(capture->createOutputStream(settings.get(), &status));
    if (!s.stream) {
        s.set_error("cannot create the output stream (status %d)", int(status));
        return FC_ARGUS_FAILED;
    }
    s.consumer.reset(EGLStream::FrameConsumer::create(s.stream.get()));
    if (Argus::interface_cast<EGLStream::IFrameConsumer>(s.consumer) == nullptr) {
        s.set_error("cannot create the frame consumer");
        return FC_ARGUS_FAILED;
    }

    s.request.reset(capture->createRequest(Argus::CAPTURE_INTENT_VIDEO_RECORD, &status));
    Argus::IRequest *request = Argus::interface_cast<Argus::IRequest>(s.request);
    if (request == nullptr || request->enableOutputStream(s.stream.get()) != Argus::STATUS_OK) {
        s.set_error("cannot create the capture request (status %d)", int(status));
        return FC_ARGUS_FAILED;
    }
    Argus::ISourceSettings *source =
        Argus::interface_cast<Argus::ISourceSettings>(request->getSourceSettings());
    if (source == nullptr || source->setSensorMode(mode) != Argus::STATUS_OK ||
        source->setFrameDurationRange(Argus::Range<uint64_t>(frame_ns, frame_ns)) !=
            Argus::STATUS_OK) {
        s.set_error("cannot set sensor mode %u at %u fps", config.sensor_mode, config.fps);
        return FC_ARGUS_INVALID;
    }
    for (unsigned i = 0; i < config.buffers; i++) {
        if (!allocate(s, i)) {
            return FC_ARGUS_FAILED;
        }
    }
    status = capture->repeat(s.request.get());
    if (status != Argus::STATUS_OK) {
        s.set_error("cannot start the repeating capture (status %d)", int(status));
        return FC_ARGUS_FAILED;
    }
    return FC_ARGUS_OK;
}

// Waits until `deadline` for a frame Argus has not handed out before. Both EGLStream modes may
// hand the last frame out again when no newer one has arrived.
fc_argus_status next_frame(fc_argus_session &s, uint64_t deadline,
                           Argus::UniqueObj<EGLStream::Frame> &frame, uint64_t &number,
                           uint64_t &taken_ns) {
    EGLStream::IFrameConsumer *consumer =
        Argus::interface_cast<EGLStream::IFrameConsumer>(s.consumer);
    if (consumer == nullptr) {
        s.set_error("the session has no frame consumer");
        return FC_ARGUS_FAILED;
    }
    for (;;) {
        const uint64_t now = now_ns();
        const uint64_t wait = deadline > now ? deadline - now : 0;
        Argus::Status status = Argus::STATUS_OK;
        frame.reset(consumer->acquireFrame(wait, &status));
        taken_ns = now_ns();
        if (!frame) {
            if (status == Argus::STATUS_TIMEOUT) {
                s.set_error("no frame within the timeout");
                return FC_ARGUS_TIMEOUT;
            }
            s.set_error("acquireFrame failed (status %d%s)", int(status),
                        status == Argus::STATUS_DISCONNECTED ? ", stream disconnected" : "");
            return FC_ARGUS_FAILED;
        }
        EGLStream::IFrame *iframe = Argus::interface_cast<EGLStream::IFrame>(frame);
        if (iframe == nullptr) {
            s.set_error("acquired frame has no IFrame interface");
            return FC_ARGUS_FAILED;
        }
        number = iframe->getNumber();
        if (!s.numbered || number != s.last_number) {
            return FC_ARGUS_OK;
        }
        frame.reset();
        if (taken_ns >= deadline) {
            s.set_error("no new frame within the timeout");
            return FC_ARGUS_TIMEOUT;
        }
        sleep_ns(deadline - taken_ns < kRepeatPauseNs ? deadline - taken_ns : kRepeatPauseNs);
    }
}

fc_argus_status acquire(fc_argus_session &s, uint32_t timeout_ms, fc_argus_frame &out) {
    unsigned index = FC_ARGUS_MAX_BUFFERS;
    for (unsigned k = 0; k < s.config.buffers; k++) {
        const unsigned i = (s.next + k) % s.config.buffers;
        if (!s.lent[i]) {
            index = i;
            break;
        }
    }
    if (index == FC_ARGUS_MAX_BUFFERS) {
        s.set_error("all %u buffers are lent out", s.config.buffers);
        return FC_ARGUS_BUSY;
    }
    const uint64_t deadline = now_ns() + uint64_t(timeout_ms) * 1000000u;
    Argus::UniqueObj<EGLStream::Frame> frame;
    uint64_t number = 0;
    uint64_t taken_ns = 0;
    const fc_argus_status status = next_frame(s, deadline, frame, number, taken_ns);
    if (status != FC_ARGUS_OK) {
        return status;
    }
    EGLStream::IFrame *iframe = Argus::interface_cast<EGLStream::IFrame>(frame);
    EGLStream::NV::IImageNativeBuffer *native =
        Argus::interface_cast<EGLStream::NV::IImageNativeBuffer>(iframe->getImage());
    if (native == nullptr) {
        s.set_error("the frame's image has no IImageNativeBuffer interface");
        return FC_ARGUS_FAILED;
    }
    const Argus::Status copied = native->copyToNvBuffer(s.fd[index]);
    if (copied != Argus::STATUS_OK) {
        s.set_error("copyToNvBuffer failed (status %d)", int(copied));
        return FC_ARGUS_FAILED;
    }
    // The hardware wrote the buffer; the CPU mapping must not serve stale cache lines.
    NvBufSurface *surface = s.surface[index];
    if (NvBufSurfaceSyncForCpu(surface, 0, -1) != 0) {
        s.set_error("NvBufSurfaceSyncForCpu failed");
        return FC_ARGUS_FAILED;
    }
    if (!s.numbered) {
        s.numbered = true;
        s.first_number = number;
    }
    s.last_number = number;
    const NvBufSurfaceParams &params = surface->surfaceList[0];
    std::memset(&out, 0, sizeof out);
    out.dmabuf_fd = s.fd[index];
    out.index = index;
    out.width = params.width;
    out.height = params.height;
    for (unsigned p = 0; p < 2; p++) {
        out.pitch[p] = params.planeParams.pitch[p];
        out.offset[p] = params.planeParams.offset[p];
        out.plane[p] = static_cast<const uint8_t *>(params.mappedAddr.addr[p]);
    }
    out.size = params.dataSize;
    out.sequence = number - s.first_number;
    out.timestamp_ns = taken_ns;
    s.lent[index] = true;
    s.next = (index + 1) % s.config.buffers;
    return FC_ARGUS_OK;
}

}  // namespace

extern "C" fc_argus_status fc_argus_open(const fc_argus_config *config, fc_argus_session **out,
                                         char *error, size_t error_len) {
    if (config == nullptr || out == nullptr) {
        copy_error(error, error_len, "config and out must not be NULL");
        return FC_ARGUS_INVALID;
    }
    *out = nullptr;
    if (config->abi_version != FC_ARGUS_ABI_VERSION) {
        copy_error(error, error_len, "fc_argus ABI version mismatch");
        return FC_ARGUS_INVALID;
    }
    if (config->width == 0 || config->height == 0 || config->width % 2 || config->height % 2 ||
        config->fps == 0 || config->buffers < 2 || config->buffers > FC_ARGUS_MAX_BUFFERS) {
        copy_error(error, error_len, "invalid size, rate or buffer count");
        return FC_ARGUS_INVALID;
    }
    fc_argus_session *s = nullptr;
    try {
        s = new fc_argus_session();
        const fc_argus_status status = open_session(*config, *s);
        if (status != FC_ARGUS_OK) {
            copy_error(error, error_len, s->error);
            delete s;
            return status;
        }
        *out = s;
        return FC_ARGUS_OK;
    } catch (const std::exception &e) {
        copy_error(error, error_len, e.what());
    } catch (...) {
        copy_error(error, error_len, "unknown C++ exception in fc_argus_open");
    }
    delete s;
    return FC_ARGUS_FAILED;
}

extern "C" fc_argus_status fc_argus_acquire(fc_argus_session *s, uint32_t timeout_ms,
                                            fc_argus_frame *out) {
    if (s == nullptr || out == nullptr) {
        return FC_ARGUS_INVALID;
    }
    try {
        return acquire(*s, timeout_ms, *out);
    } catch (const std::exception &e) {
        s->set_error("C++ exception in fc_argus_acquire: %s", e.what());
    } catch (...) {
        s->set_error("unknown C++ exception in fc_argus_acquire");
    }
    return FC_ARGUS_FAILED;
}

extern "C" fc_argus_status fc_argus_release(fc_argus_session *s, uint32_t index) {
    if (s == nullptr) {
        return FC_ARGUS_INVALID;
    }
    if (index >= s->config.buffers || !s->lent[index]) {
        s->set_error("buffer %u is not lent out", index);
        return FC_ARGUS_INVALID;
    }
    s->lent[index] = false;
    return FC_ARGUS_OK;
}

extern "C" const char *fc_argus_error(const fc_argus_session *s) {
    return s == nullptr ? "no session" : s->error;
}

extern "C" void fc_argus_close(fc_argus_session *s) {
    delete s;
}
