// NV12 -> bilinear resize -> normalize -> planar RGB/BGR, f32 or f16 out.
//
// The exact definition is the module documentation of cloud-worker/src/preprocess.rs (there for
// I420; NV12 holds the same samples with U and V interleaved in one plane), and its NV12 reference
// is flowcloud_cuda::reference::preprocess_nv12. Every float operation is an explicit
// round-to-nearest intrinsic, so no multiply-add is contracted and the results can be bit-equal
// to the Rust code (it is also compiled with --fmad=false).
//
// One thread per output pixel (ox, oy); it writes the pixel's value in each of the three planes.

// Step 1: the source index and weight of output index `o` along an axis, in integers.
__device__ __forceinline__ void fc_axis_tap(unsigned int o, unsigned int in_len, unsigned int out_len,
                                            unsigned int *i0, unsigned int *i1, float *frac) {
    long long n_in = (long long)in_len;
    long long n_out = (long long)out_len;
    long long num = (2 * (long long)o + 1) * n_in - n_out;
    long long den = 2 * n_out;
    long long first = 0;
    long long rest = 0;
    if (num >= 0) {
        if (num / den >= n_in - 1) {
            first = n_in - 1;
        } else {
            first = num / den;
            rest = num % den;
        }
    }
    *i0 = (unsigned int)first;
    *i1 = (unsigned int)(first + 1 < n_in ? first + 1 : n_in - 1);
    // Both below 2^24: exact conversions, one correctly rounded division.
    *frac = __fdiv_rn((float)rest, (float)den);
}

// Step 2: BT.601 limited range -> RGB, clamped to [0, 255], not rounded.
__device__ __forceinline__ void fc_nv12_rgb(const unsigned char *frame, unsigned long long chroma_offset,
                                            unsigned int pitch, unsigned int x, unsigned int y, float rgb[3]) {
    float yv = (float)frame[(unsigned long long)y * pitch + x];
    const unsigned char *uv = frame + chroma_offset + (unsigned long long)(y / 2) * pitch + (x / 2) * 2;
    float u = (float)uv[0];
    float v = (float)uv[1];
    float c = __fmul_rn(1.164f, __fsub_rn(yv, 16.0f));
    float r = __fadd_rn(c, __fmul_rn(1.596f, __fsub_rn(v, 128.0f)));
    float g = __fsub_rn(__fsub_rn(c, __fmul_rn(0.392f, __fsub_rn(u, 128.0f))),
                        __fmul_rn(0.813f, __fsub_rn(v, 128.0f)));
    float b = __fadd_rn(c, __fmul_rn(2.017f, __fsub_rn(u, 128.0f)));
    rgb[0] = fminf(fmaxf(r, 0.0f), 255.0f);
    rgb[1] = fminf(fmaxf(g, 0.0f), 255.0f);
    rgb[2] = fminf(fmaxf(b, 0.0f), 255.0f);
}

// Steps 1 to 4 for one output pixel: the normalized R, G, B values.
__device__ __forceinline__ void fc_preprocess_pixel(const unsigned char *frame, unsigned long long chroma_offset,
                                                    unsigned int pitch, unsigned int in_w, unsigned int in_h,
                                                    unsigned int out_w, unsigned int out_h, unsigned int ox,
                                                    unsigned int oy, const float scale[3], const float bias[3],
                                                    float out[3]) {
    unsigned int x0, x1, y0, y1;
    float fx, fy;
    fc_axis_tap(ox, in_w, out_w, &x0, &x1, &fx);
    fc_axis_tap(oy, in_h, out_h, &y0, &y1, &fy);
    float p00[3], p01[3], p10[3], p11[3];
    fc_nv12_rgb(frame, chroma_offset, pitch, x0, y0, p00);
    fc_nv12_rgb(frame, chroma_offset, pitch, x1, y0, p01);
    fc_nv12_rgb(frame, chroma_offset, pitch, x0, y1, p10);
    fc_nv12_rgb(frame, chroma_offset, pitch, x1, y1, p11);
    float gx = __fsub_rn(1.0f, fx);
    float gy = __fsub_rn(1.0f, fy);
    for (int c = 0; c < 3; ++c) {
        float top = __fadd_rn(__fmul_rn(gx, p00[c]), __fmul_rn(fx, p01[c]));
        float bottom = __fadd_rn(__fmul_rn(gx, p10[c]), __fmul_rn(fx, p11[c]));
        float mixed = __fadd_rn(__fmul_rn(gy, top), __fmul_rn(fy, bottom));
        out[c] = __fadd_rn(__fmul_rn(mixed, scale[c]), bias[c]);
    }
}

// Writes `out_w * out_h` values per plane; the plane of colour channel c (0 = R, 1 = G, 2 = B) is
// c for RGB order (bgr == 0) and 2 - c for BGR order. scale_c = 1 / (255 * std_c) and
// bias_c = -mean_c / std_c, computed by the caller in f32.
extern "C" __global__ void fc_nv12_to_planar_f32(const unsigned char *frame, unsigned long long chroma_offset,
                                                 unsigned int pitch, unsigned int in_w, unsigned int in_h,
                                                 unsigned int out_w, unsigned int out_h, float scale_r,
                                                 float scale_g, float scale_b, float bias_r, float bias_g,
                                                 float bias_b, unsigned int bgr, float *out) {
    unsigned int ox = blockIdx.x * blockDim.x + threadIdx.x;
    unsigned int oy = blockIdx.y * blockDim.y + threadIdx.y;
    if (ox >= out_w || oy >= out_h) {
        return;
    }
    const float scale[3] = {scale_r, scale_g, scale_b};
    const float bias[3] = {bias_r, bias_g, bias_b};
    float v[3];
    fc_preprocess_pixel(frame, chroma_offset, pitch, in_w, in_h, out_w, out_h, ox, oy, scale, bias, v);
    unsigned long long plane = (unsigned long long)out_w * out_h;
    unsigned long long at = (unsigned long long)oy * out_w + ox;
    for (int c = 0; c < 3; ++c) {
        unsigned int p = bgr ? 2 - c : c;
        out[p * plane + at] = v[c];
    }
}

// As fc_nv12_to_planar_f32, each value rounded to IEEE binary16 (round to nearest even); `out`
// holds the binary16 bit patterns.
extern "C" __global__ void fc_nv12_to_planar_f16(const unsigned char *frame, unsigned long long chroma_offset,
                                                 unsigned int pitch, unsigned int in_w, unsigned int in_h,
                                                 unsigned int out_w, unsigned int out_h, float scale_r,
                                                 float scale_g, float scale_b, float bias_r, float bias_g,
                                                 float bias_b, unsigned int bgr, unsigned short *out) {
    unsigned int ox = blockIdx.x * blockDim.x + threadIdx.x;
    unsigned int oy = blockIdx.y * blockDim.y + threadIdx.y;
    if (ox >= out_w || oy >= out_h) {
        return;
    }
    const float scale[3] = {scale_r, scale_g, scale_b};
    const float bias[3] = {bias_r, bias_g, bias_b};
    float v[3];
    fc_preprocess_pixel(frame, chroma_offset, pitch, in_w, in_h, out_w, out_h, ox, oy, scale, bias, v);
    unsigned long long plane = (unsigned long long)out_w * out_h;
    unsigned long long at = (unsigned long long)oy * out_w + ox;
    for (int c = 0; c < 3; ++c) {
        unsigned int p = bgr ? 2 - c : c;
        unsigned short h;
        // No cuda_fp16.h (NVRTC would need the CUDA headers): the PTX conversion itself.
        asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v[c]));
        out[p * plane + at] = h;
    }
}
