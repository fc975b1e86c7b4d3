// Class map -> palette colours, and alpha blend of them over the decoded NV12 frame.
//
// The exact definitions are colorize and blend_over_i420 in cloud-worker/src/post.rs (the frame
// there is I420; NV12 holds the same samples), and for NV12 output the RGB -> YUV step of
// flowcloud_cuda::reference::blend_nv12_to_nv12; the references are in flowcloud_cuda::reference.
// The palette is 256 RGB triples (768 bytes); classes it does not name are black there.

__device__ __forceinline__ void fc_frame_rgb(const unsigned char *frame, unsigned long long chroma_offset,
                                             unsigned int pitch, unsigned int x, unsigned int y, float rgb[3]) {
    const unsigned char *uv = frame + chroma_offset + (unsigned long long)(y / 2) * pitch + (x / 2) * 2;
    float c = __fsub_rn((float)frame[(unsigned long long)y * pitch + x], 16.0f);
    float d = __fsub_rn((float)uv[0], 128.0f);
    float e = __fsub_rn((float)uv[1], 128.0f);
    float r = __fadd_rn(__fmul_rn(1.164f, c), __fmul_rn(1.596f, e));
    float g = __fsub_rn(__fsub_rn(__fmul_rn(1.164f, c), __fmul_rn(0.392f, d)), __fmul_rn(0.813f, e));
    float b = __fadd_rn(__fmul_rn(1.164f, c), __fmul_rn(2.017f, d));
    rgb[0] = fminf(fmaxf(r, 0.0f), 255.0f);
    rgb[1] = fminf(fmaxf(g, 0.0f), 255.0f);
    rgb[2] = fminf(fmaxf(b, 0.0f), 255.0f);
}

// out = round((1 - alpha) * F + alpha * O), round half away from zero, for each channel; O is
// the class's palette colour. Also used by the fused argmax + overlay kernels
// (fused_overlay.cu), which pass the class they computed.
__device__ __forceinline__ void fc_blend_class(const unsigned char *frame, unsigned long long chroma_offset,
                                               unsigned int pitch, unsigned int class_index,
                                               const unsigned char *palette, float keep, float alpha,
                                               unsigned int x, unsigned int y, int out[3]) {
    float f[3];
    fc_frame_rgb(frame, chroma_offset, pitch, x, y, f);
    const unsigned char *o = palette + 3 * class_index;
    for (int c = 0; c < 3; ++c) {
        float v = roundf(__fadd_rn(__fmul_rn(keep, f[c]), __fmul_rn(alpha, (float)o[c])));
        out[c] = (int)fminf(fmaxf(v, 0.0f), 255.0f);
    }
}

// As fc_blend_class with the class read from the class map.
__device__ __forceinline__ void fc_blend_pixel(const unsigned char *frame, unsigned long long chroma_offset,
                                               unsigned int pitch, const unsigned char *class_map,
                                               unsigned int width, const unsigned char *palette, float keep,
                                               float alpha, unsigned int x, unsigned int y, int out[3]) {
    unsigned int class_index = class_map[(unsigned long long)y * width + x];
    fc_blend_class(frame, chroma_offset, pitch, class_index, palette, keep, alpha, x, y, out);
}

// BT.601 limited-range luma of a blended pixel, in integers (the edge SDK's rgb_to_i420).
__device__ __forceinline__ unsigned char fc_luma(const int p[3]) {
    return (unsigned char)(((66 * p[0] + 129 * p[1] + 25 * p[2] + 128) >> 8) + 16);
}

// U and V from the sums of four blended pixels' R, G and B (the edge SDK's rgb_to_i420).
__device__ __forceinline__ void fc_store_chroma(unsigned char *uv, const int sum[3]) {
    fc_store_chroma(uv, sum);
}

// RGBA (alpha byte 255) of each class's palette colour. One thread per pixel.
extern "C" __global__ void fc_colorize_rgba(const unsigned char *class_map, unsigned int width,
                                            unsigned int height, const unsigned char *palette,
                                            unsigned char *rgba) {
    unsigned int x = blockIdx.x * blockDim.x + threadIdx.x;
    unsigned int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= width || y >= height) {
        return;
    }
    unsigned long long i = (unsigned long long)y * width + x;
    const unsigned char *o = palette + 3 * (unsigned int)class_map[i];
    rgba[4 * i + 0] = o[0];
    rgba[4 * i + 1] = o[1];
    rgba[4 * i + 2] = o[2];
    rgba[4 * i + 3] = 255;
}

// The blended frame as tightly packed RGBA (alpha byte 255). One thread per pixel; `keep` is
// 1 - alpha, computed by the caller in f32.
extern "C" __global__ void fc_blend_nv12_rgba(const unsigned char *frame, unsigned long long chroma_offset,
                                              unsigned int pitch, unsigned int width, unsigned int height,
                                              const unsigned char *class_map, const unsigned char *palette,
                                              float keep, float alpha, unsigned char *rgba) {
    unsigned int x = blockIdx.x * blockDim.x + threadIdx.x;
    unsigned int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= width || y >= height) {
        return;
    }
    int p[3];
    fc_blend_pixel(frame, chroma_offset, pitch, class_map, width, palette, keep, alpha, x, y, p);
    unsigned long long i = (unsigned long long)y * width + x;
    rgba[4 * i + 0] = (unsigned char)p[0];
    rgba[4 * i + 1] = (unsigned char)p[1];
    rgba[4 * i + 2] = (unsigned char)p[2];
    rgba[4 * i + 3] = 255;
}

// The blended frame converted back to NV12 (BT.601 limited range, integer coefficients; each
// chroma sample from the sum of its 2x2 pixels, the last column/row repeated at odd sizes).
// One thread per 2x2 block; `out` has its own pitch and chroma offset.
extern "C" __global__ void fc_blend_nv12_nv12(const unsigned char *frame, unsigned long long chroma_offset,
                                              unsigned int pitch, unsigned int width, unsigned int height,
                                              const unsigned char *class_map, const unsigned char *palette,
                                              float keep, float alpha, unsigned char *out,
                                              unsigned long long out_chroma_offset, unsigned int out_pitch) {
    unsigned int cx = blockIdx.x * blockDim.x + threadIdx.x;
    unsigned int cy = blockIdx.y * blockDim.y + threadIdx.y;
    if (cx >= (width + 1) / 2 || cy >= (height + 1) / 2) {
        return;
    }
    int sum[3] = {0, 0, 0};
    for (unsigned int dy = 0; dy < 2; ++dy) {
        for (unsigned int dx = 0; dx < 2; ++dx) {
            unsigned int x = min(2 * cx + dx, width - 1);
            unsigned int y = min(2 * cy + dy, height - 1);
            int p[3];
            fc_blend_pixel(frame, chroma_offset, pitch, class_map, width, palette, keep, alpha, x, y, p);
            for (int c = 0; c < 3; ++c) {
                sum[c] += p[c];
            }
            // Repeated pixels (odd sizes) are summed again but written once.
            if (2 * cx + dx < width && 2 * cy + dy < height) {
                out[(unsigned long long)y * out_pitch + x] = fc_luma(p);
            }
        }
    }
    unsigned char *uv = out + out_chroma_offset + (unsigned long long)cy * out_pitch + 2 * cx;
    fc_store_chroma(uv, sum);
}
