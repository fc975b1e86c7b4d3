// The libargus shim: fc_argus.h over NVIDIA's Argus camera API and NvBufSurface.
//
// Built only with the SDK's `argus` feature, for aarch64, against the L4T Multimedia API
// (FLOWCLOUD_L4T_ROOT; the cross image unpacks it to /opt/l4t). It has not been compiled or run
// here: no L4T headers or Jetson are available; the SDK's tests run the same C ABI against
// fc_argus_fake.c. The structure follows the Multimedia API samples: a capture session with one
// EGLStream output, a FrameConsumer, and each acquired frame copied by the ISP/VIC into one of
// our NvBufSurface DMABUFs (IImageNativeBuffer::copyToNvBuffer), which the encoder can import.
//
// Every entry point catches everything: no C++ exception crosses into Rust.

#include "fc_argus.h"

#include <Argus/Argus.h>
#include <EGLStream/EGLStream.h>
#include <EGLStream/NV/ImageNativeBuffer.h>
#include <nvbufsurface.h>

#include <time.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <vector>

using namespace Argus;

struct fc_argus_session {
    fc_argus_config config{};
    UniqueObj<CameraProvider> provider;
    UniqueObj<CaptureSession> session;
    UniqueObj<OutputStream> stream;
    UniqueObj<EGLStream::FrameConsumer> consumer;
    UniqueObj<Request> request;
    int fd[FC_ARGUS_MAX_BUFFERS];
    NvBufSurface *surface[FC_ARGUS_MAX_BUFFERS];
    bool lent[FC_ARGUS_MAX_BUFFERS];
    std::string error;
    unsigned next = 0;  // round robin: the buffer after the last one lent

    fc_argus_session() {
        for (unsigned i = 0; i < FC_ARGUS_MAX_BUFFERS; i++) {
            fd[i] = -1;
            surface[i] = nullptr;
            lent[i] = false;
        }
    }

    ~fc_argus_session() {
        if (ICaptureSession *capture = interface_cast<ICaptureSession>(session)) {
            capture->stopRepeat();
            capture->waitForIdle();
        }
        if (IEGLOutputStream *egl = interface_cast<IEGLOutputStream>(stream)) {
            egl->disconnect();
        }
        for (unsigned i = 0; i < FC_ARGUS_MAX_BUFFERS; i++) {
            if (surface[i] != nullptr) {
                NvBufSurfaceUnMap(surface[i], 0, -1);
                NvBufSurfaceDestroy(surface[i]);
            }
        }
    }
};

namespace {

uint64_t now_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

void copy_error(char *dst, size_t len, const std::string &text) {
    if (dst != nullptr && len > 0) {
        std::snprintf(dst, len, "%s", text.c_str());
    }
}

// Allocates a pitch-linear NV12 DMABUF of the session's size and maps both planes for reading.
bool allocate(fc_argus_session &s, unsigned i) {
    NvBufSurfaceCreateParams params{};
    params.gpuId = 0;
    params.width = s.config.width;
    params.height = s.config.height;
    params.colorFormat = NVBUF_COLOR_FORMAT_NV12;
    params.layout = NVBUF_LAYOUT_PITCH;
    params.memType = NVBUF_MEM_SURFACE_ARRAY;
    if (NvBufSurfaceCreate(&s.surface[i], 1, &params) != 0) {
        s.surface[i] = nullptr;
        s.error = "NvBufSurfaceCreate failed";
        return false;
    }
    s.surface[i]->numFilled = 1;
    s.fd[i] = int(s.surface[i]->surfaceList[0].bufferDesc);
    if (NvBufSurfaceMap(s.surface[i], 0, -1, NVBUF_MAP_READ) != 0) {
        s.error = "NvBufSurfaceMap failed";
        return false;
    }
    return true;
}

fc_argus_status open_session(const fc_argus_config &config, fc_argus_session &s) {
    s.config = config;
    s.provider.reset(CameraProvider::create());
    ICameraProvider *provider = interface_cast<ICameraProvider>(s.provider);
    if (provider == nullptr) {
        s.error = "cannot create the Argus camera provider (is nvargus-daemon running?)";
        return FC_ARGUS_NO_CAMERA;
    }
    std::vector<CameraDevice *> devices;
    if (provider->getCameraDevices(&devices) != STATUS_OK || config.sensor_id >= devices.size()) {
        s.error = "no camera device " + std::to_string(config.sensor_id) + " (Argus lists " +
                  std::to_string(devices.size()) + ")";
        return FC_ARGUS_NO_CAMERA;
    }
    CameraDevice *device = devices[config.sensor_id];
    ICameraProperties *properties = interface_cast<ICameraProperties>(device);
    std::vector<SensorMode *> modes;
    if (properties == nullptr || properties->getAllSensorModes(&modes) != STATUS_OK ||
        config.sensor_mode >= modes.size()) {
        s.error = "no sensor mode " + std::to_string(config.sensor_mode);
        return FC_ARGUS_INVALID;
    }

    s.session.reset(provider->createCaptureSession(device));
    ICaptureSession *capture = interface_cast<ICaptureSession>(s.session);
    if (capture == nullptr) {
        s.error = "cannot create a capture session (camera busy?)";
        return FC_ARGUS_FAILED;
    }
    UniqueObj<OutputStreamSettings> settings(capture->createOutputStreamSettings(STREAM_TYPE_EGL));
    IEGLOutputStreamSettings *egl = interface_cast<IEGLOutputStreamSettings>(settings);
    if (egl == nullptr) {
        s.error = "cannot create EGL output stream settings";
        return FC_ARGUS_FAILED;
    }
    egl->setPixelFormat(PIXEL_FMT_YCbCr_420_888);
    egl->setResolution(Size2D<uint32_t>(config.width, config.height));
    // Mailbox: the consumer always gets the newest frame; a slow consumer drops old ones rather
    // than adding latency.
    egl->setMode(EGL_STREAM_MODE_MAILBOX);
    s.stream.reset(capture->createOutputStream(settings.get()));
    s.consumer.reset(EGLStream::FrameConsumer::create(s.stream.get()));
    if (interface_cast<EGLStream::IFrameConsumer>(s.consumer) == nullptr) {
        s.error = "cannot create the frame consumer";
        return FC_ARGUS_FAILED;
    }

    s.request.reset(capture->createRequest(CAPTURE_INTENT_VIDEO_RECORD));
    IRequest *request = interface_cast<IRequest>(s.request);
    if (request == nullptr || request->enableOutputStream(s.stream.get()) != STATUS_OK) {
        s.error = "cannot create the capture request";
        return FC_ARGUS_FAILED;
    }
    ISourceSettings *source = interface_cast<ISourceSettings>(request->getSourceSettings());
    const uint64_t frame_ns = 1000000000ull / config.fps;
    if (source != nullptr) {
        source->setSensorMode(modes[config.sensor_mode]);
        source->setFrameDurationRange(Range<uint64_t>(frame_ns, frame_ns));
    }
    for (unsigned i = 0; i < config.buffers; i++) {
        if (!allocate(s, i)) {
            return FC_ARGUS_FAILED;
        }
    }
    if (capture->repeat(s.request.get()) != STATUS_OK) {
        s.error = "cannot start the repeating capture";
        return FC_ARGUS_FAILED;
    }
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
        copy_error(error, error_len, "unknown C++ exception");
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
        unsigned index = FC_ARGUS_MAX_BUFFERS;
        for (unsigned k = 0; k < s->config.buffers; k++) {
            const unsigned i = (s->next + k) % s->config.buffers;
            if (!s->lent[i]) {
                index = i;
                break;
            }
        }
        if (index == FC_ARGUS_MAX_BUFFERS) {
            s->error = "all buffers are lent out";
            return FC_ARGUS_BUSY;
        }
        auto *consumer = interface_cast<EGLStream::IFrameConsumer>(s->consumer);
        Argus::Status status = STATUS_OK;
        UniqueObj<EGLStream::Frame> frame(
            consumer->acquireFrame(uint64_t(timeout_ms) * 1000000u, &status));
        if (status == STATUS_TIMEOUT) {
            s->error = "no frame within the timeout";
            return FC_ARGUS_TIMEOUT;
        }
        auto *iframe = interface_cast<EGLStream::IFrame>(frame);
        if (status != STATUS_OK || iframe == nullptr) {
            s->error = "acquireFrame failed (status " + std::to_string(int(status)) + ")";
            return FC_ARGUS_FAILED;
        }
        auto *native = interface_cast<EGLStream::NV::IImageNativeBuffer>(iframe->getImage());
        if (native == nullptr || native->copyToNvBuffer(s->fd[index]) != STATUS_OK) {
            s->error = "copyToNvBuffer failed";
            return FC_ARGUS_FAILED;
        }
        NvBufSurface *surface = s->surface[index];
        NvBufSurfaceSyncForCpu(surface, 0, -1);
        const NvBufSurfaceParams &params = surface->surfaceList[0];
        std::memset(out, 0, sizeof *out);
        out->dmabuf_fd = s->fd[index];
        out->index = index;
        out->width = params.width;
        out->height = params.height;
        for (unsigned p = 0; p < 2; p++) {
            out->pitch[p] = params.planeParams.pitch[p];
            out->offset[p] = params.planeParams.offset[p];
            out->plane[p] = static_cast<const uint8_t *>(params.mappedAddr.addr[p]);
        }
        out->size = params.dataSize;
        out->sequence = iframe->getNumber();
        out->timestamp_ns = now_ns();
        s->lent[index] = true;
        s->next = (index + 1) % s->config.buffers;
        return FC_ARGUS_OK;
    } catch (...) {
        s->error = "C++ exception in acquire";
        return FC_ARGUS_FAILED;
    }
}

extern "C" fc_argus_status fc_argus_release(fc_argus_session *s, uint32_t index) {
    if (s == nullptr || index >= s->config.buffers || !s->lent[index]) {
        if (s != nullptr) {
            s->error = "buffer " + std::to_string(index) + " is not lent out";
        }
        return FC_ARGUS_INVALID;
    }
    s->lent[index] = false;
    return FC_ARGUS_OK;
}

extern "C" const char *fc_argus_error(const fc_argus_session *s) {
    return s == nullptr ? "no session" : s->error.c_str();
}

extern "C" void fc_argus_close(fc_argus_session *s) {
    try {
        delete s;
    } catch (...) {
    }
}

// The fake's test hooks do nothing here.
extern "C" void fc_argus_fake_fail_after(fc_argus_session *, uint32_t) {}
extern "C" uint32_t fc_argus_fake_lent(const fc_argus_session *) { return 0; }
extern "C" uint32_t fc_argus_fake_open_sessions(void) { return 0; }
