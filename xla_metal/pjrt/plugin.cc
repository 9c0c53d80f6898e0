// GetPjrtApi, the library's one exported symbol: the PJRT_Api table, the plugin-level entry
// points, and the entry points xla-metal does not support.
#include <algorithm>
#include <string>

#include "internal.h"

namespace xla_metal {
namespace {

// Version of the XLA plugin interface (not of the PJRT C API) frameworks check for.
constexpr int64_t kXlaVersion = 2;

XM_ENTRY(PJRT_Plugin_Initialize, extension_start) {
  // Nothing to do: Python starts on first need (attributes or a client), never at load time.
  return Ok();
}

// Filled once from Python; lives for the process, as PJRT requires of plugin attributes.
struct PluginAttributes {
  int64_t stablehlo_current[3];
  int64_t stablehlo_minimum[3];
  PJRT_NamedValue values[3];
};

PJRT_NamedValue NamedValue(const char* name, PJRT_NamedValue_Type type) {
  PJRT_NamedValue value{};
  value.struct_size = PJRT_NamedValue_STRUCT_SIZE;
  value.name = name;
  value.name_size = std::char_traits<char>::length(name);
  value.type = type;
  return value;
}

PJRT_NamedValue Int64ListValue(const char* name, const int64_t* values, size_t size) {
  PJRT_NamedValue value = NamedValue(name, PJRT_NamedValue_kInt64List);
  value.int64_array_value = values;
  value.value_size = size;
  return value;
}

// PJRT_Plugin_Attributes_Args_STRUCT_SIZE stops at `attributes`, so callers report a size
// that excludes num_attributes, yet their struct has it: it is written unconditionally.
XM_ENTRY(PJRT_Plugin_Attributes, attributes) {
  static std::mutex mutex;
  static PluginAttributes* attributes = nullptr;  // never freed: process lifetime
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (attributes != nullptr) {
      args.attributes = attributes->values;
      args.num_attributes = 3;
      return Ok();
    }
  }
  // Asked of Python without holding the mutex: the bridge call may wait for the GIL.
  XM_RETURN_IF_ERROR(EnsurePythonRuntime());
  XmPluginAttributesArgs versions{};
  XM_RETURN_IF_ERROR(XM_CALL_BRIDGE(plugin_attributes, &versions));

  std::lock_guard<std::mutex> lock(mutex);
  if (attributes == nullptr) {
    auto built = new PluginAttributes{};
    std::copy(versions.stablehlo_current, versions.stablehlo_current + 3,
              built->stablehlo_current);
    std::copy(versions.stablehlo_minimum, versions.stablehlo_minimum + 3,
              built->stablehlo_minimum);
    PJRT_NamedValue xla_version = NamedValue("xla_version", PJRT_NamedValue_kInt64);
    xla_version.int64_value = kXlaVersion;
    xla_version.value_size = 1;
    built->values[0] = xla_version;
    built->values[1] = Int64ListValue("stablehlo_current_version", built->stablehlo_current, 3);
    built->values[2] = Int64ListValue("stablehlo_minimum_version", built->stablehlo_minimum, 3);
    attributes = built;
  }
  args.attributes = attributes->values;
  args.num_attributes = 3;
  return Ok();
}

// ---------------------------------------------------------------------------- Unsupported

// Multi-device topologies, ahead-of-time compilation and streaming transfers have no use
// with one device and synchronous transfers. A view of foreign device memory cannot be made:
// MLX arrays own their memory, so wrapping someone else's would be a copy, not a view.
XM_UNIMPLEMENTED_ENTRY(PJRT_Client_TopologyDescription)
XM_UNIMPLEMENTED_ENTRY(PJRT_Client_CreateViewOfDeviceBuffer)
XM_UNIMPLEMENTED_ENTRY(PJRT_Client_CreateBuffersForAsyncHostToDevice)
XM_UNIMPLEMENTED_ENTRY(PJRT_AsyncHostToDeviceTransferManager_Destroy)
XM_UNIMPLEMENTED_ENTRY(PJRT_AsyncHostToDeviceTransferManager_TransferData)
XM_UNIMPLEMENTED_ENTRY(PJRT_ExecuteContext_Create)
XM_UNIMPLEMENTED_ENTRY(PJRT_ExecuteContext_Destroy)
XM_UNIMPLEMENTED_ENTRY(PJRT_Buffer_CopyRawToHost)
XM_UNIMPLEMENTED_ENTRY(PJRT_CopyToDeviceStream_Destroy)
XM_UNIMPLEMENTED_ENTRY(PJRT_CopyToDeviceStream_AddChunk)
XM_UNIMPLEMENTED_ENTRY(PJRT_CopyToDeviceStream_TotalBytes)
XM_UNIMPLEMENTED_ENTRY(PJRT_CopyToDeviceStream_GranuleSize)
XM_UNIMPLEMENTED_ENTRY(PJRT_CopyToDeviceStream_CurrentBytes)
XM_UNIMPLEMENTED_ENTRY(PJRT_TopologyDescription_Create)
XM_UNIMPLEMENTED_ENTRY(PJRT_TopologyDescription_Destroy)
XM_UNIMPLEMENTED_ENTRY(PJRT_TopologyDescription_PlatformName)
XM_UNIMPLEMENTED_ENTRY(PJRT_TopologyDescription_PlatformVersion)
XM_UNIMPLEMENTED_ENTRY(PJRT_TopologyDescription_GetDeviceDescriptions)
XM_UNIMPLEMENTED_ENTRY(PJRT_TopologyDescription_Serialize)
XM_UNIMPLEMENTED_ENTRY(PJRT_TopologyDescription_Attributes)
XM_UNIMPLEMENTED_ENTRY(PJRT_Compile)

}  // namespace

void FillPluginSlots(PJRT_Api& api) {
  api.PJRT_Plugin_Initialize = PJRT_Plugin_Initialize;
  api.PJRT_Plugin_Attributes = PJRT_Plugin_Attributes;
}

void FillUnsupportedSlots(PJRT_Api& api) {
  api.PJRT_Client_TopologyDescription = PJRT_Client_TopologyDescription;
  api.PJRT_Client_CreateViewOfDeviceBuffer = PJRT_Client_CreateViewOfDeviceBuffer;
  api.PJRT_Client_CreateBuffersForAsyncHostToDevice =
      PJRT_Client_CreateBuffersForAsyncHostToDevice;
  api.PJRT_AsyncHostToDeviceTransferManager_Destroy =
      PJRT_AsyncHostToDeviceTransferManager_Destroy;
  api.PJRT_AsyncHostToDeviceTransferManager_TransferData =
      PJRT_AsyncHostToDeviceTransferManager_TransferData;
  api.PJRT_ExecuteContext_Create = PJRT_ExecuteContext_Create;
  api.PJRT_ExecuteContext_Destroy = PJRT_ExecuteContext_Destroy;
  api.PJRT_Buffer_CopyRawToHost = PJRT_Buffer_CopyRawToHost;
  api.PJRT_CopyToDeviceStream_Destroy = PJRT_CopyToDeviceStream_Destroy;
  api.PJRT_CopyToDeviceStream_AddChunk = PJRT_CopyToDeviceStream_AddChunk;
  api.PJRT_CopyToDeviceStream_TotalBytes = PJRT_CopyToDeviceStream_TotalBytes;
  api.PJRT_CopyToDeviceStream_GranuleSize = PJRT_CopyToDeviceStream_GranuleSize;
  api.PJRT_CopyToDeviceStream_CurrentBytes = PJRT_CopyToDeviceStream_CurrentBytes;
  api.PJRT_TopologyDescription_Create = PJRT_TopologyDescription_Create;
  api.PJRT_TopologyDescription_Destroy = PJRT_TopologyDescription_Destroy;
  api.PJRT_TopologyDescription_PlatformName = PJRT_TopologyDescription_PlatformName;
  api.PJRT_TopologyDescription_PlatformVersion = PJRT_TopologyDescription_PlatformVersion;
  api.PJRT_TopologyDescription_GetDeviceDescriptions =
      PJRT_TopologyDescription_GetDeviceDescriptions;
  api.PJRT_TopologyDescription_Serialize = PJRT_TopologyDescription_Serialize;
  api.PJRT_TopologyDescription_Attributes = PJRT_TopologyDescription_Attributes;
  api.PJRT_Compile = PJRT_Compile;
}

namespace {

// The table followed by NULL slots: a framework newer than PJRT_API_MINOR may read a few
// slots past our struct_size (instead of checking it first) and must find NULL, not garbage.
struct PaddedApi {
  PJRT_Api api;
  void* unused_newer_slots[64];
};

PaddedApi MakeApi() {
  PaddedApi table{};
  PJRT_Api& api = table.api;
  api.struct_size = PJRT_Api_STRUCT_SIZE;
  api.extension_start = nullptr;
  api.pjrt_api_version.struct_size = PJRT_Api_Version_STRUCT_SIZE;
  api.pjrt_api_version.extension_start = nullptr;
  api.pjrt_api_version.major_version = PJRT_API_MAJOR;
  api.pjrt_api_version.minor_version = PJRT_API_MINOR;
  FillErrorAndEventSlots(api);
  FillPluginSlots(api);
  FillClientSlots(api);
  FillBufferSlots(api);
  FillExecutableSlots(api);
  FillUnsupportedSlots(api);
  return table;
}

}  // namespace
}  // namespace xla_metal

extern "C" __attribute__((visibility("default"))) const PJRT_Api* GetPjrtApi(void) {
  // Built on first call (thread-safe static initialization), so loading the library runs
  // no code of ours.
  static const xla_metal::PaddedApi table = xla_metal::MakeApi();
  return &table.api;
}
