// Fused logits -> (bilinear upsample + argmax) -> u8 class map AND the overlay (the class colours
// alpha-blended over the NV12 frame), in one pass: the class of a pixel never goes through memory
// between the two steps.
//
// Compiled after upsample_argmax.cu and overlay.cu in one NVRTC program (KernelSource::Fused
// concatenates the three files), so the per-pixel arithmetic is theirs, call for call:
// fc_argmax_pixel for the class, fc_blend_class for the blended colour, fc_luma and
// fc_store_chroma for NV12 output. The definition is therefore the composition of the two
// steps' references: flowcloud_cuda::reference::argmax_blend_rgba / argmax_blend_nv12.
//
// The class map has the frame's size (out_w x out_h of the logit upsample = the frame's width x
// height); `keep` is 1 - alpha, computed by the caller in f32.

// RGBA output: one thread per pixel.
template <typename T>
__device__ __forceinline__ void fc_argmax_blend_rgba(const T *logits, unsigned int classes, unsigned int in_h,
                                                     unsigned int in_w, const unsigned char *frame,
                                                     unsigned long long chroma_offset, unsigned int pitch,
                                                     unsigned int width, unsigned int height,
                                                     const unsigned char *palette, float keep, float alpha,
                                                     unsigned char *class_map, unsigned char *rgba) {
    unsigned int x = blockIdx.x * blockDim.x + threadIdx.x;
    unsigned int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= width || y >= height) {
        return;
    }
    unsigned int k = fc_argmax_pixel(logits, classes, in_h, in_w, height, width, x, y);
    int p[3];
    fc_blend_class(frame, chroma_offset, pitch, k, palette, keep, alpha, x, y, p);
    unsigned long long i = (unsigned long long)y * width + x;
    class_map[i] = (unsigned char)k;
    rgba[4 * i + 0] = (unsigned char)p[0];
    rgba[4 * i + 1] = (unsigned char)p[1];
    rgba[4 * i + 2] = (unsigned char)p[2];
    rgba[4 * i + 3] = 255;
}

// NV12 output: one thread per 2x2 block, as fc_blend_nv12_nv12 (at odd sizes the last
// column/row is summed again for chroma but written once, in both outputs).
template <typename T>
__device__ __forceinline__ void fc_argmax_blend_nv12(const T *logits, unsigned int classes, unsigned int in_h,
                                                     unsigned int in_w, const unsigned char *frame,
                                                     unsigned long long chroma_offset, unsigned int pitch,
                                                     unsigned int width, unsigned int height,
                                                     const unsigned char *palette, float keep, float alpha,
                                                     unsigned char *class_map, unsigned char *out,
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
            unsigned int k = fc_argmax_pixel(logits, classes, in_h, in_w, height, width, x, y);
            int p[3];
            fc_blend_class(frame, chroma_offset, pitch, k, palette, keep, alpha, x, y, p);
            for (int c = 0; c < 3; ++c) {
                sum[c] += p[c];
            }
            if (2 * cx + dx < width && 2 * cy + dy < height) {
                class_map[(unsigned long long)y * width + x] = (unsigned char)k;
                out[(unsigned long long)y * out_pitch + x] = fc_luma(p);
            }
        }
    }
    fc_store_chroma(out + out_chroma_offset + (unsigned long long)cy * out_pitch + 2 * cx, sum);
}

extern "C" __global__ void fc_argmax_blend_rgba_f32(const float *logits, unsigned int classes, unsigned int in_h,
                                                    unsigned int in_w, const unsigned char *frame,
                                                    unsigned long long chroma_offset, unsigned int pitch,
                                                    unsigned int width, unsigned int height,
                                                    const unsigned char *palette, float keep, float alpha,
                                                    unsigned char *class_map, unsigned char *rgba) {
    fc_argmax_blend_rgba(logits, classes, in_h, in_w, frame, chroma_offset, pitch, width, height, palette, keep,
                         alpha, class_map, rgba);
}

// Logits as IEEE binary16 bit patterns, widened exactly to f32.
extern "C" __global__ void fc_argmax_blend_rgba_f16(const unsigned short *logits, unsigned int classes,
                                                    unsigned int in_h, unsigned int in_w,
                                                    const unsigned char *frame, unsigned long long chroma_offset,
                                                    unsigned int pitch, unsigned int width, unsigned int height,
                                                    const unsigned char *palette, float keep, float alpha,
                                                    unsigned char *class_map, unsigned char *rgba) {
    fc_argmax_blend_rgba(logits, classes, in_h, in_w, frame, chroma_offset, pitch, width, height, palette, keep,
                         alpha, class_map, rgba);
}

extern "C" __global__ void fc_argmax_blend_nv12_f32(const float *logits, unsigned int classes, unsigned int in_h,
                                                    unsigned int in_w, const unsigned char *frame,
                                                    unsigned long long chroma_offset, unsigned int pitch,
                                                    unsigned int width, unsigned int height,
                                                    const unsigned char *palette, float keep, float alpha,
                                                    unsigned char *class_map, unsigned char *out,
                                                    unsigned long long out_chroma_offset, unsigned int out_pitch) {
    fc_argmax_blend_nv12(logits, classes, in_h, in_w, frame, chroma_offset, pitch, width, height, palette, keep,
                         alpha, class_map, out, out_chroma_offset, out_pitch);
}

// Logits as IEEE binary16 bit patterns, widened exactly to f32.
extern "C" __global__ void fc_argmax_blend_nv12_f16(const unsigned short *logits, unsigned int classes,
                                                    unsigned int in_h, unsigned int in_w,
                                                    const unsigned char *frame, unsigned long long chroma_offset,
                                                    unsigned int pitch, unsigned int width, unsigned int height,
                                                    const unsigned char *palette, float keep, float alpha,
                                                    unsigned char *class_map, unsigned char *out,
                                                    unsigned long long out_chroma_offset, unsigned int out_pitch) {
    fc_argmax_blend_nv12(logits, classes, in_h, in_w, frame, chroma_offset, pitch, width, height, palette, keep,
                         alpha, class_map, out, out_chroma_offset, out_pitch);
}
