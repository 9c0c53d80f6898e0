/* Version skew from C: every argument struct is read by its struct_size. A framework built
 * against an older PJRT header passes smaller structs, a newer one larger structs.
 *
 *   cc -std=c11 -fsanitize=address,undefined -o pjrt_struct_sizes \
 *      tests/c/pjrt_struct_sizes.c -ldl
 *   ./pjrt_struct_sizes LIBRARY ARTIFACT      (ARTIFACT: f32[2,3] + f32[2,3], as pjrt_smoke)
 *
 * Each struct is copied into a heap block of exactly struct_size bytes, so under
 * AddressSanitizer any read or write past what the caller declared is reported. For every
 * entry point and every size from the bare header to 64 bytes past ours: the call returns
 * (an error or success), an error when even its first field is missing, and with our full
 * size or more it behaves as with ours. Nested structs (PJRT_Program, PJRT_ExecuteOptions,
 * PJRT_Buffer_MemoryLayout) get the same treatment.
 * Prints "pjrt_struct_sizes: OK <calls> calls" and exits 0.
 */
#include "pjrt_helpers.h"

static long calls;

#define HEAD_SIZE (sizeof(size_t) + sizeof(void*))
#define EXTRA 64

/* Returns the error's code (0: success) and destroys it. */
static int code_of(PJRT_Error* error) {
  calls++;
  if (error == NULL) return 0;
  ARGS(PJRT_Error_GetCode_Args, get_code);
  get_code.error = error;
  CHECK(api->PJRT_Error_GetCode(&get_code) == NULL, "GetCode");
  ARGS(PJRT_Error_Message_Args, message);
  message.error = error;
  api->PJRT_Error_Message(&message);
  CHECK(message.message_size > 0, "an error without a message");
  ARGS(PJRT_Error_Destroy_Args, destroy);
  destroy.error = error;
  api->PJRT_Error_Destroy(&destroy);
  return (int)get_code.code;
}

typedef PJRT_Error* (*Entry)(void* args);
typedef enum { NONE, CLIENT, DESCRIPTION, DEVICE, MEMORY, BUFFER, EXECUTABLE, LOADED, EVENT,
               ERROR } Handle;
typedef struct {
  const char* name;
  size_t slot; /* offset of the function in PJRT_Api */
  Entry entry;
  size_t size; /* NAME_STRUCT_SIZE of our header */
  Handle handle; /* what the first field after the head points to */
} EntryPoint;
static void* handles[ERROR + 1];

#define ENTRY(name, handle) {#name, offsetof(PJRT_Api, name), NULL, name##_Args_STRUCT_SIZE, handle}
static EntryPoint entries[] = {
    ENTRY(PJRT_Error_GetCode, ERROR), ENTRY(PJRT_Plugin_Initialize, NONE),
    ENTRY(PJRT_Event_IsReady, EVENT), ENTRY(PJRT_Event_Error, EVENT),
    ENTRY(PJRT_Event_Await, EVENT), ENTRY(PJRT_Event_OnReady, EVENT),
    ENTRY(PJRT_Client_PlatformName, CLIENT), ENTRY(PJRT_Client_ProcessIndex, CLIENT),
    ENTRY(PJRT_Client_PlatformVersion, CLIENT), ENTRY(PJRT_Client_Devices, CLIENT),
    ENTRY(PJRT_Client_AddressableDevices, CLIENT), ENTRY(PJRT_Client_LookupDevice, CLIENT),
    ENTRY(PJRT_Client_LookupAddressableDevice, CLIENT),
    ENTRY(PJRT_Client_AddressableMemories, CLIENT), ENTRY(PJRT_Client_Compile, CLIENT),
    ENTRY(PJRT_Client_DefaultDeviceAssignment, CLIENT),
    ENTRY(PJRT_Client_BufferFromHostBuffer, CLIENT),
    ENTRY(PJRT_Executable_DeserializeAndLoad, CLIENT),
    ENTRY(PJRT_DeviceDescription_Id, DESCRIPTION),
    ENTRY(PJRT_DeviceDescription_ProcessIndex, DESCRIPTION),
    ENTRY(PJRT_DeviceDescription_Attributes, DESCRIPTION),
    ENTRY(PJRT_DeviceDescription_Kind, DESCRIPTION),
    ENTRY(PJRT_DeviceDescription_DebugString, DESCRIPTION),
    ENTRY(PJRT_DeviceDescription_ToString, DESCRIPTION),
    ENTRY(PJRT_Device_GetDescription, DEVICE), ENTRY(PJRT_Device_IsAddressable, DEVICE),
    ENTRY(PJRT_Device_LocalHardwareId, DEVICE), ENTRY(PJRT_Device_AddressableMemories, DEVICE),
    ENTRY(PJRT_Device_DefaultMemory, DEVICE), ENTRY(PJRT_Device_MemoryStats, DEVICE),
    ENTRY(PJRT_Memory_Id, MEMORY), ENTRY(PJRT_Memory_Kind, MEMORY),
    ENTRY(PJRT_Memory_Kind_Id, MEMORY), ENTRY(PJRT_Memory_DebugString, MEMORY),
    ENTRY(PJRT_Memory_ToString, MEMORY), ENTRY(PJRT_Memory_AddressableByDevices, MEMORY),
    ENTRY(PJRT_Buffer_ElementType, BUFFER), ENTRY(PJRT_Buffer_Dimensions, BUFFER),
    ENTRY(PJRT_Buffer_UnpaddedDimensions, BUFFER),
    ENTRY(PJRT_Buffer_DynamicDimensionIndices, BUFFER),
    ENTRY(PJRT_Buffer_GetMemoryLayout, BUFFER), ENTRY(PJRT_Buffer_OnDeviceSizeInBytes, BUFFER),
    ENTRY(PJRT_Buffer_Device, BUFFER), ENTRY(PJRT_Buffer_Memory, BUFFER),
    ENTRY(PJRT_Buffer_IsDeleted, BUFFER), ENTRY(PJRT_Buffer_IsOnCpu, BUFFER),
    ENTRY(PJRT_Buffer_ReadyEvent, BUFFER), ENTRY(PJRT_Buffer_ToHostBuffer, BUFFER),
    ENTRY(PJRT_Buffer_IncreaseExternalReferenceCount, BUFFER),
    ENTRY(PJRT_Buffer_DecreaseExternalReferenceCount, BUFFER),
    ENTRY(PJRT_Executable_Name, EXECUTABLE), ENTRY(PJRT_Executable_NumReplicas, EXECUTABLE),
    ENTRY(PJRT_Executable_NumPartitions, EXECUTABLE),
    ENTRY(PJRT_Executable_NumOutputs, EXECUTABLE),
    ENTRY(PJRT_Executable_SizeOfGeneratedCodeInBytes, EXECUTABLE),
    ENTRY(PJRT_Executable_GetCostAnalysis, EXECUTABLE),
    ENTRY(PJRT_Executable_OutputMemoryKinds, EXECUTABLE),
    ENTRY(PJRT_Executable_OutputElementTypes, EXECUTABLE),
    ENTRY(PJRT_Executable_OutputDimensions, EXECUTABLE),
    ENTRY(PJRT_Executable_OptimizedProgram, EXECUTABLE),
    ENTRY(PJRT_Executable_Fingerprint, EXECUTABLE), ENTRY(PJRT_Executable_Serialize, EXECUTABLE),
    ENTRY(PJRT_LoadedExecutable_GetExecutable, LOADED),
    ENTRY(PJRT_LoadedExecutable_AddressableDevices, LOADED),
    ENTRY(PJRT_LoadedExecutable_IsDeleted, LOADED),
    ENTRY(PJRT_LoadedExecutable_Fingerprint, LOADED),
    ENTRY(PJRT_LoadedExecutable_Execute, LOADED),
};

/* The function of each entry: its slot in the table, by offset. */
static void fill_entries(void) {
  for (size_t i = 0; i < sizeof entries / sizeof entries[0]; ++i) {
    memcpy(&entries[i].entry, (const char*)api + entries[i].slot, sizeof(Entry));
    CHECK(entries[i].entry != NULL, "no function for %s", entries[i].name);
  }
}

/* Calls `entry` with its args in a heap block of exactly `size` bytes: the head, then the
 * handle, then zeros. Returns the error code (0: success). */
static int call_with_size(const EntryPoint* e, size_t size) {
  unsigned char* block = calloc(1, size);
  memcpy(block, &size, sizeof size);
  if (e->handle != NONE && size >= HEAD_SIZE + sizeof(void*)) {
    memcpy(block + HEAD_SIZE, &handles[e->handle], sizeof(void*));
  }
  int code = code_of(e->entry(block));
  free(block);
  return code;
}

static void every_entry_at_every_size(void) {
  for (size_t i = 0; i < sizeof entries / sizeof entries[0]; ++i) {
    const EntryPoint* e = &entries[i];
    for (size_t size = sizeof(size_t); size <= e->size + EXTRA; ++size) {
      int code = call_with_size(e, size);
      /* Only the head: every entry needs at least one more field. */
      if (size <= HEAD_SIZE && e->handle != NONE) {
        CHECK(code == PJRT_Error_Code_INVALID_ARGUMENT, "%s accepted struct_size %zu", e->name,
              size);
      }
    }
    /* With our size or larger the answer is the same. */
    CHECK(call_with_size(e, e->size) == call_with_size(e, e->size + EXTRA),
          "%s answers differently with a larger struct", e->name);
  }
}

/* ------------------------------------------------------------------------- nested structs */

static PJRT_LoadedExecutable* compile_with_program_size(PJRT_Client* client, const char* code,
                                                        size_t code_size, size_t size) {
  PJRT_Program* program = calloc(1, size);
  ARGS(PJRT_Program, full);
  full.code = (char*)code;
  full.code_size = code_size;
  full.format = "mlir";
  full.format_size = 4;
  memcpy(program, &full, size < sizeof full ? size : sizeof full);
  program->struct_size = size;
  ARGS(PJRT_Client_Compile_Args, compile);
  compile.client = client;
  compile.program = program;
  int code_ = code_of(api->PJRT_Client_Compile(&compile));
  free(program);
  if (size < PJRT_Program_STRUCT_SIZE) {
    CHECK(code_ == PJRT_Error_Code_INVALID_ARGUMENT, "a %zu-byte PJRT_Program compiled", size);
  } else {
    CHECK(code_ == 0, "a %zu-byte PJRT_Program failed: %d", size, code_);
  }
  return code_ == 0 ? compile.executable : NULL;
}

static PJRT_Buffer* from_host(PJRT_Client* client, const float* values,
                              PJRT_Buffer_MemoryLayout* device_layout) {
  static const int64_t dims[2] = {2, 3};
  ARGS(PJRT_Client_BufferFromHostBuffer_Args, args);
  args.client = client;
  args.data = values;
  args.type = PJRT_Buffer_Type_F32;
  args.dims = dims;
  args.num_dims = 2;
  args.device_layout = device_layout;
  PJRT_Error* error = api->PJRT_Client_BufferFromHostBuffer(&args);
  if (code_of(error) != 0) return NULL;
  ARGS(PJRT_Event_Destroy_Args, destroy);
  destroy.event = args.done_with_host_buffer;
  code_of(api->PJRT_Event_Destroy(&destroy));
  return args.buffer;
}

/* Runs a + b with PJRT_ExecuteOptions of `size` bytes; checks the sum. */
static void execute_with_options_size(PJRT_LoadedExecutable* loaded, PJRT_Buffer* a,
                                      PJRT_Buffer* b, size_t size) {
  PJRT_ExecuteOptions* options = calloc(1, size);
  options->struct_size = size;
  PJRT_Buffer* arguments[2] = {a, b};
  PJRT_Buffer* const* argument_lists[1] = {arguments};
  PJRT_Buffer* outputs[1] = {NULL};
  PJRT_Buffer** output_lists[1] = {outputs};
  ARGS(PJRT_LoadedExecutable_Execute_Args, run);
  run.executable = loaded;
  run.options = options;
  run.argument_lists = argument_lists;
  run.num_devices = 1;
  run.num_args = 2;
  run.output_lists = output_lists;
  CHECK(code_of(api->PJRT_LoadedExecutable_Execute(&run)) == 0,
        "Execute with %zu-byte options failed", size);
  free(options);
  float sum[6];
  ARGS(PJRT_Buffer_ToHostBuffer_Args, copy);
  copy.src = outputs[0];
  copy.dst = sum;
  copy.dst_size = sizeof sum;
  CHECK(code_of(api->PJRT_Buffer_ToHostBuffer(&copy)) == 0, "ToHostBuffer");
  ARGS(PJRT_Event_Destroy_Args, destroy);
  destroy.event = copy.event;
  code_of(api->PJRT_Event_Destroy(&destroy));
  CHECK(sum[0] == 11 && sum[5] == 66, "wrong sum with %zu-byte options", size);
  destroy_buffer(outputs[0]);
}

/* A row-major host (or device) layout in a block of `size` bytes. */
/* A whole row-major layout whose struct_size fields hold `junk`: XLA's own producer of this
 * nested struct (ConvertToBufferMemoryLayoutData) never sets them, so the plugin must not read
 * them (jaxlib 0.11 hands 1 or 17 there). */
static PJRT_Buffer_MemoryLayout* layout_with_junk_size(size_t junk, const int64_t* minor_to_major) {
  PJRT_Buffer_MemoryLayout* layout = calloc(1, sizeof *layout);
  layout->type = PJRT_Buffer_MemoryLayout_Type_Tiled;
  layout->tiled.minor_to_major = minor_to_major;
  layout->tiled.minor_to_major_size = 2;
  layout->struct_size = junk;
  layout->tiled.struct_size = junk * 3;
  return layout;
}

int main(int argc, char** argv) {
  program_name = "pjrt_struct_sizes";
  CHECK(argc == 3, "usage: %s LIBRARY ARTIFACT", argv[0]);
  api = load_api(argv[1]);
  fill_entries();
  size_t code_size;
  char* code = read_file(argv[2], &code_size);

  ARGS(PJRT_Client_Create_Args, create);
  CHECK(code_of(api->PJRT_Client_Create(&create)) == 0, "Client_Create");
  PJRT_Client* client = create.client;
  ARGS(PJRT_Client_AddressableDevices_Args, devices);
  devices.client = client;
  CHECK(code_of(api->PJRT_Client_AddressableDevices(&devices)) == 0, "devices");
  PJRT_Device* device = devices.addressable_devices[0];
  ARGS(PJRT_Device_GetDescription_Args, description);
  description.device = device;
  CHECK(code_of(api->PJRT_Device_GetDescription(&description)) == 0, "description");
  ARGS(PJRT_Device_DefaultMemory_Args, memory);
  memory.device = device;
  CHECK(code_of(api->PJRT_Device_DefaultMemory(&memory)) == 0, "memory");

  /* PJRT_Program of every size; the last compile is kept. */
  PJRT_LoadedExecutable* loaded = NULL;
  for (size_t size = sizeof(size_t); size <= PJRT_Program_STRUCT_SIZE + EXTRA; ++size) {
    PJRT_LoadedExecutable* compiled = compile_with_program_size(client, code, code_size, size);
    if (compiled == NULL) continue;
    if (loaded != NULL) {
      ARGS(PJRT_LoadedExecutable_Destroy_Args, destroy);
      destroy.executable = loaded;
      code_of(api->PJRT_LoadedExecutable_Destroy(&destroy));
    }
    loaded = compiled;
  }
  CHECK(loaded != NULL, "no compile succeeded");

  const float a_values[6] = {1, 2, 3, 4, 5, 6}, b_values[6] = {10, 20, 30, 40, 50, 60};
  PJRT_Buffer* a = from_host(client, a_values, NULL);
  PJRT_Buffer* b = from_host(client, b_values, NULL);
  CHECK(a != NULL && b != NULL, "BufferFromHostBuffer");
  for (size_t size = sizeof(size_t); size <= PJRT_ExecuteOptions_STRUCT_SIZE + EXTRA; ++size) {
    execute_with_options_size(loaded, a, b, size);
  }

  const int64_t row_major[2] = {1, 0};
  for (size_t size = 0; size <= PJRT_Buffer_MemoryLayout_STRUCT_SIZE + EXTRA; ++size) {
    PJRT_Buffer_MemoryLayout* layout = layout_with_junk_size(size, row_major);
    PJRT_Buffer* buffer = from_host(client, a_values, layout);
    CHECK(buffer != NULL, "a device layout whose struct_size says %zu", size);
    destroy_buffer(buffer);
    float out[6];
    ARGS(PJRT_Buffer_ToHostBuffer_Args, copy);
    copy.src = a;
    copy.dst = out;
    copy.dst_size = sizeof out;
    copy.host_layout = layout;
    CHECK(code_of(api->PJRT_Buffer_ToHostBuffer(&copy)) == 0,
          "host layout whose struct_size says %zu refused", size);
    CHECK(out[1] == 2 && out[3] == 4, "host layout whose struct_size says %zu: wrong order", size);
    ARGS(PJRT_Event_Destroy_Args, destroy);
    destroy.event = copy.event;
    code_of(api->PJRT_Event_Destroy(&destroy));
    free(layout);
  }

  /* Every entry point at every size, with live handles. */
  ARGS(PJRT_LoadedExecutable_GetExecutable_Args, get);
  get.loaded_executable = loaded;
  CHECK(code_of(api->PJRT_LoadedExecutable_GetExecutable(&get)) == 0, "GetExecutable");
  ARGS(PJRT_Buffer_ReadyEvent_Args, ready);
  ready.buffer = a;
  CHECK(code_of(api->PJRT_Buffer_ReadyEvent(&ready)) == 0, "ReadyEvent");
  ARGS(PJRT_Client_LookupDevice_Args, lookup);
  lookup.client = client;
  lookup.id = 7;
  PJRT_Error* error = api->PJRT_Client_LookupDevice(&lookup);
  CHECK(error != NULL, "LookupDevice(7) succeeded");
  handles[CLIENT] = client;
  handles[DESCRIPTION] = description.device_description;
  handles[DEVICE] = device;
  handles[MEMORY] = memory.memory;
  handles[BUFFER] = a;
  handles[EXECUTABLE] = get.executable;
  handles[LOADED] = loaded;
  handles[EVENT] = ready.event;
  handles[ERROR] = error;
  every_entry_at_every_size();

  /* The PJRT_Plugin_Attributes quirk: its STRUCT_SIZE stops at `attributes`, yet frameworks
   * read num_attributes after it, so the plugin writes it; a caller's struct always has it. */
  ARGS(PJRT_Plugin_Attributes_Args, attributes);
  CHECK(code_of(api->PJRT_Plugin_Attributes(&attributes)) == 0, "Plugin_Attributes");
  CHECK(attributes.num_attributes == 3, "%zu plugin attributes", attributes.num_attributes);

  printf("pjrt_struct_sizes: OK %ld calls\n", calls);
  return 0;
}
