/*
 * Input of `just bindings` for src/nvenc.rs: NVIDIA's NVENC API (nvEncodeAPI.h, API 11.1) as
 * Debian's libffmpeg-nvenc-dev ships it, plus the four CUDA driver entry points an NVENC
 * session on a CUDA device needs, from the same package's dynlink_cuda.h.
 */
#include <ffnvcodec/nvEncodeAPI.h>
#include <ffnvcodec/dynlink_cuda.h>

/*
 * nvEncodeAPI.h declares the library's two exports as functions; they are looked up at run time,
 * so the bindings need them as function (pointer) types instead.
 */
typedef NVENCSTATUS NVENCAPI tNvEncodeAPICreateInstance(NV_ENCODE_API_FUNCTION_LIST *functionList);
typedef NVENCSTATUS NVENCAPI tNvEncodeAPIGetMaxSupportedVersion(uint32_t *version);
