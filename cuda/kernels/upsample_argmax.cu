// Fused bilinear upsample of logits + argmax -> u8 class map.
//
// The exact definition is the documentation of upsample_argmax in cloud-worker/src/post.rs
// (taps in f32, each line evaluated left to right without FMA, ties to the lowest class, a NaN
// never wins); the reference is flowcloud_cuda::reference::upsample_argmax. This kernel
// evaluates every pixel and every class (no four-corner shortcut); the bytes are the same.
//
// One thread per output pixel. Logits are `classes x in_h x in_w`, row-major.

struct FcTap {
    unsigned int i0;
    unsigned int i1;
    float w0;
    float w1;
};

__device__ __forceinline__ FcTap fc_logit_tap(unsigned int d, unsigned int n, unsigned int m) {
    float scale = __fdiv_rn((float)n, (float)m);
    float last = (float)(n - 1);
    float src = __fsub_rn(__fmul_rn(__fadd_rn((float)d, 0.5f), scale), 0.5f);
    src = fminf(fmaxf(src, 0.0f), last);
    unsigned int i0 = (unsigned int)src;  // src >= 0: truncation is floor
    if (i0 > n - 1) {
        i0 = n - 1;
    }
    FcTap t;
    t.i0 = i0;
    t.i1 = i0 + 1 < n ? i0 + 1 : n - 1;
    t.w1 = __fsub_rn(src, (float)i0);
    t.w0 = __fsub_rn(1.0f, t.w1);
    return t;
}

__device__ __forceinline__ float fc_load_logit(const float *logits, unsigned long long i) {
    return logits[i];
}

__device__ __forceinline__ float fc_load_logit(const unsigned short *logits, unsigned long long i) {
    float f;
    // binary16 -> binary32 is exact.
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(logits[i]));
    return f;
}

// The class of output pixel (x, y): the upsampled logits' argmax. Also used by the fused
// argmax + overlay kernels (fused_overlay.cu), so both give the same class.
template <typename T>
__device__ __forceinline__ unsigned int fc_argmax_pixel(const T *logits, unsigned int classes, unsigned int in_h,
                                                        unsigned int in_w, unsigned int out_h, unsigned int out_w,
                                                        unsigned int x, unsigned int y) {
    FcTap tx = fc_logit_tap(x, in_w, out_w);
    FcTap ty = fc_logit_tap(y, in_h, out_h);
    unsigned long long plane = (unsigned long long)in_h * in_w;
    unsigned long long r0 = (unsigned long long)ty.i0 * in_w;
    unsigned long long r1 = (unsigned long long)ty.i1 * in_w;
    float best = 0.0f;
    unsigned int best_class = 0;
    for (unsigned int c = 0; c < classes; ++c) {
        unsigned long long base = c * plane;
        float top = __fadd_rn(__fmul_rn(tx.w0, fc_load_logit(logits, base + r0 + tx.i0)),
                              __fmul_rn(tx.w1, fc_load_logit(logits, base + r0 + tx.i1)));
        float bot = __fadd_rn(__fmul_rn(tx.w0, fc_load_logit(logits, base + r1 + tx.i0)),
                              __fmul_rn(tx.w1, fc_load_logit(logits, base + r1 + tx.i1)));
        float v = __fadd_rn(__fmul_rn(ty.w0, top), __fmul_rn(ty.w1, bot));
        // Strictly greater: ties keep the lower class; a NaN compares false either way.
        if (c == 0 || v > best) {
            best = v;
            best_class = c;
        }
    }
    return best_class;
}

template <typename T>
__device__ __forceinline__ void fc_upsample_argmax(const T *logits, unsigned int classes, unsigned int in_h,
                                                   unsigned int in_w, unsigned int out_h, unsigned int out_w,
                                                   unsigned char *class_map) {
    unsigned int x = blockIdx.x * blockDim.x + threadIdx.x;
    unsigned int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= out_w || y >= out_h) {
        return;
    }
    class_map[(unsigned long long)y * out_w + x] =
        (unsigned char)fc_argmax_pixel(logits, classes, in_h, in_w, out_h, out_w, x, y);
}

extern "C" __global__ void fc_upsample_argmax_f32(const float *logits, unsigned int classes, unsigned int in_h,
                                                  unsigned int in_w, unsigned int out_h, unsigned int out_w,
                                                  unsigned char *class_map) {
    fc_upsample_argmax(logits, classes, in_h, in_w, out_h, out_w, class_map);
}

// Logits as IEEE binary16 bit patterns (a TensorRT FP16 engine's output), widened exactly to f32.
extern "C" __global__ void fc_upsample_argmax_f16(const unsigned short *logits, unsigned int classes,
                                                  unsigned int in_h, unsigned int in_w, unsigned int out_h,
                                                  unsigned int out_w, unsigned char *class_map) {
    fc_upsample_argmax(logits, classes, in_h, in_w, out_h, out_w, class_map);
}
