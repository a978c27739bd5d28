/* tttc.h: the C ABI of libtttc, for language bindings (the Python package calls it through ctypes).
 *
 * Why a C ABI: it has no C++ or Python types in it, so one libtttc serves every Python and
 * PyTorch version (no build against torch headers, no pybind/nanobind ABI tags). Tensors cross it
 * as raw pointers with shapes, strides (in elements) and a dtype code; streams as CUstream handles.
 *
 * Errors: every function returning int returns TTTC_OK (0) or a code below; tttc_last_error()
 * then holds the message of the calling thread's last failure (argument errors name the argument).
 * Handles: a tttc_spec lives until tttc_spec_free; a tttc_kernel lives as long as the process (it
 * is owned by the runtime's kernel map) and must not be freed.
 */
#ifndef TTTC_C_API_H
#define TTTC_C_API_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
  TTTC_OK = 0,
  TTTC_ERROR = 1,           /* anything else (message in tttc_last_error) */
  TTTC_INVALID = 2,         /* bad argument or invalid spec */
  TTTC_COMPILE_ERROR = 3,   /* NVRTC rejected the generated source */
  TTTC_NO_GPU = 4,          /* no driver or no GPU */
  TTTC_CUDA_ERROR = 5       /* a CUDA driver call failed */
};

/* dtype codes (ttt::DType order). TTTC_I32: index tensors only (decode slots and positions). */
enum { TTTC_F32 = 0, TTTC_F16 = 1, TTTC_BF16 = 2, TTTC_I32 = 3 };

typedef struct tttc_spec tttc_spec;
typedef struct tttc_kernel tttc_kernel;

/* One device tensor: all fields 64-bit so that the struct has no padding. */
typedef struct {
  void* data;
  int64_t dtype; /* TTTC_F32, TTTC_F16, TTTC_BF16 */
  int64_t ndim;  /* 1..4 */
  int64_t shape[4];
  int64_t strides[4]; /* in elements */
} tttc_tensor;

/* Order of the tensors passed to tttc_kernel_forward / tttc_kernel_backward (see runtime/tensor.hpp
 * ForwardArgs and BackwardArgs for shapes). A tensor with data == NULL is "absent" (only allowed
 * for dstate_final). */
enum {
  TTTC_FWD_Q, TTTC_FWD_K, TTTC_FWD_V, TTTC_FWD_LR, TTTC_FWD_TAU, TTTC_FWD_GAMMA, TTTC_FWD_BETA,
  TTTC_FWD_STATE0, TTTC_FWD_OUT, TTTC_FWD_STATE_FINAL, TTTC_FWD_CHECKPOINTS, TTTC_FWD_COUNT
};
enum {
  TTTC_BWD_Q, TTTC_BWD_K, TTTC_BWD_V, TTTC_BWD_LR, TTTC_BWD_TAU, TTTC_BWD_GAMMA, TTTC_BWD_BETA,
  TTTC_BWD_CHECKPOINTS, TTTC_BWD_DOUT, TTTC_BWD_DSTATE_FINAL, TTTC_BWD_DQ, TTTC_BWD_DK, TTTC_BWD_DV,
  TTTC_BWD_DLR, TTTC_BWD_DTAU, TTTC_BWD_DGAMMA, TTTC_BWD_DBETA, TTTC_BWD_DSTATE0, TTTC_BWD_COUNT
};

/* Order of the tensors passed to tttc_kernel_prefill / tttc_kernel_decode (docs/decode.md and
 * runtime/tensor.hpp PrefillArgs, DecodeArgs): slots i32 [B]; theta, accum f32 [N, H, S] and
 * pos i32 [N, H] form the state pool. */
enum {
  TTTC_PRE_Q, TTTC_PRE_K, TTTC_PRE_V, TTTC_PRE_LR, TTTC_PRE_TAU, TTTC_PRE_GAMMA, TTTC_PRE_BETA,
  TTTC_PRE_STATE0, TTTC_PRE_SLOTS, TTTC_PRE_THETA, TTTC_PRE_ACCUM, TTTC_PRE_POS, TTTC_PRE_OUT,
  TTTC_PRE_COUNT
};
enum {
  TTTC_DEC_Q, TTTC_DEC_K, TTTC_DEC_V, TTTC_DEC_LR, TTTC_DEC_TAU, TTTC_DEC_GAMMA, TTTC_DEC_BETA,
  TTTC_DEC_SLOTS, TTTC_DEC_THETA, TTTC_DEC_ACCUM, TTTC_DEC_POS, TTTC_DEC_OUT, TTTC_DEC_COUNT
};

typedef struct {
  int64_t checkpoints;
  int64_t state_bytes;
  int64_t checkpoint_bytes;
  int64_t forward_workspace_bytes;
  int64_t backward_workspace_bytes;
  int64_t forward_total_bytes;
} tttc_memory_plan;

const char* tttc_version(void);
/* The calling thread's last error message ("" when none). */
const char* tttc_last_error(void);
/* 1 when a driver and a GPU are present; else 0 and *reason (static text) says why. */
int tttc_gpu_available(const char** reason);

/* Specs. `origin` names the text in errors (a file name or "<string>"). */
int tttc_spec_parse(const char* text, const char* origin, tttc_spec** out);
int tttc_spec_load_file(const char* path, tttc_spec** out);
void tttc_spec_free(tttc_spec* spec);
/* JSON describing the spec: name, canonical, signature, head_dim, mini_batch, checkpoint_group,
 * causal, dtype, model, depth, widths, state_floats, state_layout [{name, shape, offset}],
 * passes. Owned by the spec. */
const char* tttc_spec_info(const tttc_spec* spec);

/* The CPU reference (double precision, contiguous row-major arrays, f = head_dim, S = state
 * floats, C = checkpoints for T):
 *   q, k, v, out: [B, H, T, f]; lr: [B, H, T]; tau: [K]; gamma, beta: [H, f];
 *   state0: [H, S] (per_batch_state == 0) or [B, H, S]; state_final: [B, H, S];
 *   checkpoints: [B, H, C, S] or NULL (not written). */
int tttc_reference_forward(const tttc_spec* spec, int64_t B, int64_t H, int64_t T,
                           int per_batch_state, const double* q, const double* k, const double* v,
                           const double* lr, const double* tau, const double* gamma,
                           const double* beta, const double* state0, double* out,
                           double* state_final, double* checkpoints);
/* The outer backward from the initial state in checkpoint 0 of `checkpoints` [B, H, C, S]
 * (the reference recomputes the rest). dstate_final [B, H, S] may be NULL (zero). dstate0 is
 * [H, S] summed over the batch when shared_dstate0, else [B, H, S]. dtau [K], dgamma and dbeta
 * [H, f] are summed in a fixed order (deterministic). */
int tttc_reference_backward(const tttc_spec* spec, int64_t B, int64_t H, int64_t T,
                            const double* q, const double* k, const double* v, const double* lr,
                            const double* tau, const double* gamma, const double* beta,
                            const double* checkpoints, int64_t C, const double* dout,
                            const double* dstate_final, int shared_dstate0, double* dq, double* dk,
                            double* dv, double* dlr, double* dtau, double* dgamma, double* dbeta,
                            double* dstate0);

/* GPU kernels: generated, compiled (or loaded from the kernel cache) and loaded on CUDA device
 * `device` once per (spec, device); later calls return the same handle. */
int tttc_kernel_get(tttc_spec* spec, int device, tttc_kernel** out);
/* The same for launches of B*H = launch_heads (0: unknown, as tttc_kernel_get): schedule
 * choices that depend on the launch size (the query split for few heads) are made for it; one
 * handle per (spec, device, launch_heads). */
int tttc_kernel_get_for_launch(tttc_spec* spec, int device, int64_t launch_heads,
                               tttc_kernel** out);
int tttc_kernel_memory(const tttc_kernel* kernel, int64_t B, int64_t H, int64_t T,
                       tttc_memory_plan* out);
/* Validate and enqueue on `stream` (a CUstream / cudaStream_t of the kernel's device; NULL = the
 * legacy default stream). `tensors` holds TTTC_FWD_COUNT (TTTC_BWD_COUNT) entries in the order
 * above. With workspace == NULL the kernel uses its own buffer (allocating: not for CUDA-graph
 * capture). The caller's current context is restored. */
int tttc_kernel_forward(const tttc_kernel* kernel, const tttc_tensor* tensors, void* workspace,
                        uint64_t workspace_bytes, void* stream);
int tttc_kernel_backward(const tttc_kernel* kernel, const tttc_tensor* tensors, void* workspace,
                         uint64_t workspace_bytes, void* stream);

/* Decode (docs/decode.md; causal specs). The CPU reference's token-by-token decode advances B
 * rows by T tokens from their decode state, updated in place: theta and accum [B, H, S], pos
 * [B, H] (int32, 0 <= pos < K). Its prefill starts from state0 ([H, S], or [B, H, S] when
 * per_batch_state) and writes the decode state after T tokens. out: [B, H, T, f]. */
int tttc_reference_decode(const tttc_spec* spec, int64_t B, int64_t H, int64_t T,
                          const double* q, const double* k, const double* v, const double* lr,
                          const double* tau, const double* gamma, const double* beta,
                          double* theta, double* accum, int32_t* pos, double* out);
int tttc_reference_prefill(const tttc_spec* spec, int64_t B, int64_t H, int64_t T,
                           int per_batch_state, const double* q, const double* k, const double* v,
                           const double* lr, const double* tau, const double* gamma,
                           const double* beta, const double* state0, double* out, double* theta,
                           double* accum, int32_t* pos);
/* Bytes of a decode state pool of `slots` slots for H heads. */
int tttc_decode_state_bytes(const tttc_spec* spec, int64_t slots, int64_t H, int64_t* out);
/* The workspace a prefill of (B, H, T) needs when the caller passes one (0: none). */
int tttc_kernel_prefill_workspace(const tttc_kernel* kernel, int64_t B, int64_t H, int64_t T,
                                  int64_t* out);
/* GPU prefill (TTTC_PRE_COUNT tensors) and decode (TTTC_DEC_COUNT tensors). The kernel's spec
 * must name the "decode" pass. decode allocates nothing and never synchronises: it may be
 * captured in a CUDA graph. */
int tttc_kernel_prefill(const tttc_kernel* kernel, const tttc_tensor* tensors, void* workspace,
                        uint64_t workspace_bytes, void* stream);
int tttc_kernel_decode(const tttc_kernel* kernel, const tttc_tensor* tensors, void* stream);

#ifdef __cplusplus
}
#endif

#endif /* TTTC_C_API_H */
