/* Conformance smoke test of the xla-metal PJRT plugin from plain C, with no JAX and no
 * Python in the process until the plugin starts its own.
 *
 *   cc -std=c11 -Wall -o pjrt_smoke tests/c/pjrt_smoke.c -ldl
 *   ./pjrt_smoke xla_metal/libxla_metal_pjrt.so add.mlirbc
 *
 * The artifact is a StableHLO portable artifact of
 *   func.func @main(%a: tensor<2x3xf32>, %b: tensor<2x3xf32>) -> tensor<2x3xf32> (a + b).
 * Prints "pjrt_smoke: OK" and exits 0, or says what failed and exits 1.
 */
#include "pjrt_helpers.h"

static int on_ready_calls;
static void count_on_ready(PJRT_Error* error, void* user_arg) {
  CHECK(error == NULL, "OnReady callback got an error");
  CHECK(user_arg == &on_ready_calls, "OnReady callback got the wrong user_arg");
  on_ready_calls++;
}

int main(int argc, char** argv) {
  program_name = "pjrt_smoke";
  CHECK(argc == 3, "usage: %s LIBRARY ARTIFACT", argv[0]);
  api = load_api(argv[1]);

  /* The table: version and every slot filled. */
  CHECK(api->struct_size >= PJRT_Api_STRUCT_SIZE, "PJRT_Api is %zu bytes", api->struct_size);
  CHECK(api->pjrt_api_version.major_version == PJRT_API_MAJOR &&
            api->pjrt_api_version.minor_version == PJRT_API_MINOR,
        "API version %d.%d", api->pjrt_api_version.major_version,
        api->pjrt_api_version.minor_version);
  for (size_t offset = offsetof(PJRT_Api, PJRT_Error_Destroy); offset < PJRT_Api_STRUCT_SIZE;
       offset += sizeof(void*)) {
    void* slot;
    memcpy(&slot, (const char*)api + offset, sizeof slot);
    CHECK(slot != NULL, "PJRT_Api slot at offset %zu is NULL", offset);
  }

  ARGS(PJRT_Plugin_Initialize_Args, initialize);
  expect_ok(api->PJRT_Plugin_Initialize(&initialize), "Plugin_Initialize");

  ARGS(PJRT_Plugin_Attributes_Args, attributes);
  expect_ok(api->PJRT_Plugin_Attributes(&attributes), "Plugin_Attributes");
  int seen_attributes = 0;
  for (size_t i = 0; i < attributes.num_attributes; ++i) {
    const PJRT_NamedValue* value = &attributes.attributes[i];
    if (strncmp(value->name, "xla_version", value->name_size) == 0) {
      CHECK(value->type == PJRT_NamedValue_kInt64 && value->int64_value == 2, "xla_version");
      seen_attributes++;
    } else if (strncmp(value->name, "stablehlo_current_version", value->name_size) == 0 ||
               strncmp(value->name, "stablehlo_minimum_version", value->name_size) == 0) {
      CHECK(value->type == PJRT_NamedValue_kInt64List && value->value_size == 3,
            "%.*s is not a 3-int list", (int)value->name_size, value->name);
      printf("  %.*s = %lld.%lld.%lld\n", (int)value->name_size, value->name,
             (long long)value->int64_array_value[0], (long long)value->int64_array_value[1],
             (long long)value->int64_array_value[2]);
      seen_attributes++;
    }
  }
  CHECK(seen_attributes == 3, "missing plugin attributes");

  /* Client, device, memory. */
  ARGS(PJRT_Client_Create_Args, create);
  expect_ok(api->PJRT_Client_Create(&create), "Client_Create");
  PJRT_Client* client = create.client;

  ARGS(PJRT_Client_PlatformName_Args, platform_name);
  platform_name.client = client;
  expect_ok(api->PJRT_Client_PlatformName(&platform_name), "PlatformName");
  CHECK(platform_name.platform_name_size == 5 &&
            memcmp(platform_name.platform_name, "metal", 5) == 0,
        "platform name");
  ARGS(PJRT_Client_PlatformVersion_Args, platform_version);
  platform_version.client = client;
  expect_ok(api->PJRT_Client_PlatformVersion(&platform_version), "PlatformVersion");
  printf("  platform version: %.*s\n", (int)platform_version.platform_version_size,
         platform_version.platform_version);

  ARGS(PJRT_Client_AddressableDevices_Args, devices);
  devices.client = client;
  expect_ok(api->PJRT_Client_AddressableDevices(&devices), "AddressableDevices");
  CHECK(devices.num_addressable_devices == 1, "%zu devices", devices.num_addressable_devices);
  PJRT_Device* device = devices.addressable_devices[0];

  ARGS(PJRT_Device_GetDescription_Args, description);
  description.device = device;
  expect_ok(api->PJRT_Device_GetDescription(&description), "Device_GetDescription");
  ARGS(PJRT_DeviceDescription_Id_Args, device_id);
  device_id.device_description = description.device_description;
  expect_ok(api->PJRT_DeviceDescription_Id(&device_id), "DeviceDescription_Id");
  CHECK(device_id.id == 0, "device id %d", device_id.id);
  ARGS(PJRT_DeviceDescription_Kind_Args, kind);
  kind.device_description = description.device_description;
  expect_ok(api->PJRT_DeviceDescription_Kind(&kind), "DeviceDescription_Kind");
  ARGS(PJRT_DeviceDescription_DebugString_Args, debug_string);
  debug_string.device_description = description.device_description;
  expect_ok(api->PJRT_DeviceDescription_DebugString(&debug_string), "DebugString");
  printf("  device: %.*s, kind %.*s\n", (int)debug_string.debug_string_size,
         debug_string.debug_string, (int)kind.device_kind_size, kind.device_kind);

  ARGS(PJRT_Client_LookupDevice_Args, lookup);
  lookup.client = client;
  lookup.id = 0;
  expect_ok(api->PJRT_Client_LookupDevice(&lookup), "LookupDevice(0)");
  CHECK(lookup.device == device, "LookupDevice(0) is another device");
  lookup.id = 7;
  expect_error(api->PJRT_Client_LookupDevice(&lookup), "LookupDevice(7)", NULL);

  ARGS(PJRT_Device_DefaultMemory_Args, default_memory);
  default_memory.device = device;
  expect_ok(api->PJRT_Device_DefaultMemory(&default_memory), "Device_DefaultMemory");
  ARGS(PJRT_Client_AddressableMemories_Args, memories);
  memories.client = client;
  expect_ok(api->PJRT_Client_AddressableMemories(&memories), "Client_AddressableMemories");
  /* The default memory 'device' first, then the host kinds JAX offloads to (one MLX pool). */
  static const char* const kinds[] = {"device", "pinned_host", "unpinned_host"};
  CHECK(memories.num_addressable_memories == 3 &&
            memories.addressable_memories[0] == default_memory.memory,
        "client memories");
  for (int i = 0; i < 3; ++i) {
    PJRT_Memory* memory = memories.addressable_memories[i];
    ARGS(PJRT_Memory_Kind_Args, memory_kind);
    memory_kind.memory = memory;
    expect_ok(api->PJRT_Memory_Kind(&memory_kind), "Memory_Kind");
    CHECK(memory_kind.kind_size == strlen(kinds[i]) &&
              memcmp(memory_kind.kind, kinds[i], memory_kind.kind_size) == 0,
          "memory kind %d", i);
    ARGS(PJRT_Memory_Id_Args, memory_id);
    memory_id.memory = memory;
    expect_ok(api->PJRT_Memory_Id(&memory_id), "Memory_Id");
    CHECK(memory_id.id == i, "memory id %d", i);
    ARGS(PJRT_Memory_AddressableByDevices_Args, memory_devices);
    memory_devices.memory = memory;
    expect_ok(api->PJRT_Memory_AddressableByDevices(&memory_devices), "AddressableByDevices");
    CHECK(memory_devices.num_devices == 1 && memory_devices.devices[0] == device,
          "memory devices");
  }

  /* Compile. */
  size_t code_size;
  const char* code = read_file(argv[2], &code_size);
  ARGS(PJRT_Program, program);
  program.code = (char*)code;
  program.code_size = code_size;
  program.format = "mlir";
  program.format_size = 4;
  ARGS(PJRT_Client_Compile_Args, compile);
  compile.client = client;
  compile.program = &program;
  expect_ok(api->PJRT_Client_Compile(&compile), "Client_Compile");
  PJRT_LoadedExecutable* loaded = compile.executable;

  ARGS(PJRT_LoadedExecutable_GetExecutable_Args, get_executable);
  get_executable.loaded_executable = loaded;
  expect_ok(api->PJRT_LoadedExecutable_GetExecutable(&get_executable), "GetExecutable");
  PJRT_Executable* executable = get_executable.executable;
  ARGS(PJRT_Executable_NumOutputs_Args, num_outputs);
  num_outputs.executable = executable;
  expect_ok(api->PJRT_Executable_NumOutputs(&num_outputs), "NumOutputs");
  CHECK(num_outputs.num_outputs == 1, "%zu outputs", num_outputs.num_outputs);
  ARGS(PJRT_Executable_OutputElementTypes_Args, output_types);
  output_types.executable = executable;
  expect_ok(api->PJRT_Executable_OutputElementTypes(&output_types), "OutputElementTypes");
  CHECK(output_types.num_output_types == 1 && output_types.output_types[0] == PJRT_Buffer_Type_F32,
        "output types");
  ARGS(PJRT_Executable_OutputDimensions_Args, output_dims);
  output_dims.executable = executable;
  expect_ok(api->PJRT_Executable_OutputDimensions(&output_dims), "OutputDimensions");
  CHECK(output_dims.num_outputs == 1 && output_dims.dim_sizes[0] == 2 &&
            output_dims.dims[0] == 2 && output_dims.dims[1] == 3,
        "output dimensions");
  ARGS(PJRT_Executable_Fingerprint_Args, fingerprint);
  fingerprint.executable = executable;
  expect_ok(api->PJRT_Executable_Fingerprint(&fingerprint), "Fingerprint");
  CHECK(fingerprint.executable_fingerprint_size > 0, "empty fingerprint");

  /* The optimized program, by the two-call protocol. */
  ARGS(PJRT_Program, optimized);
  optimized.code_size = (size_t)-1; /* not read on the first call */
  ARGS(PJRT_Executable_OptimizedProgram_Args, get_program);
  get_program.executable = executable;
  get_program.program = &optimized;
  expect_ok(api->PJRT_Executable_OptimizedProgram(&get_program), "OptimizedProgram (size)");
  CHECK(optimized.code_size > 0 && optimized.code_size != (size_t)-1, "optimized program size");
  optimized.code = malloc(optimized.code_size);
  expect_ok(api->PJRT_Executable_OptimizedProgram(&get_program), "OptimizedProgram");
  free(optimized.code);

  /* Buffers in, execute, result out. */
  const float a_values[6] = {1, 2, 3, 4, 5, 6};
  const float b_values[6] = {10, 20, 30, 40, 50, 60};
  PJRT_Buffer* a = buffer_from_host(client, device, a_values, NULL);
  PJRT_Buffer* b = buffer_from_host(client, NULL, b_values, NULL);
  ARGS(PJRT_Buffer_OnDeviceSizeInBytes_Args, size);
  size.buffer = a;
  expect_ok(api->PJRT_Buffer_OnDeviceSizeInBytes(&size), "OnDeviceSizeInBytes");
  CHECK(size.on_device_size_in_bytes == 24, "on-device size %zu", size.on_device_size_in_bytes);
  ARGS(PJRT_Buffer_Memory_Args, buffer_memory);
  buffer_memory.buffer = a;
  expect_ok(api->PJRT_Buffer_Memory(&buffer_memory), "Buffer_Memory");
  CHECK(buffer_memory.memory == default_memory.memory, "buffer memory");

  ARGS(PJRT_Buffer_ReadyEvent_Args, ready);
  ready.buffer = a;
  expect_ok(api->PJRT_Buffer_ReadyEvent(&ready), "ReadyEvent");
  ARGS(PJRT_Event_OnReady_Args, on_ready);
  on_ready.event = ready.event;
  on_ready.callback = count_on_ready;
  on_ready.user_arg = &on_ready_calls;
  expect_ok(api->PJRT_Event_OnReady(&on_ready), "Event_OnReady");
  CHECK(on_ready_calls == 1, "OnReady callback ran %d times", on_ready_calls);
  await_and_destroy(ready.event, "ReadyEvent");

  PJRT_Error* error;
  PJRT_Buffer* sum = execute(loaded, a, b, &error);
  expect_ok(error, "Execute");
  check_sum(sum, a_values, b_values);

  float column_major[6];
  int64_t minor_to_major[2] = {0, 1};
  ARGS(PJRT_Buffer_MemoryLayout, layout);
  layout.type = PJRT_Buffer_MemoryLayout_Type_Tiled;
  layout.tiled.struct_size = PJRT_Buffer_MemoryLayout_Tiled_STRUCT_SIZE;
  layout.tiled.minor_to_major = minor_to_major;
  layout.tiled.minor_to_major_size = 2;
  to_host(sum, &layout, column_major);
  CHECK(column_major[1] == a_values[3] + b_values[3], "column-major copy");
  destroy_buffer(sum);

  /* Strided host data: b as the transpose of a 3x2 array, and as a rows-reversed view. */
  const float b_transposed[6] = {10, 40, 20, 50, 30, 60};
  const int64_t transposed_strides[2] = {4, 8};
  const float b_rows_reversed[6] = {40, 50, 60, 10, 20, 30};
  const int64_t reversed_strides[2] = {-12, 4};
  PJRT_Buffer* strided[2] = {buffer_from_host(client, device, b_transposed, transposed_strides),
                             buffer_from_host(client, device, b_rows_reversed + 3,
                                              reversed_strides)};
  for (int i = 0; i < 2; ++i) {
    sum = execute(loaded, a, strided[i], &error);
    expect_ok(error, "Execute (strided input)");
    check_sum(sum, a_values, b_values);
    destroy_buffer(sum);
    destroy_buffer(strided[i]);
  }

  /* Serialize, load the bytes back, run again. */
  ARGS(PJRT_Executable_Serialize_Args, serialize);
  serialize.executable = executable;
  expect_ok(api->PJRT_Executable_Serialize(&serialize), "Serialize");
  ARGS(PJRT_Executable_DeserializeAndLoad_Args, deserialize);
  deserialize.client = client;
  deserialize.serialized_executable = serialize.serialized_bytes;
  deserialize.serialized_executable_size = serialize.serialized_bytes_size;
  expect_ok(api->PJRT_Executable_DeserializeAndLoad(&deserialize), "DeserializeAndLoad");
  serialize.serialized_executable_deleter(serialize.serialized_executable);
  sum = execute(deserialize.loaded_executable, a, b, &error);
  expect_ok(error, "Execute (deserialized)");
  check_sum(sum, a_values, b_values);
  destroy_buffer(sum);

  /* Error paths. */
  printf("error paths:\n");
  ARGS(PJRT_Program, garbage);
  garbage.code = "this is not a StableHLO artifact";
  garbage.code_size = strlen(garbage.code);
  garbage.format = "mlir";
  garbage.format_size = 4;
  compile.program = &garbage;
  compile.executable = NULL;
  expect_error(api->PJRT_Client_Compile(&compile), "compile garbage", NULL);

  ARGS(PJRT_Client_CreateViewOfDeviceBuffer_Args, view);
  view.client = client;
  CHECK(expect_error(api->PJRT_Client_CreateViewOfDeviceBuffer(&view), "CreateViewOfDeviceBuffer",
                     "PJRT_Client_CreateViewOfDeviceBuffer") == PJRT_Error_Code_UNIMPLEMENTED,
        "CreateViewOfDeviceBuffer is not UNIMPLEMENTED");

  ARGS(PJRT_Buffer_ElementType_Args, too_small);
  too_small.struct_size = sizeof(size_t);
  too_small.buffer = a;
  CHECK(expect_error(api->PJRT_Buffer_ElementType(&too_small), "struct_size too small",
                     "PJRT_Buffer_ElementType") == PJRT_Error_Code_INVALID_ARGUMENT,
        "a small struct_size is not INVALID_ARGUMENT");

  ARGS(PJRT_Buffer_Delete_Args, delete_a);
  delete_a.buffer = a;
  expect_ok(api->PJRT_Buffer_Delete(&delete_a), "Buffer_Delete");
  ARGS(PJRT_Buffer_IsDeleted_Args, is_deleted);
  is_deleted.buffer = a;
  expect_ok(api->PJRT_Buffer_IsDeleted(&is_deleted), "Buffer_IsDeleted");
  CHECK(is_deleted.is_deleted, "a deleted buffer is not IsDeleted");
  execute(loaded, a, b, &error);
  expect_error(error, "execute with a deleted buffer", "argument 0");
  float ignored[6];
  ARGS(PJRT_Buffer_ToHostBuffer_Args, deleted_to_host);
  deleted_to_host.src = a;
  deleted_to_host.dst = ignored;
  deleted_to_host.dst_size = sizeof ignored;
  expect_error(api->PJRT_Buffer_ToHostBuffer(&deleted_to_host), "ToHostBuffer of a deleted buffer",
               "deleted");

  /* Tear down. */
  destroy_buffer(a);
  destroy_buffer(b);
  ARGS(PJRT_Executable_Destroy_Args, destroy_executable);
  destroy_executable.executable = executable;
  expect_ok(api->PJRT_Executable_Destroy(&destroy_executable), "Executable_Destroy");
  ARGS(PJRT_LoadedExecutable_Destroy_Args, destroy_loaded);
  destroy_loaded.executable = loaded;
  expect_ok(api->PJRT_LoadedExecutable_Destroy(&destroy_loaded), "LoadedExecutable_Destroy");
  destroy_loaded.executable = deserialize.loaded_executable;
  expect_ok(api->PJRT_LoadedExecutable_Destroy(&destroy_loaded), "LoadedExecutable_Destroy");
  ARGS(PJRT_Client_Destroy_Args, destroy_client);
  destroy_client.client = client;
  expect_ok(api->PJRT_Client_Destroy(&destroy_client), "Client_Destroy");
  free((void*)code);

  printf("pjrt_smoke: OK\n");
  return 0;
}
