// Declarations shared by the C++ files of the PJRT plugin: errors and statuses, the entry-point
// wrapper, events, the Python runtime, and the objects behind the opaque PJRT handles.
#ifndef XLA_METAL_PJRT_INTERNAL_H_
#define XLA_METAL_PJRT_INTERNAL_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "bridge.h"
#include "pjrt_c_api.h"

// ---------------------------------------------------------------------------- Errors

struct PJRT_Error {
  // Frameworks from PJRT 0.105 on read a vtable pointer as the first word of PJRT_Error; NULL
  // tells them this error has none.
  void* vtable_reserved = nullptr;
  PJRT_Error_Code code = PJRT_Error_Code_INTERNAL;
  std::string message;
};

namespace xla_metal {

// NULL means success. Entry points hand the error to the caller with release().
using Status = std::unique_ptr<PJRT_Error>;

inline Status Ok() { return nullptr; }
Status MakeError(PJRT_Error_Code code, std::string message);
Status CopyError(const PJRT_Error* error);  // NULL stays NULL
Status InvalidArgument(std::string message);
Status Unimplemented(std::string message);
Status FailedPrecondition(std::string message);
// INVALID_ARGUMENT "<what> is NULL" when `pointer` is NULL.
Status RequireNonNull(const void* pointer, const char* what);

#define XM_RETURN_IF_ERROR(expr)                         \
  do {                                                   \
    ::xla_metal::Status xm_status_ = (expr);             \
    if (xm_status_ != nullptr) return xm_status_;        \
  } while (0)

// ---------------------------------------------------------------------------- Entry points

// The value of an enum field the caller filled, read as its underlying integer: a value
// outside the enum's range (from a newer framework, or garbage) must not be loaded as the
// enum itself, which is undefined behaviour.
template <typename Enum>
int64_t RawEnumValue(const Enum& field) {
  std::underlying_type_t<Enum> raw;
  std::memcpy(&raw, &field, sizeof raw);
  return static_cast<int64_t>(raw);
}

// Whether the caller's struct (of the size it reported) contains `field`.
#define XM_HAS_FIELD(args, field) \
  (PJRT_STRUCT_SIZE(std::remove_reference_t<decltype(args)>, field) <= (args).struct_size)

// A new PJRT_Error "<function>: <what>", made without throwing (for catch blocks). Returns
// NULL only when even that allocation fails.
PJRT_Error* NewEntryError(const char* function, PJRT_Error_Code code, const char* what) noexcept;

// Runs `impl` as the body of the C entry point `function`: checks the argument struct is at
// least `min_size` bytes and turns every C++ exception into a PJRT_Error, so none crosses the
// C boundary.
template <typename Args>
PJRT_Error* RunEntry(const char* function, Args* args, size_t min_size,
                     Status (*impl)(Args&)) noexcept {
  try {
    if (args == nullptr) return InvalidArgument(std::string(function) + ": args is NULL").release();
    if (args->struct_size < min_size) {
      return InvalidArgument(std::string(function) + ": args->struct_size is " +
                             std::to_string(args->struct_size) + " but xla-metal needs at least " +
                             std::to_string(min_size) + " bytes")
          .release();
    }
    return impl(*args).release();
  } catch (const std::bad_alloc&) {
    return NewEntryError(function, PJRT_Error_Code_RESOURCE_EXHAUSTED, "out of memory");
  } catch (const std::exception& e) {
    return NewEntryError(function, PJRT_Error_Code_INTERNAL, e.what());
  } catch (...) {
    return NewEntryError(function, PJRT_Error_Code_INTERNAL, "unknown C++ exception");
  }
}

// Defines the C entry point `name` (same name as the PJRT_Api slot) whose body follows the
// macro as `Status name_Impl(name_Args& args)`. `last_needed_field` is the last field of the
// argument struct the body touches unconditionally; it sets the smallest struct accepted.
#define XM_ENTRY(name, last_needed_field)                                                  \
  Status name##_Impl([[maybe_unused]] name##_Args& args);                                  \
  PJRT_Error* name(name##_Args* args) {                                                    \
    return ::xla_metal::RunEntry(#name, args, PJRT_STRUCT_SIZE(name##_Args, last_needed_field), \
                                 &name##_Impl);                                            \
  }                                                                                        \
  Status name##_Impl([[maybe_unused]] name##_Args& args)

// Defines the entry point `name` as one xla-metal does not support.
#define XM_UNIMPLEMENTED_ENTRY(name)                                                   \
  PJRT_Error* name(name##_Args*) {                                                     \
    return ::xla_metal::NewEntryError(#name, PJRT_Error_Code_UNIMPLEMENTED,            \
                                      "not implemented by xla-metal");                 \
  }

// Each file of the plugin fills the PJRT_Api slots it implements.
void FillErrorAndEventSlots(PJRT_Api& api);
void FillPluginSlots(PJRT_Api& api);
void FillClientSlots(PJRT_Api& api);
void FillBufferSlots(PJRT_Api& api);
void FillExecutableSlots(PJRT_Api& api);
void FillUnsupportedSlots(PJRT_Api& api);

// ---------------------------------------------------------------------------- Events

// The completion state behind PJRT_Events. Several PJRT_Events (and a buffer) may share one,
// so the framework destroying its PJRT_Event never frees state another holder still waits on.
class EventState {
 public:
  static std::shared_ptr<EventState> MakePending();
  static std::shared_ptr<EventState> MakeReady(Status error = nullptr);

  // Marks the event ready with `error` (NULL: success), wakes waiters and runs the OnReady
  // callbacks, outside the lock, on this thread. Only the first call has an effect.
  void Complete(Status error);
  bool IsReady();
  Status Await();   // blocks until ready; returns a copy of the error
  Status Error();   // a copy of the error; the event must be ready
  // Runs `callback` once the event is ready: now, on this thread, if it already is.
  void OnReady(PJRT_Event_OnReadyCallback callback, void* user_arg);
  // Gives a pending event a way to complete it on demand: the first Await or OnReady while it
  // is pending runs `waiter` on the caller's thread (blocking) instead of only waiting for
  // someone else to complete it. The caller is about to wait anyway; doing the wait itself
  // saves handing the completion over between threads.
  void SetWaiter(std::function<void()> waiter);

 private:
  struct Callback {
    PJRT_Event_OnReadyCallback function;
    void* user_arg;
  };
  std::mutex mutex_;
  std::condition_variable ready_condition_;
  // Runs the waiter, if there is one still (once: taken under the lock).
  void RunWaiter();

  bool ready_ = false;
  Status error_;
  std::vector<Callback> callbacks_;
  std::function<void()> waiter_;
};

}  // namespace xla_metal

struct PJRT_Event {
  std::shared_ptr<xla_metal::EventState> state;
};

namespace xla_metal {

PJRT_Event* NewEvent(std::shared_ptr<EventState> state);
inline PJRT_Event* NewReadyEvent() { return NewEvent(EventState::MakeReady()); }

// ---------------------------------------------------------------------------- Python runtime

// Starts (or joins) the Python interpreter and attaches xla_metal.bridge on first use.
Status EnsurePythonRuntime();

// Calls one bridge slot, which runs Python; an error it reports becomes a PJRT_Error. Then,
// if the call succeeded, `read_outputs` copies what Python returned through pointers: Python
// keeps that memory only until its next call on this thread, and only while this thread's
// Python state lives, so it runs before the GIL taken for the call is given back. Fails with
// FAILED_PRECONDITION once the interpreter is shutting down.
Status CallBridge(XmCall XmBridge::*slot, const char* slot_name, void* args,
                  const std::function<Status()>& read_outputs = nullptr);
#define XM_CALL_BRIDGE(slot, args) ::xla_metal::CallBridge(&XmBridge::slot, #slot, (args))
#define XM_CALL_BRIDGE_AND_READ(slot, args, read_outputs) \
  ::xla_metal::CallBridge(&XmBridge::slot, #slot, (args), (read_outputs))

// Makes the calling (non-Python) thread keep one Python thread state for its whole life, so
// its later bridge calls only take the GIL. Does nothing if Python cannot be reached.
void AdoptPythonThreadState() noexcept;

// The events of one asynchronous execution (XmExecuteArgs.completion = `job`).
struct ExecutionEvents {
  // The outputs' ready event: completed when MLX has computed them, with the error if that
  // failed. A thread that waits for it awaits the job itself (EventState::SetWaiter).
  std::shared_ptr<EventState> outputs_ready;
  // PJRT's device completion event: the same moment, but waiting for it never takes the job
  // (frameworks register on it right after every Execute, before they mean to wait).
  std::shared_ptr<EventState> complete;
};
// Queues `job`: a background thread awaits it unless a waiter of outputs_ready takes it first.
ExecutionEvents AwaitExecution(int64_t job);
// Called once Python is exiting: returns when the background thread has left Python for good.
void QuiesceCompletion();

// Hands a Python-owned handle back through `slot` (a release slot). Does nothing once the
// interpreter is shutting down: by then Python frees everything itself.
void ReleaseHandle(XmCall XmBridge::*slot, int64_t handle) noexcept;
// Releases a buffer's Python handle: queued, and handed to Python in batches, at the start of
// the next call into Python (Execute, a transfer, memory stats...; not the completion
// thread's await) or once the queue is long.
// A training step drops its ~100 old parameter buffers between two Executes, and each
// release alone would cost a GIL round trip.
void ReleaseBuffer(int64_t handle) noexcept;

// ---------------------------------------------------------------------------- Element types

// Bytes per element as xla-metal stores it (sub-byte types take a whole byte); 0 for types it
// cannot hold.
size_t ElementByteSize(PJRT_Buffer_Type type);
// "f32[2,3]": a type and dimensions the way XLA's messages write them.
std::string DescribeType(PJRT_Buffer_Type type, const int64_t* dims, size_t rank);
// Product of `dims`, or nullopt when a dimension is negative or the product overflows.
std::optional<size_t> ElementCount(const int64_t* dims, size_t rank);

}  // namespace xla_metal

// ---------------------------------------------------------------------------- Objects

struct PJRT_DeviceDescription {
  PJRT_Client* client;
};

struct PJRT_Device {
  PJRT_Client* client;
};

namespace xla_metal {

// The memories of the one device, by id (also their kind id). MLX has one pool of memory
// (host memory on Linux, unified memory on Apple silicon): the host kinds name that same
// memory as JAX's host-offload API expects them, as XLA's CPU backend does. A buffer's memory
// is a label, kept so the framework sees the memory kind it asked for.
enum MemoryId : int { kDeviceMemory = 0, kPinnedHostMemory = 1, kUnpinnedHostMemory = 2 };
constexpr int kNumMemories = 3;
constexpr const char* kMemoryKinds[kNumMemories] = {"device", "pinned_host", "unpinned_host"};

}  // namespace xla_metal

struct PJRT_Memory {
  // Frameworks from PJRT 0.105 on read a vtable pointer as the first word of PJRT_Memory.
  void* vtable_reserved = nullptr;
  PJRT_Client* client;
  int id;  // a MemoryId
};

// One client owns the single device "metal:0", its description and its memories. Buffers
// and executables hold a reference to it, so a framework that destroys the client before them
// (in any order) leaves no dangling pointer: the client goes when its last holder does.
struct PJRT_Client {
  PJRT_Client(int64_t python_handle, std::string platform_version, std::string device_kind);
  ~PJRT_Client();  // releases the Python client
  PJRT_Client(const PJRT_Client&) = delete;
  PJRT_Client& operator=(const PJRT_Client&) = delete;

  const int64_t handle;
  const std::string platform_version;
  const std::string device_kind;
  PJRT_DeviceDescription description{this};
  PJRT_Device device{this};
  PJRT_Memory memories[xla_metal::kNumMemories] = {
      {nullptr, this, xla_metal::kDeviceMemory},
      {nullptr, this, xla_metal::kPinnedHostMemory},
      {nullptr, this, xla_metal::kUnpinnedHostMemory}};
  // Arrays handed out by the list queries.
  PJRT_Device* const device_list[1] = {&device};
  PJRT_Memory* const memory_list[xla_metal::kNumMemories] = {&memories[0], &memories[1],
                                                             &memories[2]};
  PJRT_Memory* default_memory() { return &memories[xla_metal::kDeviceMemory]; }
  // Whether `memory` is one of this client's (not another client's, not garbage).
  bool owns(const PJRT_Memory* memory) const {
    for (const PJRT_Memory& own : memories) {
      if (memory == &own) return true;
    }
    return false;
  }
  // The PJRT_Client handle itself counts as one.
  std::atomic<int64_t> references{1};
};

// A device array held by Python. Shape and type are kept here so queries need no Python.
struct PJRT_Buffer {
  // `ready`: the event of the computation producing the contents; NULL: computed already.
  PJRT_Buffer(PJRT_Client* client, int64_t python_handle, PJRT_Buffer_Type type,
              std::vector<int64_t> dims, PJRT_Memory* memory,
              std::shared_ptr<xla_metal::EventState> ready = nullptr);
  ~PJRT_Buffer();  // releases the Python array unless Delete already did
  PJRT_Buffer(const PJRT_Buffer&) = delete;
  PJRT_Buffer& operator=(const PJRT_Buffer&) = delete;

  // Marks the buffer deleted and releases the Python array, at once or, while external
  // references remain, when the last one goes. Later calls do nothing.
  void Delete();
  bool IsDeleted() const { return deleted.load(); }
  // Releases the Python array (once).
  void ReleaseMemory();

  PJRT_Client* const client;
  PJRT_Memory* const memory;  // one of client's memories
  const int64_t handle;
  const PJRT_Buffer_Type type;
  const std::vector<int64_t> dims;
  const std::vector<int64_t> minor_to_major;  // row-major: rank-1, ..., 0
  // Becomes ready when the contents are computed (outputs of an asynchronous execution), with
  // the execution's error if it failed.
  const std::shared_ptr<xla_metal::EventState> ready;
  std::atomic<bool> deleted{false};
  std::atomic<bool> released{false};
  std::atomic<int64_t> external_references{0};
};

namespace xla_metal {

// Counted references to a client (see PJRT_Client); the last Release deletes it.
void RetainClient(PJRT_Client* client) noexcept;
void ReleaseClient(PJRT_Client* client) noexcept;

// Fails with FAILED_PRECONDITION when `buffer` was deleted; `what` names it in the message.
Status RequireLiveBuffer(const PJRT_Buffer* buffer, const std::string& what);

}  // namespace xla_metal

#endif  // XLA_METAL_PJRT_INTERNAL_H_
