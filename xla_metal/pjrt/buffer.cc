// Buffers: arrays held by Python, with their type and shape mirrored here so that metadata
// queries never enter Python. Host transfers run synchronously through the bridge.
#include <unistd.h>

#include <cstring>
#include <iterator>

#include "internal.h"

namespace xla_metal {

size_t ElementByteSize(PJRT_Buffer_Type type) {
  switch (type) {
    case PJRT_Buffer_Type_PRED:
    case PJRT_Buffer_Type_S8:
    case PJRT_Buffer_Type_U8:
    case PJRT_Buffer_Type_F8E5M2:
    case PJRT_Buffer_Type_F8E4M3FN:
    case PJRT_Buffer_Type_F8E4M3B11FNUZ:
    case PJRT_Buffer_Type_F8E5M2FNUZ:
    case PJRT_Buffer_Type_F8E4M3FNUZ:
    case PJRT_Buffer_Type_F8E4M3:
    case PJRT_Buffer_Type_F8E3M4:
    case PJRT_Buffer_Type_F8E8M0FNU:
    case PJRT_Buffer_Type_F4E2M1FN:  // one element per byte, as ml_dtypes holds it
    case PJRT_Buffer_Type_S4:
    case PJRT_Buffer_Type_U4:
    case PJRT_Buffer_Type_S2:
    case PJRT_Buffer_Type_U2:
      return 1;
    case PJRT_Buffer_Type_S16:
    case PJRT_Buffer_Type_U16:
    case PJRT_Buffer_Type_F16:
    case PJRT_Buffer_Type_BF16:
      return 2;
    case PJRT_Buffer_Type_S32:
    case PJRT_Buffer_Type_U32:
    case PJRT_Buffer_Type_F32:
      return 4;
    case PJRT_Buffer_Type_S64:
    case PJRT_Buffer_Type_U64:
    case PJRT_Buffer_Type_F64:
    case PJRT_Buffer_Type_C64:
      return 8;
    case PJRT_Buffer_Type_C128:
      return 16;
    case PJRT_Buffer_Type_INVALID:
    case PJRT_Buffer_Type_TOKEN:
      return 0;
  }
  return 0;
}

std::string DescribeType(PJRT_Buffer_Type type, const int64_t* dims, size_t rank) {
  // XLA's short names, in the order of the PJRT_Buffer_Type enumerators.
  static constexpr const char* kNames[] = {
      "invalid", "pred", "s8", "s16", "s32", "s64", "u8", "u16", "u32", "u64", "f16", "f32",
      "f64", "bf16", "c64", "c128", "f8e5m2", "f8e4m3fn", "f8e4m3b11fnuz", "f8e5m2fnuz",
      "f8e4m3fnuz", "s4", "u4", "token", "s2", "u2", "f8e4m3", "f8e3m4", "f8e8m0fnu",
      "f4e2m1fn"};
  const size_t index = static_cast<size_t>(type);
  std::string text = index < std::size(kNames) ? kNames[index] : "type " + std::to_string(index);
  text += '[';
  for (size_t i = 0; i < rank; ++i) text += (i ? "," : "") + std::to_string(dims[i]);
  return text + ']';
}

std::optional<size_t> ElementCount(const int64_t* dims, size_t rank) {
  size_t count = 1;
  for (size_t i = 0; i < rank; ++i) {
    if (dims[i] < 0) return std::nullopt;
    if (dims[i] != 0 && count > SIZE_MAX / static_cast<size_t>(dims[i])) return std::nullopt;
    count *= static_cast<size_t>(dims[i]);
  }
  return count;
}

Status RequireLiveBuffer(const PJRT_Buffer* buffer, const std::string& what) {
  if (buffer == nullptr) return InvalidArgument(what + " is NULL");
  if (buffer->IsDeleted()) return FailedPrecondition(what + ": buffer has been deleted");
  return Ok();
}

namespace {

std::vector<int64_t> RowMajorMinorToMajor(size_t rank) {
  std::vector<int64_t> order(rank);
  for (size_t i = 0; i < rank; ++i) order[i] = static_cast<int64_t>(rank - 1 - i);
  return order;
}

bool IsRowMajor(const int64_t* minor_to_major, size_t rank) {
  for (size_t i = 0; i < rank; ++i) {
    if (minor_to_major[i] != static_cast<int64_t>(rank - 1 - i)) return false;
  }
  return true;
}

// Whether `byte_strides` are those of a dense row-major array of `dims`.
bool IsDenseRowMajor(const int64_t* byte_strides, const int64_t* dims, size_t rank,
                     size_t element_size) {
  int64_t expected = static_cast<int64_t>(element_size);
  for (size_t i = rank; i-- > 0;) {
    // A dimension of size 1 is never stepped over, so its stride does not matter.
    if (dims[i] != 1 && byte_strides[i] != expected) return false;
    expected *= dims[i];
  }
  return true;
}

// Copies the array of `dims` at `data`, laid out with `byte_strides` (any sign), into `out` in
// dense row-major order. `data` is the address of the element at index (0, ..., 0).
void GatherDense(const char* data, const int64_t* dims, const int64_t* byte_strides,
                 size_t rank, size_t element_size, char* out) {
  if (rank == 0) {
    std::memcpy(out, data, element_size);
    return;
  }
  const int64_t row_length = dims[rank - 1];
  const int64_t row_stride = byte_strides[rank - 1];
  std::vector<int64_t> index(rank, 0);  // of the current row; index[rank - 1] stays 0
  const char* row = data;
  for (;;) {
    if (row_stride == static_cast<int64_t>(element_size)) {
      std::memcpy(out, row, row_length * element_size);
      out += row_length * element_size;
    } else {
      for (int64_t i = 0; i < row_length; ++i, out += element_size) {
        std::memcpy(out, row + i * row_stride, element_size);
      }
    }
    // Step to the next row like an odometer over the outer dimensions.
    size_t dim = rank - 1;
    for (;;) {
      if (dim == 0) return;
      --dim;
      if (++index[dim] < dims[dim]) {
        row += byte_strides[dim];
        break;
      }
      index[dim] = 0;
      row -= byte_strides[dim] * (dims[dim] - 1);
    }
  }
}

// Bytes of physical memory, or 0 when unknown.
size_t PhysicalMemoryBytes() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page_size <= 0) return 0;
  return static_cast<size_t>(pages) * static_cast<size_t>(page_size);
}

// The size of the buffer's contents, dense, in bytes.
size_t ByteSize(const PJRT_Buffer& buffer) {
  return ElementCount(buffer.dims.data(), buffer.dims.size()).value_or(0) *
         ElementByteSize(buffer.type);
}

// Checks that a device layout asked of BufferFromHostBuffer is the row-major one we store.
Status RequireRowMajorDeviceLayout(const PJRT_Buffer_MemoryLayout* layout, size_t rank) {
  if (layout == nullptr) return Ok();
  // layout->struct_size is not read: see HostMinorToMajor.
  if (RawEnumValue(layout->type) == PJRT_Buffer_MemoryLayout_Type_Tiled &&
      layout->tiled.num_tiles == 0 &&
      layout->tiled.minor_to_major_size == rank &&
      (rank == 0 || IsRowMajor(layout->tiled.minor_to_major, rank))) {
    return Ok();
  }
  return Unimplemented("xla-metal stores buffers only in the dense row-major layout");
}

// ---------------------------------------------------------------------------- Creating buffers

XM_ENTRY(PJRT_Client_BufferFromHostBuffer, buffer) {
  PJRT_Client* client = args.client;
  XM_RETURN_IF_ERROR(RequireNonNull(client, "client"));
  const size_t rank = args.num_dims;
  if (rank > 0) XM_RETURN_IF_ERROR(RequireNonNull(args.dims, "dims"));
  const int64_t raw_type = RawEnumValue(args.type);
  if (raw_type < PJRT_Buffer_Type_INVALID || raw_type > PJRT_Buffer_Type_F4E2M1FN ||
      ElementByteSize(args.type) == 0) {
    return InvalidArgument("PJRT_Client_BufferFromHostBuffer: unsupported element type " +
                           std::to_string(raw_type));
  }
  const size_t element_size = ElementByteSize(args.type);
  std::optional<size_t> count = ElementCount(args.dims, rank);
  if (!count) return InvalidArgument("PJRT_Client_BufferFromHostBuffer: invalid dimensions");
  // Refused before any allocation: host data with zero strides (a broadcast) can describe
  // far more bytes than exist, and making it dense would exhaust memory.
  const size_t memory = PhysicalMemoryBytes();
  if (*count > SIZE_MAX / element_size || (memory > 0 && *count * element_size > memory)) {
    return MakeError(PJRT_Error_Code_RESOURCE_EXHAUSTED,
                     "[transfer] a buffer of " + std::to_string(*count) + " elements of " +
                         std::to_string(element_size) + " bytes is larger than this "
                         "machine's memory (" + std::to_string(memory) + " bytes)");
  }
  if (*count > 0) XM_RETURN_IF_ERROR(RequireNonNull(args.data, "data"));
  if (args.device != nullptr && args.device != &client->device) {
    return InvalidArgument("PJRT_Client_BufferFromHostBuffer: device belongs to another client");
  }
  if (args.memory != nullptr && !client->owns(args.memory)) {
    return InvalidArgument("PJRT_Client_BufferFromHostBuffer: memory belongs to another client");
  }
  PJRT_Memory* destination = args.memory != nullptr ? args.memory : client->default_memory();
  XM_RETURN_IF_ERROR(RequireRowMajorDeviceLayout(args.device_layout, rank));

  // Strided host data (transposed, sliced or reversed views; strides may be negative) is
  // made dense here, so Python always receives a dense row-major array.
  const void* data = args.data;
  std::vector<char> dense;
  if (args.num_byte_strides != 0) {
    if (args.num_byte_strides != rank) {
      return InvalidArgument("PJRT_Client_BufferFromHostBuffer: " +
                             std::to_string(args.num_byte_strides) + " byte strides for " +
                             std::to_string(rank) + " dimensions");
    }
    XM_RETURN_IF_ERROR(RequireNonNull(args.byte_strides, "byte_strides"));
    if (*count > 0 && !IsDenseRowMajor(args.byte_strides, args.dims, rank, element_size)) {
      dense.resize(*count * element_size);
      GatherDense(static_cast<const char*>(args.data), args.dims, args.byte_strides, rank,
                  element_size, dense.data());
      data = dense.data();
    }
  }

  // The data is copied before the call returns, so every host_buffer_semantics is honoured
  // and the host buffer is free as soon as we return.
  XmFromHostArgs transfer{};
  transfer.client = client->handle;
  transfer.data = data;
  transfer.type = args.type;
  transfer.rank = static_cast<int32_t>(rank);
  transfer.dims = args.dims;
  transfer.byte_strides = nullptr;
  XM_RETURN_IF_ERROR(XM_CALL_BRIDGE(buffer_from_host, &transfer));

  auto buffer = std::make_unique<PJRT_Buffer>(
      client, transfer.buffer, args.type, std::vector<int64_t>(args.dims, args.dims + rank),
      destination);
  args.done_with_host_buffer = NewReadyEvent();
  args.buffer = buffer.release();
  return Ok();
}

// ---------------------------------------------------------------------------- Queries

XM_ENTRY(PJRT_Buffer_Destroy, buffer) {
  delete args.buffer;
  return Ok();
}

XM_ENTRY(PJRT_Buffer_ElementType, type) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.buffer, "buffer"));
  args.type = args.buffer->type;
  return Ok();
}

XM_ENTRY(PJRT_Buffer_Dimensions, num_dims) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.buffer, "buffer"));
  args.dims = args.buffer->dims.data();
  args.num_dims = args.buffer->dims.size();
  return Ok();
}

XM_ENTRY(PJRT_Buffer_UnpaddedDimensions, num_dims) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.buffer, "buffer"));
  args.unpadded_dims = args.buffer->dims.data();
  args.num_dims = args.buffer->dims.size();
  return Ok();
}

XM_ENTRY(PJRT_Buffer_DynamicDimensionIndices, num_dynamic_dims) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.buffer, "buffer"));
  args.dynamic_dim_indices = nullptr;
  args.num_dynamic_dims = 0;
  return Ok();
}

XM_ENTRY(PJRT_Buffer_GetMemoryLayout, layout) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.buffer, "buffer"));
  PJRT_Buffer_MemoryLayout& layout = args.layout;
  layout = PJRT_Buffer_MemoryLayout{};
  layout.struct_size = PJRT_Buffer_MemoryLayout_STRUCT_SIZE;
  layout.type = PJRT_Buffer_MemoryLayout_Type_Tiled;
  layout.tiled.struct_size = PJRT_Buffer_MemoryLayout_Tiled_STRUCT_SIZE;
  layout.tiled.minor_to_major = args.buffer->minor_to_major.data();
  layout.tiled.minor_to_major_size = args.buffer->minor_to_major.size();
  layout.tiled.tile_dims = nullptr;
  layout.tiled.tile_dim_sizes = nullptr;
  layout.tiled.num_tiles = 0;
  return Ok();
}

XM_ENTRY(PJRT_Buffer_OnDeviceSizeInBytes, on_device_size_in_bytes) {
  XM_RETURN_IF_ERROR(RequireLiveBuffer(args.buffer, "buffer"));
  args.on_device_size_in_bytes = ByteSize(*args.buffer);
  return Ok();
}

XM_ENTRY(PJRT_Buffer_Device, device) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.buffer, "buffer"));
  args.device = &args.buffer->client->device;
  return Ok();
}

XM_ENTRY(PJRT_Buffer_Memory, memory) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.buffer, "buffer"));
  args.memory = args.buffer->memory;
  return Ok();
}

XM_ENTRY(PJRT_Buffer_Delete, buffer) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.buffer, "buffer"));
  args.buffer->Delete();
  return Ok();
}

XM_ENTRY(PJRT_Buffer_IsDeleted, is_deleted) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.buffer, "buffer"));
  args.is_deleted = args.buffer->IsDeleted();
  return Ok();
}

XM_ENTRY(PJRT_Buffer_IsOnCpu, is_on_cpu) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.buffer, "buffer"));
  // Even where MLX computes on the CPU, the memory is Python's, not addressable by the caller.
  args.is_on_cpu = false;
  return Ok();
}

XM_ENTRY(PJRT_Buffer_ReadyEvent, event) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.buffer, "buffer"));
  if (args.buffer->IsDeleted()) {
    args.event = NewEvent(EventState::MakeReady(FailedPrecondition("buffer has been deleted")));
  } else {
    args.event = NewEvent(args.buffer->ready);
  }
  return Ok();
}

XM_ENTRY(PJRT_Buffer_IncreaseExternalReferenceCount, buffer) {
  XM_RETURN_IF_ERROR(RequireLiveBuffer(args.buffer, "buffer"));
  args.buffer->external_references.fetch_add(1);
  return Ok();
}

XM_ENTRY(PJRT_Buffer_DecreaseExternalReferenceCount, buffer) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.buffer, "buffer"));
  int64_t count = args.buffer->external_references.load();
  do {
    if (count == 0) {
      return FailedPrecondition(
          "PJRT_Buffer_DecreaseExternalReferenceCount: the external reference count is 0");
    }
  } while (!args.buffer->external_references.compare_exchange_weak(count, count - 1));
  // A buffer deleted while referenced kept its memory for the reference holders until now.
  if (count == 1 && args.buffer->IsDeleted()) args.buffer->ReleaseMemory();
  return Ok();
}

// The address of the buffer's dense row-major data. It stays valid while the buffer is not
// deleted, or, once deleted, while external references remain: Delete keeps the memory
// until the last one goes.
Status DataPointer(PJRT_Buffer* buffer, const char* function, uintptr_t& address) {
  XM_RETURN_IF_ERROR(RequireLiveBuffer(buffer, std::string(function) + ": buffer"));
  XmBufferPointerArgs request{};
  request.buffer = buffer->handle;
  XM_RETURN_IF_ERROR(XM_CALL_BRIDGE(buffer_pointer, &request));
  address = static_cast<uintptr_t>(request.address);
  return Ok();
}

XM_ENTRY(PJRT_Buffer_UnsafePointer, buffer_pointer) {
  return DataPointer(args.buffer, "PJRT_Buffer_UnsafePointer", args.buffer_pointer);
}

XM_ENTRY(PJRT_Buffer_OpaqueDeviceMemoryDataPointer, device_memory_ptr) {
  uintptr_t address = 0;
  XM_RETURN_IF_ERROR(
      DataPointer(args.buffer, "PJRT_Buffer_OpaqueDeviceMemoryDataPointer", address));
  args.device_memory_ptr = reinterpret_cast<void*>(address);
  return Ok();
}

// ---------------------------------------------------------------------------- Copies

// A copy of `buffer` in `memory`, one of its client's. All of them are MLX's one pool and MLX
// arrays are immutable, so the copy shares the array under a handle of its own.
Status CopyOnDevice(PJRT_Buffer* buffer, PJRT_Memory* memory, PJRT_Buffer*& copy) {
  XmBufferCopyArgs request{};
  request.buffer = buffer->handle;
  XM_RETURN_IF_ERROR(XM_CALL_BRIDGE(buffer_copy, &request));
  copy = new PJRT_Buffer(buffer->client, request.copy, buffer->type, buffer->dims, memory);
  return Ok();
}

XM_ENTRY(PJRT_Buffer_CopyToDevice, dst_buffer) {
  XM_RETURN_IF_ERROR(RequireLiveBuffer(args.buffer, "PJRT_Buffer_CopyToDevice: buffer"));
  XM_RETURN_IF_ERROR(RequireNonNull(args.dst_device, "dst_device"));
  if (args.dst_device != &args.buffer->client->device) {
    return InvalidArgument(
        "PJRT_Buffer_CopyToDevice: dst_device is not this client's device (xla-metal copies "
        "only within one client, whose one device is metal:0)");
  }
  return CopyOnDevice(args.buffer, args.buffer->client->default_memory(), args.dst_buffer);
}

XM_ENTRY(PJRT_Buffer_CopyToMemory, dst_buffer) {
  XM_RETURN_IF_ERROR(RequireLiveBuffer(args.buffer, "PJRT_Buffer_CopyToMemory: buffer"));
  XM_RETURN_IF_ERROR(RequireNonNull(args.dst_memory, "dst_memory"));
  if (!args.buffer->client->owns(args.dst_memory)) {
    return InvalidArgument(
        "PJRT_Buffer_CopyToMemory: dst_memory is not one of this client's memories (xla-metal "
        "copies only within one client, whose device metal:0 has the memories device, "
        "pinned_host and unpinned_host)");
  }
  return CopyOnDevice(args.buffer, args.dst_memory, args.dst_buffer);
}

// ---------------------------------------------------------------------------- Host transfer

// The minor_to_major to hand Python for `host_layout` (NULL: row-major), or an error for
// layouts we cannot produce.
Status HostMinorToMajor(const PJRT_Buffer& buffer, const PJRT_Buffer_MemoryLayout* host_layout,
                        const int64_t*& minor_to_major) {
  minor_to_major = nullptr;
  if (host_layout == nullptr) return Ok();
  // PJRT_Buffer_MemoryLayout is a nested struct, and XLA's own producer of it
  // (pjrt::ConvertToBufferMemoryLayoutData, used by jaxlib's C-API client for np.asarray and
  // for device layouts) never sets its struct_size or tiled.struct_size: they hold whatever was
  // on the stack (1 and 17 seen from jaxlib 0.11 on the NVIDIA machine). XLA's own plugins do
  // not read them either, so neither do we: the struct is read whole, its layout has never
  // changed since the API's first version.
  const size_t rank = buffer.dims.size();
  const int64_t layout_type = RawEnumValue(host_layout->type);
  if (layout_type == PJRT_Buffer_MemoryLayout_Type_Tiled) {
    const PJRT_Buffer_MemoryLayout_Tiled& tiled = host_layout->tiled;
    if (tiled.num_tiles != 0) {
      return Unimplemented("PJRT_Buffer_ToHostBuffer: tiled host layouts are not supported");
    }
    if (tiled.minor_to_major_size != rank) {
      return InvalidArgument("PJRT_Buffer_ToHostBuffer: host layout has " +
                             std::to_string(tiled.minor_to_major_size) +
                             " minor_to_major entries for a rank-" + std::to_string(rank) +
                             " buffer");
    }
    if (rank > 0) XM_RETURN_IF_ERROR(RequireNonNull(tiled.minor_to_major, "minor_to_major"));
    minor_to_major = rank > 0 ? tiled.minor_to_major : nullptr;
    return Ok();
  }
  if (layout_type == PJRT_Buffer_MemoryLayout_Type_Strides) {
    const PJRT_Buffer_MemoryLayout_Strides& strides = host_layout->strides;
    if (strides.num_byte_strides == rank &&
        (rank == 0 || (strides.byte_strides != nullptr &&
                       IsDenseRowMajor(strides.byte_strides, buffer.dims.data(), rank,
                                       ElementByteSize(buffer.type))))) {
      return Ok();
    }
    return Unimplemented("PJRT_Buffer_ToHostBuffer: only dense row-major strides are supported");
  }
  return InvalidArgument("PJRT_Buffer_ToHostBuffer: unknown host layout type " +
                         std::to_string(layout_type));
}

XM_ENTRY(PJRT_Buffer_ToHostBuffer, event) {
  XM_RETURN_IF_ERROR(RequireLiveBuffer(args.src, "src"));
  const PJRT_Buffer& buffer = *args.src;
  if (buffer.ready->IsReady()) XM_RETURN_IF_ERROR(buffer.ready->Error());  // a failed execution
  const size_t needed = ByteSize(buffer);
  args.event = nullptr;
  if (args.dst == nullptr) {
    args.dst_size = needed;
    return Ok();
  }
  if (args.dst_size < needed) {
    return InvalidArgument("PJRT_Buffer_ToHostBuffer: dst_size " + std::to_string(args.dst_size) +
                           " is smaller than the " + std::to_string(needed) +
                           " bytes of the buffer");
  }
  XmToHostArgs transfer{};
  transfer.buffer = buffer.handle;
  transfer.dst = args.dst;
  transfer.dst_size = static_cast<int64_t>(needed);
  transfer.rank = static_cast<int32_t>(buffer.dims.size());
  XM_RETURN_IF_ERROR(HostMinorToMajor(buffer, args.host_layout, transfer.minor_to_major));
  XM_RETURN_IF_ERROR(XM_CALL_BRIDGE(buffer_to_host, &transfer));
  args.event = NewReadyEvent();
  return Ok();
}

}  // namespace

void FillBufferSlots(PJRT_Api& api) {
  api.PJRT_Client_BufferFromHostBuffer = PJRT_Client_BufferFromHostBuffer;
  api.PJRT_Buffer_Destroy = PJRT_Buffer_Destroy;
  api.PJRT_Buffer_ElementType = PJRT_Buffer_ElementType;
  api.PJRT_Buffer_Dimensions = PJRT_Buffer_Dimensions;
  api.PJRT_Buffer_UnpaddedDimensions = PJRT_Buffer_UnpaddedDimensions;
  api.PJRT_Buffer_DynamicDimensionIndices = PJRT_Buffer_DynamicDimensionIndices;
  api.PJRT_Buffer_GetMemoryLayout = PJRT_Buffer_GetMemoryLayout;
  api.PJRT_Buffer_OnDeviceSizeInBytes = PJRT_Buffer_OnDeviceSizeInBytes;
  api.PJRT_Buffer_Device = PJRT_Buffer_Device;
  api.PJRT_Buffer_Memory = PJRT_Buffer_Memory;
  api.PJRT_Buffer_Delete = PJRT_Buffer_Delete;
  api.PJRT_Buffer_IsDeleted = PJRT_Buffer_IsDeleted;
  api.PJRT_Buffer_ToHostBuffer = PJRT_Buffer_ToHostBuffer;
  api.PJRT_Buffer_IsOnCpu = PJRT_Buffer_IsOnCpu;
  api.PJRT_Buffer_ReadyEvent = PJRT_Buffer_ReadyEvent;
  api.PJRT_Buffer_IncreaseExternalReferenceCount = PJRT_Buffer_IncreaseExternalReferenceCount;
  api.PJRT_Buffer_DecreaseExternalReferenceCount = PJRT_Buffer_DecreaseExternalReferenceCount;
  api.PJRT_Buffer_UnsafePointer = PJRT_Buffer_UnsafePointer;
  api.PJRT_Buffer_OpaqueDeviceMemoryDataPointer = PJRT_Buffer_OpaqueDeviceMemoryDataPointer;
  api.PJRT_Buffer_CopyToDevice = PJRT_Buffer_CopyToDevice;
  api.PJRT_Buffer_CopyToMemory = PJRT_Buffer_CopyToMemory;
}

}  // namespace xla_metal

PJRT_Buffer::PJRT_Buffer(PJRT_Client* client, int64_t python_handle, PJRT_Buffer_Type type,
                         std::vector<int64_t> dims, PJRT_Memory* memory,
                         std::shared_ptr<xla_metal::EventState> ready)
    : client(client),
      memory(memory),
      handle(python_handle),
      type(type),
      dims(std::move(dims)),
      minor_to_major(xla_metal::RowMajorMinorToMajor(this->dims.size())),
      ready(ready != nullptr ? std::move(ready) : xla_metal::EventState::MakeReady()) {
  xla_metal::RetainClient(client);
}

PJRT_Buffer::~PJRT_Buffer() {
  deleted.store(true);
  ReleaseMemory();  // external references end with the buffer (the spec's contract)
  xla_metal::ReleaseClient(client);
}

void PJRT_Buffer::Delete() {
  if (deleted.exchange(true)) return;
  // Holders of external references (DLPack, unsafe_buffer_pointer) keep the memory until
  // they let go: DecreaseExternalReferenceCount releases it then.
  if (external_references.load() == 0) ReleaseMemory();
}

void PJRT_Buffer::ReleaseMemory() {
  if (released.exchange(true)) return;
  xla_metal::ReleaseBuffer(handle);
}
