/*
 * Input of `just bindings` for src/nvdec.rs: NVIDIA's NVDEC API (cuviddec.h and nvcuvid.h, NVDEC
 * API 11.1) as Debian's libffmpeg-nvenc-dev ships them (FFmpeg's dynlink_cuviddec.h and
 * dynlink_nvcuvid.h), plus the CUDA driver entry points an NVDEC decoder on a GPU's primary
 * context needs, from the same package's dynlink_cuda.h.
 *
 * FFmpeg's copies declare every library entry point as a function type (tcuvidCreateDecoder, ...)
 * instead of a function, which is what run-time loading needs: nothing is linked.
 */
#include <ffnvcodec/dynlink_cuda.h>
#include <ffnvcodec/dynlink_nvcuvid.h>
