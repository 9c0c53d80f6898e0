// The client and its fixed topology: one device "metal:0" with the memories "device" (its
// default), "pinned_host" and "unpinned_host" (see kMemoryKinds).
// Everything here but Client_Create and Client_Destroy is answered from C++ state.
#include "internal.h"

namespace xla_metal {
namespace {

constexpr char kPlatformName[] = "metal";
constexpr int kDeviceId = 0;
constexpr char kDeviceDebugString[] = "metal:0";
constexpr char kDeviceToString[] = "MetalDevice(id=0)";
// By MemoryId, as kMemoryKinds.
constexpr const char* kMemoryDebugStrings[kNumMemories] = {
    "metal:0:device", "metal:0:pinned_host", "metal:0:unpinned_host"};
constexpr const char* kMemoryToStrings[kNumMemories] = {
    "MetalMemory(id=0, kind=device)", "MetalMemory(id=1, kind=pinned_host)",
    "MetalMemory(id=2, kind=unpinned_host)"};

template <size_t N>
void SetString(const char (&text)[N], const char*& out, size_t& out_size) {
  out = text;
  out_size = N - 1;
}

void SetString(const char* text, const char*& out, size_t& out_size) {
  out = text;
  out_size = std::strlen(text);
}

void SetString(const std::string& text, const char*& out, size_t& out_size) {
  out = text.data();
  out_size = text.size();
}

// ---------------------------------------------------------------------------- Client

XM_ENTRY(PJRT_Client_Create, client) {
  // create_options and the key-value store are for multi-process setups; there is one
  // process and one device here, so they are not needed.
  XM_RETURN_IF_ERROR(EnsurePythonRuntime());
  XmClientCreateArgs created{};
  std::unique_ptr<PJRT_Client> client;
  XM_RETURN_IF_ERROR(XM_CALL_BRIDGE_AND_READ(client_create, &created, [&]() -> Status {
    client = std::make_unique<PJRT_Client>(
        created.client, created.platform_version != nullptr ? created.platform_version : "",
        created.device_kind != nullptr ? created.device_kind : "");
    return Ok();
  }));
  args.client = client.release();
  return Ok();
}

XM_ENTRY(PJRT_Client_Destroy, client) {
  if (args.client != nullptr) ReleaseClient(args.client);
  return Ok();
}

XM_ENTRY(PJRT_Client_PlatformName, platform_name_size) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.client, "client"));
  SetString(kPlatformName, args.platform_name, args.platform_name_size);
  return Ok();
}

XM_ENTRY(PJRT_Client_ProcessIndex, process_index) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.client, "client"));
  args.process_index = 0;
  return Ok();
}

XM_ENTRY(PJRT_Client_PlatformVersion, platform_version_size) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.client, "client"));
  SetString(args.client->platform_version, args.platform_version, args.platform_version_size);
  return Ok();
}

XM_ENTRY(PJRT_Client_Devices, num_devices) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.client, "client"));
  args.devices = args.client->device_list;
  args.num_devices = 1;
  return Ok();
}

XM_ENTRY(PJRT_Client_AddressableDevices, num_addressable_devices) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.client, "client"));
  args.addressable_devices = args.client->device_list;
  args.num_addressable_devices = 1;
  return Ok();
}

XM_ENTRY(PJRT_Client_LookupDevice, device) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.client, "client"));
  if (args.id != kDeviceId) {
    return InvalidArgument("xla-metal has no device with id " + std::to_string(args.id) +
                           " (its only device has id 0)");
  }
  args.device = &args.client->device;
  return Ok();
}

XM_ENTRY(PJRT_Client_LookupAddressableDevice, addressable_device) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.client, "client"));
  if (args.local_hardware_id != kDeviceId) {
    return InvalidArgument("xla-metal has no device with local hardware id " +
                           std::to_string(args.local_hardware_id) + " (its only device has 0)");
  }
  args.addressable_device = &args.client->device;
  return Ok();
}

XM_ENTRY(PJRT_Client_AddressableMemories, num_addressable_memories) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.client, "client"));
  args.addressable_memories = args.client->memory_list;
  args.num_addressable_memories = kNumMemories;
  return Ok();
}

XM_ENTRY(PJRT_Client_DefaultDeviceAssignment, default_assignment) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.client, "client"));
  const long long needed = static_cast<long long>(args.num_replicas) * args.num_partitions;
  if (args.num_replicas < 1 || args.num_partitions < 1 || needed > 1) {
    return InvalidArgument("xla-metal has one device, so it cannot place " +
                           std::to_string(args.num_replicas) + " replicas x " +
                           std::to_string(args.num_partitions) + " partitions");
  }
  if (args.default_assignment_size < 1) {
    return InvalidArgument("PJRT_Client_DefaultDeviceAssignment: default_assignment_size is 0");
  }
  XM_RETURN_IF_ERROR(RequireNonNull(args.default_assignment, "default_assignment"));
  args.default_assignment[0] = kDeviceId;
  return Ok();
}

// ---------------------------------------------------------------------------- Device description

XM_ENTRY(PJRT_DeviceDescription_Id, id) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.device_description, "device_description"));
  args.id = kDeviceId;
  return Ok();
}

XM_ENTRY(PJRT_DeviceDescription_ProcessIndex, process_index) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.device_description, "device_description"));
  args.process_index = 0;
  return Ok();
}

XM_ENTRY(PJRT_DeviceDescription_Attributes, attributes) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.device_description, "device_description"));
  args.num_attributes = 0;
  args.attributes = nullptr;
  return Ok();
}

XM_ENTRY(PJRT_DeviceDescription_Kind, device_kind_size) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.device_description, "device_description"));
  SetString(args.device_description->client->device_kind, args.device_kind,
            args.device_kind_size);
  return Ok();
}

XM_ENTRY(PJRT_DeviceDescription_DebugString, debug_string_size) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.device_description, "device_description"));
  SetString(kDeviceDebugString, args.debug_string, args.debug_string_size);
  return Ok();
}

XM_ENTRY(PJRT_DeviceDescription_ToString, to_string_size) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.device_description, "device_description"));
  SetString(kDeviceToString, args.to_string, args.to_string_size);
  return Ok();
}

// ---------------------------------------------------------------------------- Device

XM_ENTRY(PJRT_Device_GetDescription, device_description) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.device, "device"));
  args.device_description = &args.device->client->description;
  return Ok();
}

XM_ENTRY(PJRT_Device_IsAddressable, is_addressable) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.device, "device"));
  args.is_addressable = true;
  return Ok();
}

XM_ENTRY(PJRT_Device_LocalHardwareId, local_hardware_id) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.device, "device"));
  args.local_hardware_id = kDeviceId;
  return Ok();
}

XM_ENTRY(PJRT_Device_AddressableMemories, num_memories) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.device, "device"));
  args.memories = args.device->client->memory_list;
  args.num_memories = kNumMemories;
  return Ok();
}

XM_ENTRY(PJRT_Device_DefaultMemory, memory) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.device, "device"));
  args.memory = args.device->client->default_memory();
  return Ok();
}

// MLX's own counters: memory in use by arrays, its peak, and the limit MLX allocates within.
XM_ENTRY(PJRT_Device_MemoryStats, bytes_limit_is_set) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.device, "device"));
  XmMemoryStatsArgs request{};
  request.client = args.device->client->handle;
  XM_RETURN_IF_ERROR(XM_CALL_BRIDGE(memory_stats, &request));
  args.bytes_in_use = request.bytes_in_use;
  args.peak_bytes_in_use = request.peak_bytes_in_use;
  args.peak_bytes_in_use_is_set = true;
  args.bytes_limit = request.bytes_limit;
  args.bytes_limit_is_set = true;
  return Ok();
}

// ---------------------------------------------------------------------------- Memory

XM_ENTRY(PJRT_Memory_Id, id) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.memory, "memory"));
  args.id = args.memory->id;
  return Ok();
}

XM_ENTRY(PJRT_Memory_Kind, kind_size) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.memory, "memory"));
  SetString(kMemoryKinds[args.memory->id], args.kind, args.kind_size);
  return Ok();
}

XM_ENTRY(PJRT_Memory_Kind_Id, kind_id) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.memory, "memory"));
  args.kind_id = args.memory->id;
  return Ok();
}

XM_ENTRY(PJRT_Memory_DebugString, debug_string_size) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.memory, "memory"));
  SetString(kMemoryDebugStrings[args.memory->id], args.debug_string, args.debug_string_size);
  return Ok();
}

XM_ENTRY(PJRT_Memory_ToString, to_string_size) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.memory, "memory"));
  SetString(kMemoryToStrings[args.memory->id], args.to_string, args.to_string_size);
  return Ok();
}

XM_ENTRY(PJRT_Memory_AddressableByDevices, num_devices) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.memory, "memory"));
  args.devices = args.memory->client->device_list;
  args.num_devices = 1;
  return Ok();
}

}  // namespace

void RetainClient(PJRT_Client* client) noexcept {
  client->references.fetch_add(1, std::memory_order_relaxed);
}

void ReleaseClient(PJRT_Client* client) noexcept {
  if (client->references.fetch_sub(1, std::memory_order_acq_rel) == 1) delete client;
}

void FillClientSlots(PJRT_Api& api) {
  api.PJRT_Client_Create = PJRT_Client_Create;
  api.PJRT_Client_Destroy = PJRT_Client_Destroy;
  api.PJRT_Client_PlatformName = PJRT_Client_PlatformName;
  api.PJRT_Client_ProcessIndex = PJRT_Client_ProcessIndex;
  api.PJRT_Client_PlatformVersion = PJRT_Client_PlatformVersion;
  api.PJRT_Client_Devices = PJRT_Client_Devices;
  api.PJRT_Client_AddressableDevices = PJRT_Client_AddressableDevices;
  api.PJRT_Client_LookupDevice = PJRT_Client_LookupDevice;
  api.PJRT_Client_LookupAddressableDevice = PJRT_Client_LookupAddressableDevice;
  api.PJRT_Client_AddressableMemories = PJRT_Client_AddressableMemories;
  api.PJRT_Client_DefaultDeviceAssignment = PJRT_Client_DefaultDeviceAssignment;

  api.PJRT_DeviceDescription_Id = PJRT_DeviceDescription_Id;
  api.PJRT_DeviceDescription_ProcessIndex = PJRT_DeviceDescription_ProcessIndex;
  api.PJRT_DeviceDescription_Attributes = PJRT_DeviceDescription_Attributes;
  api.PJRT_DeviceDescription_Kind = PJRT_DeviceDescription_Kind;
  api.PJRT_DeviceDescription_DebugString = PJRT_DeviceDescription_DebugString;
  api.PJRT_DeviceDescription_ToString = PJRT_DeviceDescription_ToString;

  api.PJRT_Device_GetDescription = PJRT_Device_GetDescription;
  api.PJRT_Device_IsAddressable = PJRT_Device_IsAddressable;
  api.PJRT_Device_LocalHardwareId = PJRT_Device_LocalHardwareId;
  api.PJRT_Device_AddressableMemories = PJRT_Device_AddressableMemories;
  api.PJRT_Device_DefaultMemory = PJRT_Device_DefaultMemory;
  api.PJRT_Device_MemoryStats = PJRT_Device_MemoryStats;

  api.PJRT_Memory_Id = PJRT_Memory_Id;
  api.PJRT_Memory_Kind = PJRT_Memory_Kind;
  api.PJRT_Memory_Kind_Id = PJRT_Memory_Kind_Id;
  api.PJRT_Memory_DebugString = PJRT_Memory_DebugString;
  api.PJRT_Memory_ToString = PJRT_Memory_ToString;
  api.PJRT_Memory_AddressableByDevices = PJRT_Memory_AddressableByDevices;
}

}  // namespace xla_metal

PJRT_Client::PJRT_Client(int64_t python_handle, std::string platform_version,
                         std::string device_kind)
    : handle(python_handle),
      platform_version(std::move(platform_version)),
      device_kind(std::move(device_kind)) {}

PJRT_Client::~PJRT_Client() { xla_metal::ReleaseHandle(&XmBridge::client_destroy, handle); }
