/* The xla-metal PJRT plugin's introspection, copy, pointer and HLO entry points, from plain C
 * with no JAX and no Python in the process until the plugin starts its own.
 *
 *   cc -std=c11 -Wall -o pjrt_features tests/c/pjrt_features.c -ldl
 *   ./pjrt_features xla_metal/libxla_metal_pjrt.so add.hlo
 *
 * add.hlo is a serialized HloModuleProto of main(a: f32[2,3], b: f32[2,3]) -> a + b.
 * Prints "pjrt_features: OK" and exits 0, or says what failed and exits 1.
 */
#include <stdbool.h>

#include "pjrt_helpers.h"

static PJRT_LoadedExecutable* compile(PJRT_Client* client, const char* code, size_t code_size,
                                      const char* format, PJRT_Error** error) {
  ARGS(PJRT_Program, program);
  program.code = (char*)code;
  program.code_size = code_size;
  program.format = format;
  program.format_size = strlen(format);
  ARGS(PJRT_Client_Compile_Args, request);
  request.client = client;
  request.program = &program;
  *error = api->PJRT_Client_Compile(&request);
  return request.executable;
}

/* HloModuleProtoWithConfig { hlo_module (field 1) = proto } in protobuf wire format. */
static char* with_config(const char* proto, size_t size, size_t* out_size) {
  char* out = malloc(size + 16);
  CHECK(out != NULL, "out of memory");
  size_t position = 0;
  out[position++] = 0x0A; /* field 1, length-delimited */
  size_t length = size;
  do {
    out[position++] = (char)((length & 0x7F) | (length > 0x7F ? 0x80 : 0));
    length >>= 7;
  } while (length != 0);
  memcpy(out + position, proto, size);
  *out_size = position + size;
  return out;
}

static float cost(const PJRT_Executable_GetCostAnalysis_Args* costs, const char* name) {
  for (size_t i = 0; i < costs->num_properties; ++i) {
    const PJRT_NamedValue* value = &costs->properties[i];
    if (value->name_size == strlen(name) && memcmp(value->name, name, value->name_size) == 0) {
      CHECK(value->type == PJRT_NamedValue_kFloat, "%s is not a float", name);
      return value->float_value;
    }
  }
  CHECK(0, "the cost analysis has no '%s'", name);
  return 0;
}

static PJRT_Executable* executable_of(PJRT_LoadedExecutable* loaded) {
  ARGS(PJRT_LoadedExecutable_GetExecutable_Args, get_executable);
  get_executable.loaded_executable = loaded;
  expect_ok(api->PJRT_LoadedExecutable_GetExecutable(&get_executable), "GetExecutable");
  return get_executable.executable;
}

/* XLA's cost analysis of a + b on f32[2,3]: 6 adds; 2 x 24 bytes read, 24 written. */
static void check_cost_and_memory(PJRT_Executable* executable) {
  ARGS(PJRT_Executable_GetCostAnalysis_Args, costs);
  costs.executable = executable;
  expect_ok(api->PJRT_Executable_GetCostAnalysis(&costs), "GetCostAnalysis");
  CHECK(costs.num_properties > 0, "no cost properties");
  CHECK(cost(&costs, "flops") == 6, "flops %g", cost(&costs, "flops"));
  CHECK(cost(&costs, "bytes accessed") == 72, "bytes accessed %g",
        cost(&costs, "bytes accessed"));
  const PJRT_NamedValue* first = costs.properties;
  expect_ok(api->PJRT_Executable_GetCostAnalysis(&costs), "GetCostAnalysis (again)");
  CHECK(costs.properties == first, "the cost properties moved between calls");
  printf("  cost analysis: %zu figures, flops %g\n", costs.num_properties, cost(&costs, "flops"));

  ARGS(PJRT_Executable_GetCompiledMemoryStats_Args, memory);
  memory.executable = executable;
  expect_ok(api->PJRT_Executable_GetCompiledMemoryStats(&memory), "GetCompiledMemoryStats");
  CHECK(memory.argument_size_in_bytes == 48 && memory.output_size_in_bytes == 24 &&
            memory.alias_size_in_bytes == 0 && memory.temp_size_in_bytes == 0,
        "memory stats: arguments %lld, outputs %lld, alias %lld, temp %lld",
        (long long)memory.argument_size_in_bytes, (long long)memory.output_size_in_bytes,
        (long long)memory.alias_size_in_bytes, (long long)memory.temp_size_in_bytes);
}

static void check_values(PJRT_Buffer* buffer, const float* expected, const char* what) {
  float values[6];
  to_host(buffer, NULL, values);
  for (int i = 0; i < 6; ++i) CHECK(values[i] == expected[i], "%s[%d] = %g", what, i, values[i]);
}

static void delete_buffer(PJRT_Buffer* buffer) {
  ARGS(PJRT_Buffer_Delete_Args, request);
  request.buffer = buffer;
  expect_ok(api->PJRT_Buffer_Delete(&request), "Buffer_Delete");
}

static void check_copies(PJRT_Device* device, PJRT_Memory* memory, PJRT_Buffer* source,
                         const float* values) {
  ARGS(PJRT_Buffer_CopyToDevice_Args, to_device);
  to_device.buffer = source;
  to_device.dst_device = device;
  expect_ok(api->PJRT_Buffer_CopyToDevice(&to_device), "CopyToDevice");
  ARGS(PJRT_Buffer_CopyToMemory_Args, to_memory);
  to_memory.buffer = source;
  to_memory.dst_memory = memory;
  expect_ok(api->PJRT_Buffer_CopyToMemory(&to_memory), "CopyToMemory");
  delete_buffer(source);  /* the copies are buffers of their own */
  check_values(to_device.dst_buffer, values, "CopyToDevice copy");
  check_values(to_memory.dst_buffer, values, "CopyToMemory copy");
  ARGS(PJRT_Buffer_Memory_Args, copy_memory);
  copy_memory.buffer = to_memory.dst_buffer;
  expect_ok(api->PJRT_Buffer_Memory(&copy_memory), "Buffer_Memory");
  CHECK(copy_memory.memory == memory, "CopyToMemory's copy is not in the memory asked for");

  to_device.buffer = to_device.dst_buffer;
  to_device.dst_device = NULL;
  expect_error(api->PJRT_Buffer_CopyToDevice(&to_device), "CopyToDevice to NULL", "dst_device");
  to_memory.buffer = source;
  expect_error(api->PJRT_Buffer_CopyToMemory(&to_memory), "CopyToMemory of a deleted buffer",
               "deleted");
  destroy_buffer(to_device.buffer);
  destroy_buffer(to_memory.dst_buffer);
}

/* The address is that of the row-major data, and it outlives Delete while referenced. */
static void check_pointer_and_references(PJRT_Buffer* buffer, const float* values) {
  ARGS(PJRT_Buffer_UnsafePointer_Args, pointer);
  pointer.buffer = buffer;
  expect_ok(api->PJRT_Buffer_UnsafePointer(&pointer), "UnsafePointer");
  ARGS(PJRT_Buffer_OpaqueDeviceMemoryDataPointer_Args, opaque);
  opaque.buffer = buffer;
  expect_ok(api->PJRT_Buffer_OpaqueDeviceMemoryDataPointer(&opaque),
            "OpaqueDeviceMemoryDataPointer");
  CHECK(pointer.buffer_pointer != 0 && (void*)pointer.buffer_pointer == opaque.device_memory_ptr,
        "UnsafePointer and OpaqueDeviceMemoryDataPointer disagree");
  const float* data = (const float*)pointer.buffer_pointer;
  for (int i = 0; i < 6; ++i) CHECK(data[i] == values[i], "pointer data[%d] = %g", i, data[i]);

  ARGS(PJRT_Buffer_IncreaseExternalReferenceCount_Args, increase);
  increase.buffer = buffer;
  expect_ok(api->PJRT_Buffer_IncreaseExternalReferenceCount(&increase), "IncreaseExternalRef");
  delete_buffer(buffer);
  for (int i = 0; i < 6; ++i) {
    CHECK(data[i] == values[i], "data[%d] = %g after Delete with a reference held", i, data[i]);
  }
  ARGS(PJRT_Buffer_DecreaseExternalReferenceCount_Args, decrease);
  decrease.buffer = buffer;
  expect_ok(api->PJRT_Buffer_DecreaseExternalReferenceCount(&decrease), "DecreaseExternalRef");
  expect_error(api->PJRT_Buffer_DecreaseExternalReferenceCount(&decrease),
               "DecreaseExternalReferenceCount below 0", "is 0");
  expect_error(api->PJRT_Buffer_UnsafePointer(&pointer), "UnsafePointer of a deleted buffer",
               "deleted");
  destroy_buffer(buffer);
}

static bool is_deleted(PJRT_Buffer* buffer) {
  ARGS(PJRT_Buffer_IsDeleted_Args, request);
  request.buffer = buffer;
  expect_ok(api->PJRT_Buffer_IsDeleted(&request), "Buffer_IsDeleted");
  return request.is_deleted;
}

/* a + b where a may be donated (its memory may serve the result), as MLIR text. */
static const char kDonatingAdd[] =
    "func.func @main(%a: tensor<2x3xf32> {jax.buffer_donor = true}, %b: tensor<2x3xf32>)"
    " -> tensor<2x3xf32> {\n"
    "  %0 = stablehlo.add %a, %b : tensor<2x3xf32>\n"
    "  return %0 : tensor<2x3xf32>\n"
    "}\n";

/* A donatable argument is given up by Execute, except while someone holds an external
 * reference to its memory: then it stays as it is. */
static void check_donation_respects_references(PJRT_Client* client, PJRT_Device* device,
                                               const float* a_values, const float* b_values) {
  PJRT_Error* error;
  PJRT_LoadedExecutable* loaded =
      compile(client, kDonatingAdd, sizeof kDonatingAdd - 1, "mlir", &error);
  expect_ok(error, "compile the donating program");
  PJRT_Buffer* a = buffer_from_host(client, device, a_values, NULL);
  PJRT_Buffer* b = buffer_from_host(client, device, b_values, NULL);

  ARGS(PJRT_Buffer_UnsafePointer_Args, pointer);
  pointer.buffer = a;
  expect_ok(api->PJRT_Buffer_UnsafePointer(&pointer), "UnsafePointer");
  ARGS(PJRT_Buffer_IncreaseExternalReferenceCount_Args, increase);
  increase.buffer = a;
  expect_ok(api->PJRT_Buffer_IncreaseExternalReferenceCount(&increase), "IncreaseExternalRef");
  PJRT_Buffer* sum = execute(loaded, a, b, &error);
  expect_ok(error, "Execute (referenced donor)");
  check_sum(sum, a_values, b_values);
  destroy_buffer(sum);
  CHECK(!is_deleted(a), "a buffer with an external reference was donated");
  const float* data = (const float*)pointer.buffer_pointer;
  for (int i = 0; i < 6; ++i) CHECK(data[i] == a_values[i], "donor data[%d] = %g", i, data[i]);

  ARGS(PJRT_Buffer_DecreaseExternalReferenceCount_Args, decrease);
  decrease.buffer = a;
  expect_ok(api->PJRT_Buffer_DecreaseExternalReferenceCount(&decrease), "DecreaseExternalRef");
  sum = execute(loaded, a, b, &error);
  expect_ok(error, "Execute (donor)");
  check_sum(sum, a_values, b_values);
  CHECK(is_deleted(a), "the donated argument is not deleted");
  destroy_buffer(sum);
  destroy_buffer(a);
  destroy_buffer(b);
  ARGS(PJRT_LoadedExecutable_Destroy_Args, destroy_loaded);
  destroy_loaded.executable = loaded;
  expect_ok(api->PJRT_LoadedExecutable_Destroy(&destroy_loaded), "LoadedExecutable_Destroy");
  printf("  donation: kept while referenced, given up after\n");
}

int main(int argc, char** argv) {
  program_name = "pjrt_features";
  CHECK(argc == 3, "usage: %s LIBRARY HLO_PROTO", argv[0]);
  api = load_api(argv[1]);

  ARGS(PJRT_Client_Create_Args, create);
  expect_ok(api->PJRT_Client_Create(&create), "Client_Create");
  PJRT_Client* client = create.client;
  ARGS(PJRT_Client_AddressableDevices_Args, devices);
  devices.client = client;
  expect_ok(api->PJRT_Client_AddressableDevices(&devices), "AddressableDevices");
  PJRT_Device* device = devices.addressable_devices[0];
  ARGS(PJRT_Device_DefaultMemory_Args, default_memory);
  default_memory.device = device;
  expect_ok(api->PJRT_Device_DefaultMemory(&default_memory), "Device_DefaultMemory");

  /* The program as HLO, in both formats; each runs a + b and reports its costs. */
  size_t proto_size, config_size;
  const char* proto = read_file(argv[2], &proto_size);
  char* config = with_config(proto, proto_size, &config_size);
  const float a_values[6] = {1, 2, 3, 4, 5, 6};
  const float b_values[6] = {10, 20, 30, 40, 50, 60};
  PJRT_Buffer* a = buffer_from_host(client, device, a_values, NULL);
  PJRT_Buffer* b = buffer_from_host(client, device, b_values, NULL);
  const char* formats[2] = {"hlo", "hlo_with_config"};
  for (int i = 0; i < 2; ++i) {
    PJRT_Error* error;
    PJRT_LoadedExecutable* loaded =
        i == 0 ? compile(client, proto, proto_size, formats[i], &error)
               : compile(client, config, config_size, formats[i], &error);
    expect_ok(error, formats[i]);
    PJRT_Buffer* sum = execute(loaded, a, b, &error);
    expect_ok(error, "Execute");
    check_sum(sum, a_values, b_values);
    destroy_buffer(sum);
    PJRT_Executable* executable = executable_of(loaded);
    check_cost_and_memory(executable);
    ARGS(PJRT_Executable_Destroy_Args, destroy_executable);
    destroy_executable.executable = executable;
    expect_ok(api->PJRT_Executable_Destroy(&destroy_executable), "Executable_Destroy");
    ARGS(PJRT_LoadedExecutable_Destroy_Args, destroy_loaded);
    destroy_loaded.executable = loaded;
    expect_ok(api->PJRT_LoadedExecutable_Destroy(&destroy_loaded), "LoadedExecutable_Destroy");
    printf("  format %s: compiled, ran, analysed\n", formats[i]);
  }
  PJRT_Error* error;
  compile(client, "garbage", 7, "hlo", &error);
  expect_error(error, "compile a garbage 'hlo' program", "HloModuleProto");

  /* A copy into 'pinned_host' (memory 1), which JAX's host offload asks for. */
  ARGS(PJRT_Device_AddressableMemories_Args, device_memories);
  device_memories.device = device;
  expect_ok(api->PJRT_Device_AddressableMemories(&device_memories), "AddressableMemories");
  CHECK(device_memories.num_memories == 3, "%zu device memories", device_memories.num_memories);
  check_copies(device, device_memories.memories[1], a, a_values);
  destroy_buffer(a);
  check_pointer_and_references(b, b_values);
  check_donation_respects_references(client, device, a_values, b_values);

  ARGS(PJRT_Client_Destroy_Args, destroy_client);
  destroy_client.client = client;
  expect_ok(api->PJRT_Client_Destroy(&destroy_client), "Client_Destroy");
  free(config);
  free((void*)proto);
  printf("pjrt_features: OK\n");
  return 0;
}
