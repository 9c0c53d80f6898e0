/* Helpers shared by the C test programs (pjrt_smoke.c, pjrt_features.c, pjrt_struct_sizes.c,
 * pjrt_fuzz.c): checks that stop with a message, argument structs with struct_size set,
 * errors, events, reading files, loading the library, and transfers of the 2x3 f32 arrays the
 * smoke and feature programs use. Header-only: each program is one translation unit.
 * A failed CHECK prints its message and exits with status 1; a program that wants otherwise
 * defines CHECK_FAILED() before including this (pjrt_fuzz aborts, so that its signal handler
 * names the sequence that failed). */
#ifndef XLA_METAL_TESTS_C_PJRT_HELPERS_H_
#define XLA_METAL_TESTS_C_PJRT_HELPERS_H_

#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../xla_metal/pjrt/pjrt_c_api.h"

/* Set by the program: its name for messages, and the table under test. */
static const char* program_name;
static const PJRT_Api* api;

#ifndef CHECK_FAILED
#define CHECK_FAILED() exit(1)
#endif
#define CHECK(condition, ...)                                   \
  do {                                                          \
    if (!(condition)) {                                         \
      printf("%s: FAILED (line %d): ", program_name, __LINE__); \
      printf(__VA_ARGS__);                                      \
      printf("\n");                                             \
      fflush(stdout);                                           \
      CHECK_FAILED();                                           \
    }                                                           \
  } while (0)

/* Declares `name` of type `type`, zeroed, with struct_size set for this ABI version. */
#define ARGS(type, name)          \
  type name;                      \
  memset(&name, 0, sizeof name);  \
  name.struct_size = type##_STRUCT_SIZE

static inline void error_text(PJRT_Error* error, char* out, size_t out_size) {
  ARGS(PJRT_Error_Message_Args, message);
  message.error = error;
  api->PJRT_Error_Message(&message);
  snprintf(out, out_size, "%.*s", (int)message.message_size, message.message);
}

static inline PJRT_Error_Code error_code(PJRT_Error* error) {
  ARGS(PJRT_Error_GetCode_Args, get_code);
  get_code.error = error;
  PJRT_Error* failed = api->PJRT_Error_GetCode(&get_code);
  CHECK(failed == NULL, "PJRT_Error_GetCode failed");
  return get_code.code;
}

static inline void destroy_error(PJRT_Error* error) {
  ARGS(PJRT_Error_Destroy_Args, destroy);
  destroy.error = error;
  api->PJRT_Error_Destroy(&destroy);
}

/* Exits with the error's text unless `error` is NULL. */
static inline void expect_ok(PJRT_Error* error, const char* what) {
  if (error == NULL) return;
  char text[2048];
  error_text(error, text, sizeof text);
  printf("%s: FAILED: %s: %s\n", program_name, what, text);
  exit(1);
}

/* Checks `error` is set with a message (containing `needle` if given); returns its code. */
static inline PJRT_Error_Code expect_error(PJRT_Error* error, const char* what,
                                           const char* needle) {
  CHECK(error != NULL, "%s: expected an error, got success", what);
  char text[2048];
  error_text(error, text, sizeof text);
  PJRT_Error_Code code = error_code(error);
  destroy_error(error);
  CHECK(text[0] != '\0', "%s: the error has no message", what);
  CHECK(needle == NULL || strstr(text, needle) != NULL, "%s: message '%s' lacks '%s'", what,
        text, needle);
  printf("  %s -> error %d: %.120s\n", what, (int)code, text);
  return code;
}

static inline void await_and_destroy(PJRT_Event* event, const char* what) {
  CHECK(event != NULL, "%s: no event", what);
  ARGS(PJRT_Event_Await_Args, await);
  await.event = event;
  expect_ok(api->PJRT_Event_Await(&await), what);
  ARGS(PJRT_Event_Destroy_Args, destroy);
  destroy.event = event;
  expect_ok(api->PJRT_Event_Destroy(&destroy), "PJRT_Event_Destroy");
}

static inline void destroy_buffer(PJRT_Buffer* buffer) {
  ARGS(PJRT_Buffer_Destroy_Args, destroy);
  destroy.buffer = buffer;
  expect_ok(api->PJRT_Buffer_Destroy(&destroy), "PJRT_Buffer_Destroy");
}

/* The whole file at `path`, in memory from malloc. */
static inline char* read_file(const char* path, size_t* size) {
  FILE* file = fopen(path, "rb");
  CHECK(file != NULL, "cannot open %s", path);
  fseek(file, 0, SEEK_END);
  long length = ftell(file);
  fseek(file, 0, SEEK_SET);
  char* data = malloc(length > 0 ? (size_t)length : 1);
  CHECK(data != NULL && fread(data, 1, (size_t)length, file) == (size_t)length, "cannot read %s",
        path);
  fclose(file);
  *size = (size_t)length;
  return data;
}

static const int64_t kDims[2] = {2, 3};  /* the shape of every test array */

/* A 2x3 f32 buffer of the host data at `values`, laid out with `byte_strides` (NULL: dense). */
static inline PJRT_Buffer* buffer_from_host(PJRT_Client* client, PJRT_Device* device,
                                            const float* values, const int64_t* byte_strides) {
  ARGS(PJRT_Client_BufferFromHostBuffer_Args, from_host);
  from_host.client = client;
  from_host.data = values;
  from_host.type = PJRT_Buffer_Type_F32;
  from_host.dims = kDims;
  from_host.num_dims = 2;
  from_host.byte_strides = byte_strides;
  from_host.num_byte_strides = byte_strides != NULL ? 2 : 0;
  from_host.host_buffer_semantics = PJRT_HostBufferSemantics_kImmutableOnlyDuringCall;
  from_host.device = device;
  expect_ok(api->PJRT_Client_BufferFromHostBuffer(&from_host), "BufferFromHostBuffer");
  await_and_destroy(from_host.done_with_host_buffer, "done_with_host_buffer");
  return from_host.buffer;
}

/* Copies a 2x3 f32 buffer to `out`, in the layout `host_layout` (NULL: row-major). */
static inline void to_host(PJRT_Buffer* buffer, PJRT_Buffer_MemoryLayout* host_layout,
                           float out[6]) {
  ARGS(PJRT_Buffer_ToHostBuffer_Args, size_query);
  size_query.src = buffer;
  size_query.host_layout = host_layout;
  expect_ok(api->PJRT_Buffer_ToHostBuffer(&size_query), "ToHostBuffer (size query)");
  CHECK(size_query.dst_size == 6 * sizeof(float), "ToHostBuffer wants %zu bytes",
        size_query.dst_size);
  ARGS(PJRT_Buffer_ToHostBuffer_Args, copy);
  copy.src = buffer;
  copy.host_layout = host_layout;
  copy.dst = out;
  copy.dst_size = 6 * sizeof(float);
  expect_ok(api->PJRT_Buffer_ToHostBuffer(&copy), "ToHostBuffer");
  await_and_destroy(copy.event, "ToHostBuffer event");
}

/* Runs `loaded` on (a, b); returns its one output. */
static inline PJRT_Buffer* execute(PJRT_LoadedExecutable* loaded, PJRT_Buffer* a,
                                   PJRT_Buffer* b, PJRT_Error** error) {
  PJRT_Buffer* arguments[2] = {a, b};
  PJRT_Buffer* const* argument_lists[1] = {arguments};
  PJRT_Buffer* outputs[1] = {NULL};
  PJRT_Buffer** output_lists[1] = {outputs};
  PJRT_Event* complete[1] = {NULL};
  ARGS(PJRT_ExecuteOptions, options);
  ARGS(PJRT_LoadedExecutable_Execute_Args, run);
  run.executable = loaded;
  run.options = &options;
  run.argument_lists = argument_lists;
  run.num_devices = 1;
  run.num_args = 2;
  run.output_lists = output_lists;
  run.device_complete_events = complete;
  *error = api->PJRT_LoadedExecutable_Execute(&run);
  if (*error != NULL) return NULL;
  await_and_destroy(complete[0], "device_complete_event");
  return outputs[0];
}

static inline void check_sum(PJRT_Buffer* sum, const float* a, const float* b) {
  ARGS(PJRT_Buffer_ElementType_Args, type);
  type.buffer = sum;
  expect_ok(api->PJRT_Buffer_ElementType(&type), "Buffer_ElementType");
  CHECK(type.type == PJRT_Buffer_Type_F32, "output type %d", (int)type.type);
  ARGS(PJRT_Buffer_Dimensions_Args, dims);
  dims.buffer = sum;
  expect_ok(api->PJRT_Buffer_Dimensions(&dims), "Buffer_Dimensions");
  CHECK(dims.num_dims == 2 && dims.dims[0] == 2 && dims.dims[1] == 3, "output dims");
  float values[6];
  to_host(sum, NULL, values);
  for (int i = 0; i < 6; ++i) CHECK(values[i] == a[i] + b[i], "sum[%d] = %g", i, values[i]);
}

/* Loads the library at `path` and returns its PJRT_Api, after checking the version. */
static inline const PJRT_Api* load_api(const char* path) {
  void* library = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  CHECK(library != NULL, "dlopen: %s", dlerror());
  const PJRT_Api* (*get_api)(void);
  *(void**)(&get_api) = dlsym(library, "GetPjrtApi");
  CHECK(get_api != NULL, "no GetPjrtApi");
  return get_api();
}

#endif  /* XLA_METAL_TESTS_C_PJRT_HELPERS_H_ */
