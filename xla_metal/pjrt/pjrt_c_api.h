// The PJRT C API (ABI version 0.60) as xla-metal implements it.
//
// Written for this project from the published PJRT C API: every struct has the same fields in
// the same order with the same types, every enum the same values, and PJRT_Api lists its
// function slots in the same order, so a framework built against any 0.x PJRT header can use
// this plugin. Extensions are declared only as far as their common PJRT_Extension_Base.
//
// Versioning rules the implementation relies on:
//  * Every argument struct starts with `struct_size` and `extension_start`. A caller fills
//    `struct_size` with the size it knows (NAME_STRUCT_SIZE of its own header); older callers
//    pass smaller structs, so a field may be touched only when it lies within struct_size.
//  * Fields and API slots are only ever appended, never moved.
#ifndef XLA_METAL_PJRT_PJRT_C_API_H_
#define XLA_METAL_PJRT_PJRT_C_API_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PJRT_API_MAJOR 0
#define PJRT_API_MINOR 60

// Size of `type` up to and including `last_field`.
#define PJRT_STRUCT_SIZE(type, last_field) \
  (offsetof(type, last_field) + sizeof(((type*)0)->last_field))

// Declares NAME_STRUCT_SIZE: the size a caller of this ABI version reports in struct_size.
#define XM_PJRT_STRUCT_SIZE(type, last_field) \
  enum { type##_STRUCT_SIZE = PJRT_STRUCT_SIZE(type, last_field) }

// The two fields every argument struct begins with.
#define XM_PJRT_ARGS_HEAD   \
  size_t struct_size;       \
  PJRT_Extension_Base* extension_start

// Declares the function type NAME taking NAME_Args* and returning PJRT_Error* (NULL = success).
#define XM_PJRT_FUNCTION(name) typedef PJRT_Error* name(name##_Args* args)

#ifdef __cplusplus
extern "C" {
#endif

// ---------------------------------------------------------------------------- Extensions

typedef enum {
  PJRT_Extension_Type_Gpu_Custom_Call = 0,
  PJRT_Extension_Type_Profiler,
  PJRT_Extension_Type_Custom_Partitioner,
  PJRT_Extension_Type_Stream,
  PJRT_Extension_Type_Layouts,
  PJRT_Extension_Type_FFI,
  PJRT_Extension_Type_MemoryDescriptions,
} PJRT_Extension_Type;

// A node of the singly linked list of optional extensions.
typedef struct PJRT_Extension_Base {
  size_t struct_size;
  PJRT_Extension_Type type;
  struct PJRT_Extension_Base* next;
} PJRT_Extension_Base;
XM_PJRT_STRUCT_SIZE(PJRT_Extension_Base, next);

// ---------------------------------------------------------------------------- Version

typedef struct PJRT_Api_Version {
  XM_PJRT_ARGS_HEAD;
  int major_version;  // PJRT_API_MAJOR of the plugin
  int minor_version;  // PJRT_API_MINOR of the plugin
} PJRT_Api_Version;
XM_PJRT_STRUCT_SIZE(PJRT_Api_Version, minor_version);

// ---------------------------------------------------------------------------- Errors

// Opaque; created by the plugin, freed by the caller with PJRT_Error_Destroy.
typedef struct PJRT_Error PJRT_Error;

typedef struct PJRT_Error_Destroy_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Error* error;  // may be NULL
} PJRT_Error_Destroy_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Error_Destroy_Args, error);
typedef void PJRT_Error_Destroy(PJRT_Error_Destroy_Args* args);

typedef struct PJRT_Error_Message_Args {
  XM_PJRT_ARGS_HEAD;
  const PJRT_Error* error;
  const char* message;  // out, lives as long as `error`
  size_t message_size;  // out
} PJRT_Error_Message_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Error_Message_Args, message_size);
typedef void PJRT_Error_Message(PJRT_Error_Message_Args* args);

// The absl::StatusCode values.
typedef enum {
  PJRT_Error_Code_CANCELLED = 1,
  PJRT_Error_Code_UNKNOWN = 2,
  PJRT_Error_Code_INVALID_ARGUMENT = 3,
  PJRT_Error_Code_DEADLINE_EXCEEDED = 4,
  PJRT_Error_Code_NOT_FOUND = 5,
  PJRT_Error_Code_ALREADY_EXISTS = 6,
  PJRT_Error_Code_PERMISSION_DENIED = 7,
  PJRT_Error_Code_RESOURCE_EXHAUSTED = 8,
  PJRT_Error_Code_FAILED_PRECONDITION = 9,
  PJRT_Error_Code_ABORTED = 10,
  PJRT_Error_Code_OUT_OF_RANGE = 11,
  PJRT_Error_Code_UNIMPLEMENTED = 12,
  PJRT_Error_Code_INTERNAL = 13,
  PJRT_Error_Code_UNAVAILABLE = 14,
  PJRT_Error_Code_DATA_LOSS = 15,
  PJRT_Error_Code_UNAUTHENTICATED = 16
} PJRT_Error_Code;

typedef struct PJRT_Error_GetCode_Args {
  XM_PJRT_ARGS_HEAD;
  const PJRT_Error* error;
  PJRT_Error_Code code;  // out
} PJRT_Error_GetCode_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Error_GetCode_Args, code);
XM_PJRT_FUNCTION(PJRT_Error_GetCode);

// Given by the plugin to caller-supplied callbacks so they can report an error; copies
// `message`.
typedef PJRT_Error* (*PJRT_CallbackError)(PJRT_Error_Code code, const char* message,
                                          size_t message_size);

// ---------------------------------------------------------------------------- Named values

typedef enum {
  PJRT_NamedValue_kString = 0,
  PJRT_NamedValue_kInt64,
  PJRT_NamedValue_kInt64List,
  PJRT_NamedValue_kFloat,
  PJRT_NamedValue_kBool,
} PJRT_NamedValue_Type;

typedef struct PJRT_NamedValue {
  XM_PJRT_ARGS_HEAD;
  const char* name;
  size_t name_size;
  PJRT_NamedValue_Type type;
  union {
    const char* string_value;
    int64_t int64_value;
    const int64_t* int64_array_value;
    float float_value;
    bool bool_value;
  };
  size_t value_size;  // element count for strings and lists, 1 for scalars
} PJRT_NamedValue;
XM_PJRT_STRUCT_SIZE(PJRT_NamedValue, value_size);

// ---------------------------------------------------------------------------- Plugin

typedef struct PJRT_Plugin_Initialize_Args {
  XM_PJRT_ARGS_HEAD;
} PJRT_Plugin_Initialize_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Plugin_Initialize_Args, extension_start);
XM_PJRT_FUNCTION(PJRT_Plugin_Initialize);

typedef struct PJRT_Plugin_Attributes_Args {
  XM_PJRT_ARGS_HEAD;
  const PJRT_NamedValue* attributes;  // out, lives as long as the process
  size_t num_attributes;              // out
} PJRT_Plugin_Attributes_Args;
// The size deliberately stops at `attributes`, as in the published API.
XM_PJRT_STRUCT_SIZE(PJRT_Plugin_Attributes_Args, attributes);
XM_PJRT_FUNCTION(PJRT_Plugin_Attributes);

// ---------------------------------------------------------------------------- Events

// Opaque; completes once, optionally with an error. Freed with PJRT_Event_Destroy.
typedef struct PJRT_Event PJRT_Event;

typedef struct PJRT_Event_Destroy_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Event* event;
} PJRT_Event_Destroy_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Event_Destroy_Args, event);
XM_PJRT_FUNCTION(PJRT_Event_Destroy);

typedef struct PJRT_Event_IsReady_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Event* event;
  bool is_ready;  // out
} PJRT_Event_IsReady_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Event_IsReady_Args, is_ready);
XM_PJRT_FUNCTION(PJRT_Event_IsReady);

// Returns (a fresh copy of) the error the event completed with; only valid once ready.
typedef struct PJRT_Event_Error_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Event* event;
} PJRT_Event_Error_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Event_Error_Args, event);
XM_PJRT_FUNCTION(PJRT_Event_Error);

// Blocks until ready and returns (a fresh copy of) the event's error.
typedef struct PJRT_Event_Await_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Event* event;
} PJRT_Event_Await_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Event_Await_Args, event);
XM_PJRT_FUNCTION(PJRT_Event_Await);

// Receives ownership of `error` (NULL on success).
typedef void (*PJRT_Event_OnReadyCallback)(PJRT_Error* error, void* user_arg);

typedef struct PJRT_Event_OnReady_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Event* event;
  PJRT_Event_OnReadyCallback callback;
  void* user_arg;
} PJRT_Event_OnReady_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Event_OnReady_Args, user_arg);
XM_PJRT_FUNCTION(PJRT_Event_OnReady);

// ---------------------------------------------------------------------------- Client

typedef struct PJRT_Client PJRT_Client;
typedef struct PJRT_Device PJRT_Device;
typedef struct PJRT_Memory PJRT_Memory;
typedef struct PJRT_ShapeSpec PJRT_ShapeSpec;
typedef struct PJRT_DeviceDescription PJRT_DeviceDescription;
typedef struct PJRT_TopologyDescription PJRT_TopologyDescription;
typedef struct PJRT_Executable PJRT_Executable;
typedef struct PJRT_LoadedExecutable PJRT_LoadedExecutable;
typedef struct PJRT_Buffer PJRT_Buffer;
typedef struct PJRT_AsyncHostToDeviceTransferManager PJRT_AsyncHostToDeviceTransferManager;

// Key-value store callbacks a caller may give PJRT_Client_Create (multi-process setups).
typedef void (*PJRT_KeyValueGetCallback_ValueDeleter)(char* value);

typedef struct PJRT_KeyValueGetCallback_Args {
  XM_PJRT_ARGS_HEAD;
  const char* key;
  size_t key_size;
  int timeout_in_ms;
  PJRT_CallbackError* callback_error;
  void* user_arg;
  char* value;        // out
  size_t value_size;  // out
  PJRT_KeyValueGetCallback_ValueDeleter value_deleter_callback;  // out
} PJRT_KeyValueGetCallback_Args;
XM_PJRT_STRUCT_SIZE(PJRT_KeyValueGetCallback_Args, value_deleter_callback);
typedef PJRT_Error* (*PJRT_KeyValueGetCallback)(PJRT_KeyValueGetCallback_Args* args);

typedef struct PJRT_KeyValuePutCallback_Args {
  XM_PJRT_ARGS_HEAD;
  const char* key;
  size_t key_size;
  const char* value;
  size_t value_size;
  PJRT_CallbackError* callback_error;
  void* user_arg;
} PJRT_KeyValuePutCallback_Args;
XM_PJRT_STRUCT_SIZE(PJRT_KeyValuePutCallback_Args, user_arg);
typedef PJRT_Error* (*PJRT_KeyValuePutCallback)(PJRT_KeyValuePutCallback_Args* args);

typedef struct PJRT_Client_Create_Args {
  XM_PJRT_ARGS_HEAD;
  const PJRT_NamedValue* create_options;
  size_t num_options;
  PJRT_KeyValueGetCallback kv_get_callback;
  void* kv_get_user_arg;
  PJRT_KeyValuePutCallback kv_put_callback;
  void* kv_put_user_arg;
  PJRT_Client* client;  // out
} PJRT_Client_Create_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Client_Create_Args, client);
XM_PJRT_FUNCTION(PJRT_Client_Create);

typedef struct PJRT_Client_Destroy_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Client* client;
} PJRT_Client_Destroy_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Client_Destroy_Args, client);
XM_PJRT_FUNCTION(PJRT_Client_Destroy);

typedef struct PJRT_Client_PlatformName_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Client* client;
  const char* platform_name;  // out, owned by the client
  size_t platform_name_size;  // out
} PJRT_Client_PlatformName_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Client_PlatformName_Args, platform_name_size);
XM_PJRT_FUNCTION(PJRT_Client_PlatformName);

typedef struct PJRT_Client_ProcessIndex_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Client* client;
  int process_index;  // out
} PJRT_Client_ProcessIndex_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Client_ProcessIndex_Args, process_index);
XM_PJRT_FUNCTION(PJRT_Client_ProcessIndex);

typedef struct PJRT_Client_PlatformVersion_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Client* client;
  const char* platform_version;  // out, owned by the client
  size_t platform_version_size;  // out
} PJRT_Client_PlatformVersion_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Client_PlatformVersion_Args, platform_version_size);
XM_PJRT_FUNCTION(PJRT_Client_PlatformVersion);

typedef struct PJRT_Client_TopologyDescription_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Client* client;
  PJRT_TopologyDescription* topology;  // out, owned by the client
} PJRT_Client_TopologyDescription_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Client_TopologyDescription_Args, topology);
XM_PJRT_FUNCTION(PJRT_Client_TopologyDescription);

typedef struct PJRT_Client_Devices_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Client* client;
  PJRT_Device* const* devices;  // out
  size_t num_devices;           // out
} PJRT_Client_Devices_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Client_Devices_Args, num_devices);
XM_PJRT_FUNCTION(PJRT_Client_Devices);

typedef struct PJRT_Client_AddressableDevices_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Client* client;
  PJRT_Device* const* addressable_devices;  // out
  size_t num_addressable_devices;           // out
} PJRT_Client_AddressableDevices_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Client_AddressableDevices_Args, num_addressable_devices);
XM_PJRT_FUNCTION(PJRT_Client_AddressableDevices);

typedef struct PJRT_Client_LookupDevice_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Client* client;
  int id;
  PJRT_Device* device;  // out
} PJRT_Client_LookupDevice_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Client_LookupDevice_Args, device);
XM_PJRT_FUNCTION(PJRT_Client_LookupDevice);

typedef struct PJRT_Client_LookupAddressableDevice_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Client* client;
  int local_hardware_id;
  PJRT_Device* addressable_device;  // out
} PJRT_Client_LookupAddressableDevice_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Client_LookupAddressableDevice_Args, addressable_device);
XM_PJRT_FUNCTION(PJRT_Client_LookupAddressableDevice);

typedef struct PJRT_Client_AddressableMemories_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Client* client;
  PJRT_Memory* const* addressable_memories;  // out
  size_t num_addressable_memories;           // out
} PJRT_Client_AddressableMemories_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Client_AddressableMemories_Args, num_addressable_memories);
XM_PJRT_FUNCTION(PJRT_Client_AddressableMemories);

// A program to compile. `format` is "hlo", "hlo_with_config" or "mlir" (MLIR bytecode or
// text); JAX sends "mlir" holding a StableHLO portable artifact.
typedef struct PJRT_Program {
  XM_PJRT_ARGS_HEAD;
  char* code;
  size_t code_size;
  const char* format;
  size_t format_size;
} PJRT_Program;
XM_PJRT_STRUCT_SIZE(PJRT_Program, format_size);

typedef struct PJRT_Client_Compile_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Client* client;
  const PJRT_Program* program;
  const char* compile_options;  // a serialized xla.CompileOptionsProto
  size_t compile_options_size;
  PJRT_LoadedExecutable* executable;  // out
} PJRT_Client_Compile_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Client_Compile_Args, executable);
XM_PJRT_FUNCTION(PJRT_Client_Compile);

typedef struct PJRT_Client_DefaultDeviceAssignment_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Client* client;
  int num_replicas;
  int num_partitions;
  size_t default_assignment_size;  // capacity of default_assignment, >= replicas * partitions
  int* default_assignment;         // caller-owned; receives replicas * partitions device ids
} PJRT_Client_DefaultDeviceAssignment_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Client_DefaultDeviceAssignment_Args, default_assignment);
XM_PJRT_FUNCTION(PJRT_Client_DefaultDeviceAssignment);

typedef struct PJRT_AsyncHostToDeviceTransferManager_Destroy_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_AsyncHostToDeviceTransferManager* transfer_manager;
} PJRT_AsyncHostToDeviceTransferManager_Destroy_Args;
XM_PJRT_STRUCT_SIZE(PJRT_AsyncHostToDeviceTransferManager_Destroy_Args, transfer_manager);
XM_PJRT_FUNCTION(PJRT_AsyncHostToDeviceTransferManager_Destroy);

typedef struct PJRT_AsyncHostToDeviceTransferManager_TransferData_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_AsyncHostToDeviceTransferManager* transfer_manager;
  int buffer_index;
  const void* data;
  int64_t offset;
  int64_t transfer_size;
  bool is_last_transfer;
  PJRT_Event* done_with_h2d_transfer;  // out
} PJRT_AsyncHostToDeviceTransferManager_TransferData_Args;
XM_PJRT_STRUCT_SIZE(PJRT_AsyncHostToDeviceTransferManager_TransferData_Args,
                    done_with_h2d_transfer);
XM_PJRT_FUNCTION(PJRT_AsyncHostToDeviceTransferManager_TransferData);

// Element types; the values are xla::PrimitiveType's order, not its numbers.
typedef enum {
  PJRT_Buffer_Type_INVALID,
  PJRT_Buffer_Type_PRED,
  PJRT_Buffer_Type_S8,
  PJRT_Buffer_Type_S16,
  PJRT_Buffer_Type_S32,
  PJRT_Buffer_Type_S64,
  PJRT_Buffer_Type_U8,
  PJRT_Buffer_Type_U16,
  PJRT_Buffer_Type_U32,
  PJRT_Buffer_Type_U64,
  PJRT_Buffer_Type_F16,
  PJRT_Buffer_Type_F32,
  PJRT_Buffer_Type_F64,
  PJRT_Buffer_Type_BF16,
  PJRT_Buffer_Type_C64,
  PJRT_Buffer_Type_C128,
  PJRT_Buffer_Type_F8E5M2,
  PJRT_Buffer_Type_F8E4M3FN,
  PJRT_Buffer_Type_F8E4M3B11FNUZ,
  PJRT_Buffer_Type_F8E5M2FNUZ,
  PJRT_Buffer_Type_F8E4M3FNUZ,
  PJRT_Buffer_Type_S4,
  PJRT_Buffer_Type_U4,
  PJRT_Buffer_Type_TOKEN,
  PJRT_Buffer_Type_S2,
  PJRT_Buffer_Type_U2,
  PJRT_Buffer_Type_F8E4M3,
  PJRT_Buffer_Type_F8E3M4,
  PJRT_Buffer_Type_F8E8M0FNU,
  PJRT_Buffer_Type_F4E2M1FN,
} PJRT_Buffer_Type;

// How long the caller keeps the host data of PJRT_Client_BufferFromHostBuffer alive.
typedef enum {
  PJRT_HostBufferSemantics_kImmutableOnlyDuringCall,
  PJRT_HostBufferSemantics_kImmutableUntilTransferCompletes,
  PJRT_HostBufferSemantics_kImmutableZeroCopy,
  PJRT_HostBufferSemantics_kMutableZeroCopy,
} PJRT_HostBufferSemantics;

typedef enum {
  PJRT_Buffer_MemoryLayout_Type_Tiled = 0,
  PJRT_Buffer_MemoryLayout_Type_Strides,
} PJRT_Buffer_MemoryLayout_Type;

typedef struct PJRT_Buffer_MemoryLayout_Tiled {
  XM_PJRT_ARGS_HEAD;
  const int64_t* minor_to_major;  // logical dimension numbers, most minor first
  size_t minor_to_major_size;
  const int64_t* tile_dims;       // all tiles' dimensions back to back
  const size_t* tile_dim_sizes;   // rank of each tile
  size_t num_tiles;
} PJRT_Buffer_MemoryLayout_Tiled;
XM_PJRT_STRUCT_SIZE(PJRT_Buffer_MemoryLayout_Tiled, num_tiles);

typedef struct PJRT_Buffer_MemoryLayout_Strides {
  XM_PJRT_ARGS_HEAD;
  const int64_t* byte_strides;  // one per dimension, may be negative
  size_t num_byte_strides;
} PJRT_Buffer_MemoryLayout_Strides;
XM_PJRT_STRUCT_SIZE(PJRT_Buffer_MemoryLayout_Strides, num_byte_strides);

typedef struct PJRT_Buffer_MemoryLayout {
  XM_PJRT_ARGS_HEAD;
  union {
    PJRT_Buffer_MemoryLayout_Tiled tiled;
    PJRT_Buffer_MemoryLayout_Strides strides;
  };
  PJRT_Buffer_MemoryLayout_Type type;  // which union member is meant
} PJRT_Buffer_MemoryLayout;
XM_PJRT_STRUCT_SIZE(PJRT_Buffer_MemoryLayout, type);

typedef struct PJRT_Client_BufferFromHostBuffer_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Client* client;
  const void* data;
  PJRT_Buffer_Type type;
  const int64_t* dims;
  size_t num_dims;
  const int64_t* byte_strides;  // num_dims entries, or none (dense row-major)
  size_t num_byte_strides;
  PJRT_HostBufferSemantics host_buffer_semantics;
  PJRT_Device* device;
  PJRT_Memory* memory;                       // takes precedence over `device` when set
  PJRT_Buffer_MemoryLayout* device_layout;   // NULL: dense row-major
  PJRT_Event* done_with_host_buffer;         // out: `data` may be freed once ready
  PJRT_Buffer* buffer;                       // out
} PJRT_Client_BufferFromHostBuffer_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Client_BufferFromHostBuffer_Args, buffer);
XM_PJRT_FUNCTION(PJRT_Client_BufferFromHostBuffer);

typedef struct PJRT_Client_CreateViewOfDeviceBuffer_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Client* client;
  void* device_buffer_ptr;
  const int64_t* dims;
  size_t num_dims;
  PJRT_Buffer_Type element_type;
  PJRT_Buffer_MemoryLayout* layout;
  PJRT_Device* device;
  void (*on_delete_callback)(void* device_buffer_ptr, void* user_arg);
  void* on_delete_callback_arg;
  intptr_t stream;
  PJRT_Buffer* buffer;  // out
} PJRT_Client_CreateViewOfDeviceBuffer_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Client_CreateViewOfDeviceBuffer_Args, buffer);
XM_PJRT_FUNCTION(PJRT_Client_CreateViewOfDeviceBuffer);

struct PJRT_ShapeSpec {
  XM_PJRT_ARGS_HEAD;
  const int64_t* dims;
  size_t num_dims;
  PJRT_Buffer_Type element_type;
};
XM_PJRT_STRUCT_SIZE(PJRT_ShapeSpec, element_type);

typedef struct PJRT_Client_CreateBuffersForAsyncHostToDevice_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Client* client;
  PJRT_ShapeSpec* shape_specs;
  size_t num_shape_specs;
  PJRT_Buffer_MemoryLayout** device_layouts;
  size_t num_device_layouts;
  PJRT_Memory* memory;
  PJRT_AsyncHostToDeviceTransferManager* transfer_manager;  // out
} PJRT_Client_CreateBuffersForAsyncHostToDevice_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Client_CreateBuffersForAsyncHostToDevice_Args, transfer_manager);
XM_PJRT_FUNCTION(PJRT_Client_CreateBuffersForAsyncHostToDevice);

// ---------------------------------------------------------------------------- Device descriptions

typedef struct PJRT_DeviceDescription_Id_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_DeviceDescription* device_description;
  int id;  // out
} PJRT_DeviceDescription_Id_Args;
XM_PJRT_STRUCT_SIZE(PJRT_DeviceDescription_Id_Args, id);
XM_PJRT_FUNCTION(PJRT_DeviceDescription_Id);

typedef struct PJRT_DeviceDescription_ProcessIndex_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_DeviceDescription* device_description;
  int process_index;  // out
} PJRT_DeviceDescription_ProcessIndex_Args;
XM_PJRT_STRUCT_SIZE(PJRT_DeviceDescription_ProcessIndex_Args, process_index);
XM_PJRT_FUNCTION(PJRT_DeviceDescription_ProcessIndex);

// Note the order: the count comes before the array here.
typedef struct PJRT_DeviceDescription_Attributes_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_DeviceDescription* device_description;
  size_t num_attributes;              // out
  const PJRT_NamedValue* attributes;  // out
} PJRT_DeviceDescription_Attributes_Args;
XM_PJRT_STRUCT_SIZE(PJRT_DeviceDescription_Attributes_Args, attributes);
XM_PJRT_FUNCTION(PJRT_DeviceDescription_Attributes);

typedef struct PJRT_DeviceDescription_Kind_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_DeviceDescription* device_description;
  const char* device_kind;  // out
  size_t device_kind_size;  // out
} PJRT_DeviceDescription_Kind_Args;
XM_PJRT_STRUCT_SIZE(PJRT_DeviceDescription_Kind_Args, device_kind_size);
XM_PJRT_FUNCTION(PJRT_DeviceDescription_Kind);

typedef struct PJRT_DeviceDescription_DebugString_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_DeviceDescription* device_description;
  const char* debug_string;  // out
  size_t debug_string_size;  // out
} PJRT_DeviceDescription_DebugString_Args;
XM_PJRT_STRUCT_SIZE(PJRT_DeviceDescription_DebugString_Args, debug_string_size);
XM_PJRT_FUNCTION(PJRT_DeviceDescription_DebugString);

typedef struct PJRT_DeviceDescription_ToString_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_DeviceDescription* device_description;
  const char* to_string;  // out
  size_t to_string_size;  // out
} PJRT_DeviceDescription_ToString_Args;
XM_PJRT_STRUCT_SIZE(PJRT_DeviceDescription_ToString_Args, to_string_size);
XM_PJRT_FUNCTION(PJRT_DeviceDescription_ToString);

// ---------------------------------------------------------------------------- Devices

typedef struct PJRT_Device_GetDescription_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Device* device;
  PJRT_DeviceDescription* device_description;  // out
} PJRT_Device_GetDescription_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Device_GetDescription_Args, device_description);
XM_PJRT_FUNCTION(PJRT_Device_GetDescription);

typedef struct PJRT_Device_IsAddressable_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Device* device;
  bool is_addressable;  // out
} PJRT_Device_IsAddressable_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Device_IsAddressable_Args, is_addressable);
XM_PJRT_FUNCTION(PJRT_Device_IsAddressable);

typedef struct PJRT_Device_LocalHardwareId_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Device* device;
  int local_hardware_id;  // out
} PJRT_Device_LocalHardwareId_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Device_LocalHardwareId_Args, local_hardware_id);
XM_PJRT_FUNCTION(PJRT_Device_LocalHardwareId);

typedef struct PJRT_Device_AddressableMemories_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Device* device;
  PJRT_Memory* const* memories;  // out
  size_t num_memories;           // out
} PJRT_Device_AddressableMemories_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Device_AddressableMemories_Args, num_memories);
XM_PJRT_FUNCTION(PJRT_Device_AddressableMemories);

typedef struct PJRT_Device_DefaultMemory_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Device* device;
  PJRT_Memory* memory;  // out
} PJRT_Device_DefaultMemory_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Device_DefaultMemory_Args, memory);
XM_PJRT_FUNCTION(PJRT_Device_DefaultMemory);

// All outputs but bytes_in_use are optional; each has an `_is_set` flag.
typedef struct PJRT_Device_MemoryStats_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Device* device;
  int64_t bytes_in_use;
  int64_t peak_bytes_in_use;
  bool peak_bytes_in_use_is_set;
  int64_t num_allocs;
  bool num_allocs_is_set;
  int64_t largest_alloc_size;
  bool largest_alloc_size_is_set;
  int64_t bytes_limit;
  bool bytes_limit_is_set;
  int64_t bytes_reserved;
  bool bytes_reserved_is_set;
  int64_t peak_bytes_reserved;
  bool peak_bytes_reserved_is_set;
  int64_t bytes_reservable_limit;
  bool bytes_reservable_limit_is_set;
  int64_t largest_free_block_bytes;
  bool largest_free_block_bytes_is_set;
  int64_t pool_bytes;
  bool pool_bytes_is_set;
  int64_t peak_pool_bytes;
  bool peak_pool_bytes_is_set;
} PJRT_Device_MemoryStats_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Device_MemoryStats_Args, peak_pool_bytes_is_set);
XM_PJRT_FUNCTION(PJRT_Device_MemoryStats);

// ---------------------------------------------------------------------------- Memories

typedef struct PJRT_Memory_Id_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Memory* memory;
  int id;  // out
} PJRT_Memory_Id_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Memory_Id_Args, id);
XM_PJRT_FUNCTION(PJRT_Memory_Id);

typedef struct PJRT_Memory_Kind_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Memory* memory;
  const char* kind;  // out
  size_t kind_size;  // out
} PJRT_Memory_Kind_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Memory_Kind_Args, kind_size);
XM_PJRT_FUNCTION(PJRT_Memory_Kind);

typedef struct PJRT_Memory_Kind_Id_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Memory* memory;
  int kind_id;  // out
} PJRT_Memory_Kind_Id_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Memory_Kind_Id_Args, kind_id);
XM_PJRT_FUNCTION(PJRT_Memory_Kind_Id);

typedef struct PJRT_Memory_DebugString_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Memory* memory;
  const char* debug_string;  // out
  size_t debug_string_size;  // out
} PJRT_Memory_DebugString_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Memory_DebugString_Args, debug_string_size);
XM_PJRT_FUNCTION(PJRT_Memory_DebugString);

typedef struct PJRT_Memory_ToString_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Memory* memory;
  const char* to_string;  // out
  size_t to_string_size;  // out
} PJRT_Memory_ToString_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Memory_ToString_Args, to_string_size);
XM_PJRT_FUNCTION(PJRT_Memory_ToString);

typedef struct PJRT_Memory_AddressableByDevices_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Memory* memory;
  PJRT_Device* const* devices;  // out
  size_t num_devices;           // out
} PJRT_Memory_AddressableByDevices_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Memory_AddressableByDevices_Args, num_devices);
XM_PJRT_FUNCTION(PJRT_Memory_AddressableByDevices);

// ---------------------------------------------------------------------------- Execute contexts

typedef struct PJRT_ExecuteContext PJRT_ExecuteContext;

typedef struct PJRT_ExecuteContext_Create_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_ExecuteContext* context;  // out
} PJRT_ExecuteContext_Create_Args;
XM_PJRT_STRUCT_SIZE(PJRT_ExecuteContext_Create_Args, context);
XM_PJRT_FUNCTION(PJRT_ExecuteContext_Create);

typedef struct PJRT_ExecuteContext_Destroy_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_ExecuteContext* context;
} PJRT_ExecuteContext_Destroy_Args;
XM_PJRT_STRUCT_SIZE(PJRT_ExecuteContext_Destroy_Args, context);
XM_PJRT_FUNCTION(PJRT_ExecuteContext_Destroy);

// ---------------------------------------------------------------------------- Executables

typedef struct PJRT_Executable_Destroy_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Executable* executable;
} PJRT_Executable_Destroy_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Executable_Destroy_Args, executable);
XM_PJRT_FUNCTION(PJRT_Executable_Destroy);

typedef struct PJRT_LoadedExecutable_Destroy_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_LoadedExecutable* executable;
} PJRT_LoadedExecutable_Destroy_Args;
XM_PJRT_STRUCT_SIZE(PJRT_LoadedExecutable_Destroy_Args, executable);
XM_PJRT_FUNCTION(PJRT_LoadedExecutable_Destroy);

typedef struct PJRT_LoadedExecutable_GetExecutable_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_LoadedExecutable* loaded_executable;
  PJRT_Executable* executable;  // out, freed by the caller
} PJRT_LoadedExecutable_GetExecutable_Args;
XM_PJRT_STRUCT_SIZE(PJRT_LoadedExecutable_GetExecutable_Args, executable);
XM_PJRT_FUNCTION(PJRT_LoadedExecutable_GetExecutable);

typedef struct PJRT_Executable_Name_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Executable* executable;
  const char* executable_name;  // out
  size_t executable_name_size;  // out
} PJRT_Executable_Name_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Executable_Name_Args, executable_name_size);
XM_PJRT_FUNCTION(PJRT_Executable_Name);

typedef struct PJRT_Executable_NumReplicas_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Executable* executable;
  size_t num_replicas;  // out
} PJRT_Executable_NumReplicas_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Executable_NumReplicas_Args, num_replicas);
XM_PJRT_FUNCTION(PJRT_Executable_NumReplicas);

typedef struct PJRT_Executable_NumPartitions_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Executable* executable;
  size_t num_partitions;  // out
} PJRT_Executable_NumPartitions_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Executable_NumPartitions_Args, num_partitions);
XM_PJRT_FUNCTION(PJRT_Executable_NumPartitions);

typedef struct PJRT_LoadedExecutable_AddressableDevices_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_LoadedExecutable* executable;
  PJRT_Device* const* addressable_devices;  // out
  size_t num_addressable_devices;           // out
} PJRT_LoadedExecutable_AddressableDevices_Args;
XM_PJRT_STRUCT_SIZE(PJRT_LoadedExecutable_AddressableDevices_Args, num_addressable_devices);
XM_PJRT_FUNCTION(PJRT_LoadedExecutable_AddressableDevices);

// Two calls: with program->code NULL it reports code_size; then with a buffer of that size
// it fills it. The plugin sets program->format (plugin-owned) both times.
typedef struct PJRT_Executable_OptimizedProgram_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Executable* executable;
  PJRT_Program* program;
} PJRT_Executable_OptimizedProgram_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Executable_OptimizedProgram_Args, program);
XM_PJRT_FUNCTION(PJRT_Executable_OptimizedProgram);

typedef struct PJRT_LoadedExecutable_Delete_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_LoadedExecutable* executable;
} PJRT_LoadedExecutable_Delete_Args;
XM_PJRT_STRUCT_SIZE(PJRT_LoadedExecutable_Delete_Args, executable);
XM_PJRT_FUNCTION(PJRT_LoadedExecutable_Delete);

typedef struct PJRT_LoadedExecutable_IsDeleted_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_LoadedExecutable* executable;
  bool is_deleted;  // out
} PJRT_LoadedExecutable_IsDeleted_Args;
XM_PJRT_STRUCT_SIZE(PJRT_LoadedExecutable_IsDeleted_Args, is_deleted);
XM_PJRT_FUNCTION(PJRT_LoadedExecutable_IsDeleted);

typedef struct PJRT_Chunk {
  void* data;
  size_t size;
  void (*deleter)(void* data, void* deleter_arg);
  void* deleter_arg;
} PJRT_Chunk;

typedef struct PJRT_CopyToDeviceStream PJRT_CopyToDeviceStream;

struct PJRT_TransferMetadata;

// Host callbacks for send/recv ops inside a program.
typedef PJRT_Error* (*PJRT_SendCallback)(PJRT_Chunk* chunk, PJRT_CallbackError* callback_error,
                                         size_t total_size_in_bytes, bool done,
                                         void* user_arg);
typedef void (*PJRT_RecvCallback)(PJRT_CopyToDeviceStream* stream, void* user_arg);

typedef struct PJRT_SendCallbackInfo {
  int64_t channel_id;
  void* user_arg;
  PJRT_SendCallback send_callback;
} PJRT_SendCallbackInfo;
XM_PJRT_STRUCT_SIZE(PJRT_SendCallbackInfo, send_callback);

typedef struct PJRT_RecvCallbackInfo {
  int64_t channel_id;
  void* user_arg;
  PJRT_RecvCallback recv_callback;
} PJRT_RecvCallbackInfo;
XM_PJRT_STRUCT_SIZE(PJRT_RecvCallbackInfo, recv_callback);

typedef struct PJRT_ExecuteOptions {
  XM_PJRT_ARGS_HEAD;
  PJRT_SendCallbackInfo** send_callbacks;  // [num_devices][num_send_ops]
  PJRT_RecvCallbackInfo** recv_callbacks;  // [num_devices][num_recv_ops]
  size_t num_send_ops;
  size_t num_recv_ops;
  int launch_id;
  const int64_t* non_donatable_input_indices;  // arguments that must not be donated
  size_t num_non_donatable_input_indices;
} PJRT_ExecuteOptions;
XM_PJRT_STRUCT_SIZE(PJRT_ExecuteOptions, num_non_donatable_input_indices);

typedef struct PJRT_LoadedExecutable_Execute_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_LoadedExecutable* executable;
  PJRT_ExecuteOptions* options;
  PJRT_Buffer* const* const* argument_lists;  // [num_devices][num_args]
  size_t num_devices;
  size_t num_args;
  PJRT_Buffer** const* output_lists;     // caller-allocated [num_devices][num_outputs]; filled
  PJRT_Event** device_complete_events;   // NULL, or num_devices slots to fill
  PJRT_Device* execute_device;           // NULL: the devices chosen at compile time
} PJRT_LoadedExecutable_Execute_Args;
XM_PJRT_STRUCT_SIZE(PJRT_LoadedExecutable_Execute_Args, execute_device);
XM_PJRT_FUNCTION(PJRT_LoadedExecutable_Execute);

typedef struct PJRT_Executable_NumOutputs_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Executable* executable;
  size_t num_outputs;  // out
} PJRT_Executable_NumOutputs_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Executable_NumOutputs_Args, num_outputs);
XM_PJRT_FUNCTION(PJRT_Executable_NumOutputs);

typedef struct PJRT_Executable_SizeOfGeneratedCodeInBytes_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Executable* executable;
  int64_t size_in_bytes;  // out
} PJRT_Executable_SizeOfGeneratedCodeInBytes_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Executable_SizeOfGeneratedCodeInBytes_Args, size_in_bytes);
XM_PJRT_FUNCTION(PJRT_Executable_SizeOfGeneratedCodeInBytes);

typedef struct PJRT_Executable_Fingerprint_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Executable* executable;
  const char* executable_fingerprint;  // out, lives as long as the executable
  size_t executable_fingerprint_size;  // out
} PJRT_Executable_Fingerprint_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Executable_Fingerprint_Args, executable_fingerprint_size);
XM_PJRT_FUNCTION(PJRT_Executable_Fingerprint);

// Note the order: the count comes before the array here.
typedef struct PJRT_Executable_GetCostAnalysis_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Executable* executable;
  size_t num_properties;              // out
  const PJRT_NamedValue* properties;  // out, lives as long as the executable
} PJRT_Executable_GetCostAnalysis_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Executable_GetCostAnalysis_Args, properties);
XM_PJRT_FUNCTION(PJRT_Executable_GetCostAnalysis);

typedef struct PJRT_Executable_GetCompiledMemoryStats_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Executable* executable;
  int64_t generated_code_size_in_bytes;  // out, device memory
  int64_t argument_size_in_bytes;
  int64_t output_size_in_bytes;
  int64_t alias_size_in_bytes;
  int64_t temp_size_in_bytes;
  int64_t host_generated_code_size_in_bytes;  // out, host memory
  int64_t host_argument_size_in_bytes;
  int64_t host_output_size_in_bytes;
  int64_t host_alias_size_in_bytes;
  int64_t host_temp_size_in_bytes;
} PJRT_Executable_GetCompiledMemoryStats_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Executable_GetCompiledMemoryStats_Args, host_temp_size_in_bytes);
XM_PJRT_FUNCTION(PJRT_Executable_GetCompiledMemoryStats);

typedef struct PJRT_Executable_OutputElementTypes_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Executable* executable;
  PJRT_Buffer_Type* output_types;  // out
  size_t num_output_types;         // out
} PJRT_Executable_OutputElementTypes_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Executable_OutputElementTypes_Args, num_output_types);
XM_PJRT_FUNCTION(PJRT_Executable_OutputElementTypes);

typedef struct PJRT_Executable_OutputDimensions_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Executable* executable;
  size_t num_outputs;        // out
  const int64_t* dims;       // out: every output's dimensions back to back
  const size_t* dim_sizes;   // out: the rank of each output
} PJRT_Executable_OutputDimensions_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Executable_OutputDimensions_Args, dim_sizes);
XM_PJRT_FUNCTION(PJRT_Executable_OutputDimensions);

typedef struct PJRT_Executable_OutputMemoryKinds_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Executable* executable;
  size_t num_outputs;                // out
  const char* const* memory_kinds;   // out
  const size_t* memory_kind_sizes;   // out
} PJRT_Executable_OutputMemoryKinds_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Executable_OutputMemoryKinds_Args, memory_kind_sizes);
XM_PJRT_FUNCTION(PJRT_Executable_OutputMemoryKinds);

// Owns the bytes handed out by PJRT_Executable_Serialize.
typedef struct PJRT_SerializedExecutable PJRT_SerializedExecutable;

typedef struct PJRT_Executable_Serialize_Args {
  XM_PJRT_ARGS_HEAD;
  const PJRT_Executable* executable;
  const char* serialized_bytes;                       // out, owned by serialized_executable
  size_t serialized_bytes_size;                       // out
  PJRT_SerializedExecutable* serialized_executable;   // out
  void (*serialized_executable_deleter)(PJRT_SerializedExecutable* exec);  // out, call once
} PJRT_Executable_Serialize_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Executable_Serialize_Args, serialized_executable_deleter);
XM_PJRT_FUNCTION(PJRT_Executable_Serialize);

typedef struct PJRT_Executable_DeserializeAndLoad_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Client* client;
  const char* serialized_executable;
  size_t serialized_executable_size;
  PJRT_LoadedExecutable* loaded_executable;  // out
} PJRT_Executable_DeserializeAndLoad_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Executable_DeserializeAndLoad_Args, loaded_executable);
XM_PJRT_FUNCTION(PJRT_Executable_DeserializeAndLoad);

// Superseded by PJRT_Executable_Fingerprint; kept for older callers.
typedef struct PJRT_LoadedExecutable_Fingerprint_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_LoadedExecutable* executable;
  const char* executable_fingerprint;  // out
  size_t executable_fingerprint_size;  // out
} PJRT_LoadedExecutable_Fingerprint_Args;
XM_PJRT_STRUCT_SIZE(PJRT_LoadedExecutable_Fingerprint_Args, executable_fingerprint_size);
XM_PJRT_FUNCTION(PJRT_LoadedExecutable_Fingerprint);

// ---------------------------------------------------------------------------- Buffers

typedef struct PJRT_Buffer_Destroy_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Buffer* buffer;
} PJRT_Buffer_Destroy_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Buffer_Destroy_Args, buffer);
XM_PJRT_FUNCTION(PJRT_Buffer_Destroy);

typedef struct PJRT_Buffer_ElementType_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Buffer* buffer;
  PJRT_Buffer_Type type;  // out
} PJRT_Buffer_ElementType_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Buffer_ElementType_Args, type);
XM_PJRT_FUNCTION(PJRT_Buffer_ElementType);

typedef struct PJRT_Buffer_Dimensions_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Buffer* buffer;
  const int64_t* dims;  // out, lives as long as the buffer
  size_t num_dims;      // out
} PJRT_Buffer_Dimensions_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Buffer_Dimensions_Args, num_dims);
XM_PJRT_FUNCTION(PJRT_Buffer_Dimensions);

typedef struct PJRT_Buffer_UnpaddedDimensions_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Buffer* buffer;
  const int64_t* unpadded_dims;  // out
  size_t num_dims;               // out
} PJRT_Buffer_UnpaddedDimensions_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Buffer_UnpaddedDimensions_Args, num_dims);
XM_PJRT_FUNCTION(PJRT_Buffer_UnpaddedDimensions);

typedef struct PJRT_Buffer_DynamicDimensionIndices_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Buffer* buffer;
  const size_t* dynamic_dim_indices;  // out
  size_t num_dynamic_dims;            // out
} PJRT_Buffer_DynamicDimensionIndices_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Buffer_DynamicDimensionIndices_Args, num_dynamic_dims);
XM_PJRT_FUNCTION(PJRT_Buffer_DynamicDimensionIndices);

typedef struct PJRT_Buffer_GetMemoryLayout_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Buffer* buffer;
  PJRT_Buffer_MemoryLayout layout;  // out, its arrays live as long as the buffer
} PJRT_Buffer_GetMemoryLayout_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Buffer_GetMemoryLayout_Args, layout);
XM_PJRT_FUNCTION(PJRT_Buffer_GetMemoryLayout);

typedef struct PJRT_Buffer_ToHostBuffer_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Buffer* src;
  PJRT_Buffer_MemoryLayout* host_layout;  // NULL: the buffer's own layout
  void* dst;                              // NULL: only report dst_size
  size_t dst_size;
  PJRT_Event* event;  // out: ready once dst is filled
} PJRT_Buffer_ToHostBuffer_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Buffer_ToHostBuffer_Args, event);
XM_PJRT_FUNCTION(PJRT_Buffer_ToHostBuffer);

typedef struct PJRT_Buffer_OnDeviceSizeInBytes_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Buffer* buffer;
  size_t on_device_size_in_bytes;  // out
} PJRT_Buffer_OnDeviceSizeInBytes_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Buffer_OnDeviceSizeInBytes_Args, on_device_size_in_bytes);
XM_PJRT_FUNCTION(PJRT_Buffer_OnDeviceSizeInBytes);

// Frees the device memory; the handle stays valid for IsDeleted and Destroy.
typedef struct PJRT_Buffer_Delete_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Buffer* buffer;
} PJRT_Buffer_Delete_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Buffer_Delete_Args, buffer);
XM_PJRT_FUNCTION(PJRT_Buffer_Delete);

typedef struct PJRT_Buffer_IsDeleted_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Buffer* buffer;
  bool is_deleted;  // out
} PJRT_Buffer_IsDeleted_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Buffer_IsDeleted_Args, is_deleted);
XM_PJRT_FUNCTION(PJRT_Buffer_IsDeleted);

typedef struct PJRT_Buffer_CopyRawToHost_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Buffer* buffer;
  void* dst;
  int64_t offset;
  int64_t transfer_size;
  PJRT_Event* event;  // out
} PJRT_Buffer_CopyRawToHost_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Buffer_CopyRawToHost_Args, event);
XM_PJRT_FUNCTION(PJRT_Buffer_CopyRawToHost);

typedef struct PJRT_Buffer_CopyToDevice_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Buffer* buffer;
  PJRT_Device* dst_device;
  PJRT_Buffer* dst_buffer;  // out
} PJRT_Buffer_CopyToDevice_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Buffer_CopyToDevice_Args, dst_buffer);
XM_PJRT_FUNCTION(PJRT_Buffer_CopyToDevice);

typedef struct PJRT_Buffer_CopyToMemory_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Buffer* buffer;
  PJRT_Memory* dst_memory;
  PJRT_Buffer* dst_buffer;  // out
} PJRT_Buffer_CopyToMemory_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Buffer_CopyToMemory_Args, dst_buffer);
XM_PJRT_FUNCTION(PJRT_Buffer_CopyToMemory);

typedef struct PJRT_Buffer_IsOnCpu_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Buffer* buffer;
  bool is_on_cpu;  // out
} PJRT_Buffer_IsOnCpu_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Buffer_IsOnCpu_Args, is_on_cpu);
XM_PJRT_FUNCTION(PJRT_Buffer_IsOnCpu);

typedef struct PJRT_Buffer_Device_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Buffer* buffer;
  PJRT_Device* device;  // out
} PJRT_Buffer_Device_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Buffer_Device_Args, device);
XM_PJRT_FUNCTION(PJRT_Buffer_Device);

typedef struct PJRT_Buffer_Memory_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Buffer* buffer;
  PJRT_Memory* memory;  // out
} PJRT_Buffer_Memory_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Buffer_Memory_Args, memory);
XM_PJRT_FUNCTION(PJRT_Buffer_Memory);

typedef struct PJRT_Buffer_ReadyEvent_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Buffer* buffer;
  PJRT_Event* event;  // out, freed by the caller
} PJRT_Buffer_ReadyEvent_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Buffer_ReadyEvent_Args, event);
XM_PJRT_FUNCTION(PJRT_Buffer_ReadyEvent);

typedef struct PJRT_Buffer_UnsafePointer_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Buffer* buffer;
  uintptr_t buffer_pointer;  // out
} PJRT_Buffer_UnsafePointer_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Buffer_UnsafePointer_Args, buffer_pointer);
XM_PJRT_FUNCTION(PJRT_Buffer_UnsafePointer);

typedef struct PJRT_Buffer_IncreaseExternalReferenceCount_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Buffer* buffer;
} PJRT_Buffer_IncreaseExternalReferenceCount_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Buffer_IncreaseExternalReferenceCount_Args, buffer);
XM_PJRT_FUNCTION(PJRT_Buffer_IncreaseExternalReferenceCount);

typedef struct PJRT_Buffer_DecreaseExternalReferenceCount_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Buffer* buffer;
} PJRT_Buffer_DecreaseExternalReferenceCount_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Buffer_DecreaseExternalReferenceCount_Args, buffer);
XM_PJRT_FUNCTION(PJRT_Buffer_DecreaseExternalReferenceCount);

typedef struct PJRT_Buffer_OpaqueDeviceMemoryDataPointer_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_Buffer* buffer;
  void* device_memory_ptr;  // out
} PJRT_Buffer_OpaqueDeviceMemoryDataPointer_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Buffer_OpaqueDeviceMemoryDataPointer_Args, device_memory_ptr);
XM_PJRT_FUNCTION(PJRT_Buffer_OpaqueDeviceMemoryDataPointer);

// -------------------------------------------------------------------- Copy-to-device streams

typedef struct PJRT_CopyToDeviceStream_Destroy_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_CopyToDeviceStream* stream;
} PJRT_CopyToDeviceStream_Destroy_Args;
XM_PJRT_STRUCT_SIZE(PJRT_CopyToDeviceStream_Destroy_Args, stream);
XM_PJRT_FUNCTION(PJRT_CopyToDeviceStream_Destroy);

typedef struct PJRT_CopyToDeviceStream_AddChunk_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_CopyToDeviceStream* stream;
  PJRT_Chunk* chunk;  // ownership passes to the plugin
  PJRT_Event* transfer_complete;  // out
} PJRT_CopyToDeviceStream_AddChunk_Args;
XM_PJRT_STRUCT_SIZE(PJRT_CopyToDeviceStream_AddChunk_Args, transfer_complete);
XM_PJRT_FUNCTION(PJRT_CopyToDeviceStream_AddChunk);

typedef struct PJRT_CopyToDeviceStream_TotalBytes_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_CopyToDeviceStream* stream;
  int64_t total_bytes;  // out
} PJRT_CopyToDeviceStream_TotalBytes_Args;
XM_PJRT_STRUCT_SIZE(PJRT_CopyToDeviceStream_TotalBytes_Args, total_bytes);
XM_PJRT_FUNCTION(PJRT_CopyToDeviceStream_TotalBytes);

typedef struct PJRT_CopyToDeviceStream_GranuleSize_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_CopyToDeviceStream* stream;
  int64_t granule_size_in_bytes;  // out
} PJRT_CopyToDeviceStream_GranuleSize_Args;
XM_PJRT_STRUCT_SIZE(PJRT_CopyToDeviceStream_GranuleSize_Args, granule_size_in_bytes);
XM_PJRT_FUNCTION(PJRT_CopyToDeviceStream_GranuleSize);

typedef struct PJRT_CopyToDeviceStream_CurrentBytes_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_CopyToDeviceStream* stream;
  int64_t current_bytes;  // out
} PJRT_CopyToDeviceStream_CurrentBytes_Args;
XM_PJRT_STRUCT_SIZE(PJRT_CopyToDeviceStream_CurrentBytes_Args, current_bytes);
XM_PJRT_FUNCTION(PJRT_CopyToDeviceStream_CurrentBytes);

// ---------------------------------------------------------------------------- Topologies

typedef struct PJRT_TopologyDescription_Create_Args {
  XM_PJRT_ARGS_HEAD;
  const char* topology_name;
  size_t topology_name_size;
  const PJRT_NamedValue* create_options;
  size_t num_options;
  PJRT_TopologyDescription* topology;  // out
} PJRT_TopologyDescription_Create_Args;
XM_PJRT_STRUCT_SIZE(PJRT_TopologyDescription_Create_Args, topology);
XM_PJRT_FUNCTION(PJRT_TopologyDescription_Create);

typedef struct PJRT_TopologyDescription_Destroy_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_TopologyDescription* topology;
} PJRT_TopologyDescription_Destroy_Args;
XM_PJRT_STRUCT_SIZE(PJRT_TopologyDescription_Destroy_Args, topology);
XM_PJRT_FUNCTION(PJRT_TopologyDescription_Destroy);

typedef struct PJRT_TopologyDescription_PlatformVersion_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_TopologyDescription* topology;
  const char* platform_version;  // out
  size_t platform_version_size;  // out
} PJRT_TopologyDescription_PlatformVersion_Args;
XM_PJRT_STRUCT_SIZE(PJRT_TopologyDescription_PlatformVersion_Args, platform_version_size);
XM_PJRT_FUNCTION(PJRT_TopologyDescription_PlatformVersion);

typedef struct PJRT_TopologyDescription_PlatformName_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_TopologyDescription* topology;
  const char* platform_name;  // out
  size_t platform_name_size;  // out
} PJRT_TopologyDescription_PlatformName_Args;
XM_PJRT_STRUCT_SIZE(PJRT_TopologyDescription_PlatformName_Args, platform_name_size);
XM_PJRT_FUNCTION(PJRT_TopologyDescription_PlatformName);

typedef struct PJRT_TopologyDescription_GetDeviceDescriptions_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_TopologyDescription* topology;
  PJRT_DeviceDescription* const* descriptions;  // out
  size_t num_descriptions;                      // out
} PJRT_TopologyDescription_GetDeviceDescriptions_Args;
XM_PJRT_STRUCT_SIZE(PJRT_TopologyDescription_GetDeviceDescriptions_Args, num_descriptions);
XM_PJRT_FUNCTION(PJRT_TopologyDescription_GetDeviceDescriptions);

typedef struct PJRT_SerializedTopology PJRT_SerializedTopology;

typedef struct PJRT_TopologyDescription_Serialize_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_TopologyDescription* topology;
  const char* serialized_bytes;                  // out
  size_t serialized_bytes_size;                  // out
  PJRT_SerializedTopology* serialized_topology;  // out
  void (*serialized_topology_deleter)(PJRT_SerializedTopology* serialized_topology);  // out
} PJRT_TopologyDescription_Serialize_Args;
XM_PJRT_STRUCT_SIZE(PJRT_TopologyDescription_Serialize_Args, serialized_topology_deleter);
XM_PJRT_FUNCTION(PJRT_TopologyDescription_Serialize);

typedef struct PJRT_TopologyDescription_Attributes_Args {
  XM_PJRT_ARGS_HEAD;
  PJRT_TopologyDescription* topology;
  const PJRT_NamedValue* attributes;  // out
  size_t num_attributes;              // out
} PJRT_TopologyDescription_Attributes_Args;
XM_PJRT_STRUCT_SIZE(PJRT_TopologyDescription_Attributes_Args, num_attributes);
XM_PJRT_FUNCTION(PJRT_TopologyDescription_Attributes);

// Compiles against a topology, without a client; the result must be loaded before it runs.
typedef struct PJRT_Compile_Args {
  XM_PJRT_ARGS_HEAD;
  const PJRT_TopologyDescription* topology;
  const PJRT_Program* program;
  const char* compile_options;
  size_t compile_options_size;
  PJRT_Client* client;          // optional
  PJRT_Executable* executable;  // out
} PJRT_Compile_Args;
XM_PJRT_STRUCT_SIZE(PJRT_Compile_Args, executable);
XM_PJRT_FUNCTION(PJRT_Compile);

// ---------------------------------------------------------------------------- The API table

#define XM_PJRT_SLOT(name) name* name

// The function table GetPjrtApi returns. Slots are in ABI order; new ones are only appended.
typedef struct PJRT_Api {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_Api_Version pjrt_api_version;

  XM_PJRT_SLOT(PJRT_Error_Destroy);
  XM_PJRT_SLOT(PJRT_Error_Message);
  XM_PJRT_SLOT(PJRT_Error_GetCode);

  XM_PJRT_SLOT(PJRT_Plugin_Initialize);
  XM_PJRT_SLOT(PJRT_Plugin_Attributes);

  XM_PJRT_SLOT(PJRT_Event_Destroy);
  XM_PJRT_SLOT(PJRT_Event_IsReady);
  XM_PJRT_SLOT(PJRT_Event_Error);
  XM_PJRT_SLOT(PJRT_Event_Await);
  XM_PJRT_SLOT(PJRT_Event_OnReady);

  XM_PJRT_SLOT(PJRT_Client_Create);
  XM_PJRT_SLOT(PJRT_Client_Destroy);
  XM_PJRT_SLOT(PJRT_Client_PlatformName);
  XM_PJRT_SLOT(PJRT_Client_ProcessIndex);
  XM_PJRT_SLOT(PJRT_Client_PlatformVersion);
  XM_PJRT_SLOT(PJRT_Client_Devices);
  XM_PJRT_SLOT(PJRT_Client_AddressableDevices);
  XM_PJRT_SLOT(PJRT_Client_LookupDevice);
  XM_PJRT_SLOT(PJRT_Client_LookupAddressableDevice);
  XM_PJRT_SLOT(PJRT_Client_AddressableMemories);
  XM_PJRT_SLOT(PJRT_Client_Compile);
  XM_PJRT_SLOT(PJRT_Client_DefaultDeviceAssignment);
  XM_PJRT_SLOT(PJRT_Client_BufferFromHostBuffer);

  XM_PJRT_SLOT(PJRT_DeviceDescription_Id);
  XM_PJRT_SLOT(PJRT_DeviceDescription_ProcessIndex);
  XM_PJRT_SLOT(PJRT_DeviceDescription_Attributes);
  XM_PJRT_SLOT(PJRT_DeviceDescription_Kind);
  XM_PJRT_SLOT(PJRT_DeviceDescription_DebugString);
  XM_PJRT_SLOT(PJRT_DeviceDescription_ToString);

  XM_PJRT_SLOT(PJRT_Device_GetDescription);
  XM_PJRT_SLOT(PJRT_Device_IsAddressable);
  XM_PJRT_SLOT(PJRT_Device_LocalHardwareId);
  XM_PJRT_SLOT(PJRT_Device_AddressableMemories);
  XM_PJRT_SLOT(PJRT_Device_DefaultMemory);
  XM_PJRT_SLOT(PJRT_Device_MemoryStats);

  XM_PJRT_SLOT(PJRT_Memory_Id);
  XM_PJRT_SLOT(PJRT_Memory_Kind);
  XM_PJRT_SLOT(PJRT_Memory_DebugString);
  XM_PJRT_SLOT(PJRT_Memory_ToString);
  XM_PJRT_SLOT(PJRT_Memory_AddressableByDevices);

  XM_PJRT_SLOT(PJRT_Executable_Destroy);
  XM_PJRT_SLOT(PJRT_Executable_Name);
  XM_PJRT_SLOT(PJRT_Executable_NumReplicas);
  XM_PJRT_SLOT(PJRT_Executable_NumPartitions);
  XM_PJRT_SLOT(PJRT_Executable_NumOutputs);
  XM_PJRT_SLOT(PJRT_Executable_SizeOfGeneratedCodeInBytes);
  XM_PJRT_SLOT(PJRT_Executable_GetCostAnalysis);
  XM_PJRT_SLOT(PJRT_Executable_OutputMemoryKinds);
  XM_PJRT_SLOT(PJRT_Executable_OptimizedProgram);
  XM_PJRT_SLOT(PJRT_Executable_Serialize);

  XM_PJRT_SLOT(PJRT_LoadedExecutable_Destroy);
  XM_PJRT_SLOT(PJRT_LoadedExecutable_GetExecutable);
  XM_PJRT_SLOT(PJRT_LoadedExecutable_AddressableDevices);
  XM_PJRT_SLOT(PJRT_LoadedExecutable_Delete);
  XM_PJRT_SLOT(PJRT_LoadedExecutable_IsDeleted);
  XM_PJRT_SLOT(PJRT_LoadedExecutable_Execute);
  XM_PJRT_SLOT(PJRT_Executable_DeserializeAndLoad);
  XM_PJRT_SLOT(PJRT_LoadedExecutable_Fingerprint);

  XM_PJRT_SLOT(PJRT_Buffer_Destroy);
  XM_PJRT_SLOT(PJRT_Buffer_ElementType);
  XM_PJRT_SLOT(PJRT_Buffer_Dimensions);
  XM_PJRT_SLOT(PJRT_Buffer_UnpaddedDimensions);
  XM_PJRT_SLOT(PJRT_Buffer_DynamicDimensionIndices);
  XM_PJRT_SLOT(PJRT_Buffer_GetMemoryLayout);
  XM_PJRT_SLOT(PJRT_Buffer_OnDeviceSizeInBytes);
  XM_PJRT_SLOT(PJRT_Buffer_Device);
  XM_PJRT_SLOT(PJRT_Buffer_Memory);
  XM_PJRT_SLOT(PJRT_Buffer_Delete);
  XM_PJRT_SLOT(PJRT_Buffer_IsDeleted);
  XM_PJRT_SLOT(PJRT_Buffer_CopyToDevice);
  XM_PJRT_SLOT(PJRT_Buffer_ToHostBuffer);
  XM_PJRT_SLOT(PJRT_Buffer_IsOnCpu);
  XM_PJRT_SLOT(PJRT_Buffer_ReadyEvent);
  XM_PJRT_SLOT(PJRT_Buffer_UnsafePointer);
  XM_PJRT_SLOT(PJRT_Buffer_IncreaseExternalReferenceCount);
  XM_PJRT_SLOT(PJRT_Buffer_DecreaseExternalReferenceCount);
  XM_PJRT_SLOT(PJRT_Buffer_OpaqueDeviceMemoryDataPointer);

  XM_PJRT_SLOT(PJRT_CopyToDeviceStream_Destroy);
  XM_PJRT_SLOT(PJRT_CopyToDeviceStream_AddChunk);
  XM_PJRT_SLOT(PJRT_CopyToDeviceStream_TotalBytes);
  XM_PJRT_SLOT(PJRT_CopyToDeviceStream_GranuleSize);
  XM_PJRT_SLOT(PJRT_CopyToDeviceStream_CurrentBytes);

  XM_PJRT_SLOT(PJRT_TopologyDescription_Create);
  XM_PJRT_SLOT(PJRT_TopologyDescription_Destroy);
  XM_PJRT_SLOT(PJRT_TopologyDescription_PlatformName);
  XM_PJRT_SLOT(PJRT_TopologyDescription_PlatformVersion);
  XM_PJRT_SLOT(PJRT_TopologyDescription_GetDeviceDescriptions);
  XM_PJRT_SLOT(PJRT_TopologyDescription_Serialize);
  XM_PJRT_SLOT(PJRT_TopologyDescription_Attributes);

  XM_PJRT_SLOT(PJRT_Compile);

  // Slots appended after the table's first release, oldest first.
  XM_PJRT_SLOT(PJRT_Executable_OutputElementTypes);
  XM_PJRT_SLOT(PJRT_Executable_OutputDimensions);
  XM_PJRT_SLOT(PJRT_Buffer_CopyToMemory);
  XM_PJRT_SLOT(PJRT_Client_CreateViewOfDeviceBuffer);
  XM_PJRT_SLOT(PJRT_Executable_Fingerprint);
  XM_PJRT_SLOT(PJRT_Client_TopologyDescription);
  XM_PJRT_SLOT(PJRT_Executable_GetCompiledMemoryStats);
  XM_PJRT_SLOT(PJRT_Memory_Kind_Id);
  XM_PJRT_SLOT(PJRT_ExecuteContext_Create);
  XM_PJRT_SLOT(PJRT_ExecuteContext_Destroy);
  XM_PJRT_SLOT(PJRT_Buffer_CopyRawToHost);
  XM_PJRT_SLOT(PJRT_AsyncHostToDeviceTransferManager_Destroy);
  XM_PJRT_SLOT(PJRT_AsyncHostToDeviceTransferManager_TransferData);
  XM_PJRT_SLOT(PJRT_Client_CreateBuffersForAsyncHostToDevice);
} PJRT_Api;
XM_PJRT_STRUCT_SIZE(PJRT_Api, PJRT_Client_CreateBuffersForAsyncHostToDevice);

#undef XM_PJRT_SLOT

// The one symbol a PJRT plugin exports.
const PJRT_Api* GetPjrtApi(void);

#ifdef __cplusplus
}
#endif

#endif  // XLA_METAL_PJRT_PJRT_C_API_H_
