// The contract between the C++ PJRT surface (plugin.cc) and the Python runtime
// (xla_metal/bridge.py). This header is the single source of truth for the layout of every
// struct below; bridge.py mirrors it with ctypes and a test checks the two agree.
//
// Why a table of ctypes callbacks rather than the CPython API: the library must load in
// processes with no Python (a C frontend, EXLA) and must not link libpython; ctypes takes
// the GIL for us on every call, so no thread here ever touches Python without it.
#ifndef XLA_METAL_PJRT_BRIDGE_H_
#define XLA_METAL_PJRT_BRIDGE_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define XM_BRIDGE_VERSION 4

// Every call returns NULL on success. On failure it returns "<code>:<message>" where code is
// a PJRT_Error_Code in decimal; the text stays valid until the next call on the same thread,
// so the caller copies it at once.
typedef const char* (*XmCall)(void* args);

typedef struct {
  int64_t stablehlo_current[3];  // out: major, minor, patch of the installed jaxlib
  int64_t stablehlo_minimum[3];  // out
} XmPluginAttributesArgs;

typedef struct {
  int64_t client;                // out: handle of the Python client
  const char* platform_version;  // out: e.g. "xla-metal 0.1.0 / mlx 0.32.4"
  const char* device_kind;       // out: e.g. "MLX gpu" or "MLX cpu"
} XmClientCreateArgs;

// Releases one handle (client or executable) owned by Python.
typedef struct {
  int64_t handle;
} XmReleaseArgs;

// Releases buffer handles owned by Python, several at once (one GIL round trip for all).
typedef struct {
  const int64_t* handles;
  int64_t count;
} XmReleaseManyArgs;

typedef struct {
  int64_t client;
  const char* code;     // the program bytes (format "mlir": a StableHLO portable artifact)
  size_t code_size;
  const char* format;   // not NUL-terminated
  size_t format_size;
  const char* options;  // serialized CompileOptionsProto
  size_t options_size;
  int64_t executable;           // out
  const char* name;             // out
  int32_t num_args;             // out
  int32_t num_outputs;          // out
  // out: for each output, [pjrt_buffer_type, rank, dim_0 .. dim_{rank-1}] back to back.
  const int64_t* output_meta;
  size_t output_meta_size;      // out: number of int64 in output_meta
  // out: the same for each argument; Execute checks its buffers against them.
  const int64_t* input_meta;
  size_t input_meta_size;
  const char* fingerprint;      // out: NUL-terminated, deterministic for the same program
  // out: NULL, or num_args flags: the program lets argument i's memory serve its results
  // (JAX's donate_argnums); Execute then gives such arguments up.
  const uint8_t* donatable;
  // out: NULL (every output in memory 'device'), or num_outputs memory ids (MemoryId in
  // internal.h: 0 device, 1 pinned_host, 2 unpinned_host): the memory kind of each result.
  const uint8_t* output_memories;
} XmCompileArgs;

typedef struct {
  int64_t executable;
  const int64_t* args;          // buffer handles, num_args of them
  int32_t num_args;
  const uint8_t* donated;       // NULL, or one flag per argument: the caller gives it up
  // out: the handle of the first output; the others follow it (first_output + i is output
  // i's), so a step returning a hundred arrays hands back one number, not a hundred.
  int64_t first_output;
  int32_t num_outputs;
  // out: 0 when the outputs are computed already; else the job that await_execution waits
  // for (the outputs are scheduled on MLX, and C++ completes their events after it).
  int64_t completion;
} XmExecuteArgs;

typedef struct {
  int64_t job;                  // a completion from execute; awaited once
} XmAwaitExecutionArgs;

typedef struct {
  int64_t client;
  const void* data;
  int32_t type;                 // PJRT_Buffer_Type
  int32_t rank;
  const int64_t* dims;
  const int64_t* byte_strides;  // always NULL: C++ hands over dense row-major data
  int64_t buffer;               // out
} XmFromHostArgs;

typedef struct {
  int64_t buffer;
  void* dst;
  int64_t dst_size;
  const int64_t* minor_to_major;  // NULL: dense row-major; else rank entries
  int32_t rank;
} XmToHostArgs;

typedef struct {
  int64_t executable;
  const char* data;             // out: valid until the next call on this thread
  size_t size;                  // out
} XmSerializeArgs;

typedef struct {
  int64_t executable;
  const char* text;             // out: valid until the next call on this thread
  size_t size;                  // out
} XmProgramTextArgs;

typedef struct {
  int64_t client;
  int64_t bytes_in_use;         // out: MLX's active memory
  int64_t peak_bytes_in_use;    // out
  int64_t bytes_limit;          // out: MLX's memory limit
} XmMemoryStatsArgs;

typedef struct {
  int64_t executable;
  int32_t count;                // out: number of figures
  const char* const* names;     // out: e.g. "flops"; valid until the next call on this thread
  const double* values;         // out
} XmCostAnalysisArgs;

typedef struct {
  int64_t executable;
  int64_t argument_size;        // out: bytes, from the program
  int64_t output_size;          // out
  int64_t alias_size;           // out: donatable arguments
  int64_t temp_size;            // out: peak of live intermediates, in program order
} XmMemoryAnalysisArgs;

// A second handle on the same (immutable) array: a copy on the same device.
typedef struct {
  int64_t buffer;
  int64_t copy;                 // out
} XmBufferCopyArgs;

typedef struct {
  int64_t buffer;
  uint64_t address;             // out: dense row-major data, valid while the handle lives
} XmBufferPointerArgs;

// Filled by Python in attach(); C++ fills `version` and the host functions first.
typedef struct {
  uint32_t version;
  // Called by Python (atexit) when the interpreter is going away: after it, C++ never calls
  // Python again and Destroy calls only free C++ memory.
  void (*python_exiting)(void);
  XmCall plugin_attributes;     // XmPluginAttributesArgs
  XmCall client_create;         // XmClientCreateArgs
  XmCall client_destroy;        // XmReleaseArgs
  XmCall compile;               // XmCompileArgs
  XmCall deserialize;           // XmCompileArgs, code = a blob from serialize
  XmCall executable_release;    // XmReleaseArgs
  XmCall serialize;             // XmSerializeArgs
  XmCall program_text;          // XmProgramTextArgs
  XmCall execute;               // XmExecuteArgs
  XmCall buffer_from_host;      // XmFromHostArgs
  XmCall buffer_to_host;        // XmToHostArgs
  XmCall buffers_release;       // XmReleaseManyArgs
  XmCall memory_stats;          // XmMemoryStatsArgs
  XmCall cost_analysis;         // XmCostAnalysisArgs
  XmCall memory_analysis;       // XmMemoryAnalysisArgs
  XmCall buffer_copy;           // XmBufferCopyArgs
  XmCall buffer_pointer;        // XmBufferPointerArgs
  XmCall await_execution;       // XmAwaitExecutionArgs: blocks until the job's MLX work is done
} XmBridge;

#ifdef __cplusplus
}
#endif

#endif  // XLA_METAL_PJRT_BRIDGE_H_
