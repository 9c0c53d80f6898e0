// Finds or starts the Python interpreter and attaches the bridge table (bridge.h) to
// xla_metal.bridge.
//
// The library does not link libpython: inside a Python process (JAX) the interpreter's
// symbols are already global and are looked up at run time; in a process without Python
// (a C frontend) libpython is loaded by path and an interpreter is started. Once attached,
// every call into Python goes through a ctypes callback in the bridge table; beyond attaching,
// the C API of CPython is used only to hold the GIL around those calls.
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

#ifndef XM_DEFAULT_LIBPYTHON
#define XM_DEFAULT_LIBPYTHON ""
#endif

namespace xla_metal {
namespace {

// The few CPython functions attaching needs. PyObject* is void* here; PyGILState_STATE is an
// enum, i.e. an int.
struct CPython {
  int (*Py_IsInitialized)();
  void (*Py_InitializeEx)(int);
  int (*PyGILState_Ensure)();
  void (*PyGILState_Release)(int);
  void* (*PyEval_SaveThread)();
  int (*PyRun_SimpleString)(const char*);
  void* (*PyImport_ImportModule)(const char*);
  void* (*PyObject_CallMethod)(void*, const char*, const char*, ...);
  void* (*PyObject_GetAttrString)(void*, const char*);
  void* (*PyObject_Str)(void*);
  const char* (*PyUnicode_AsUTF8)(void*);
  void (*PyErr_Fetch)(void**, void**, void**);
  void (*PyErr_Restore)(void*, void*, void*);
  void (*PyErr_NormalizeException)(void**, void**, void**);
  void (*Py_DecRef)(void*);
};

CPython py;                      // valid once py_loaded
bool py_loaded = false;          // guarded by start_mutex
std::mutex start_mutex;          // guards loading CPython and starting an embedded interpreter
XmBridge bridge;                 // slots valid once `attached`
std::mutex release_mutex;        // guards released_buffers
std::vector<int64_t> released_buffers;  // buffer handles not yet handed back to Python
// Queued releases past this many are handed to Python at once, by the releasing thread.
constexpr size_t kReleaseBatch = 256;
std::atomic<bool> attached{false};
std::atomic<bool> python_exiting{false};

constexpr char kStartFailure[] = "xla-metal could not start its Python runtime: ";

// Called by Python's atexit through ctypes, which has released the GIL for the call: waiting
// here for the completion thread to leave Python cannot deadlock on the GIL.
void OnPythonExiting() {
  python_exiting.store(true, std::memory_order_release);
  QuiesceCompletion();
}

// Looks `name` up in `library`; adds it to `missing` when absent.
template <typename Function>
void Resolve(void* library, const char* name, Function& function, std::string& missing) {
  function = reinterpret_cast<Function>(dlsym(library, name));
  if (function == nullptr) missing += std::string(missing.empty() ? "" : ", ") + name;
}

// Resolves CPython in `library` (RTLD_DEFAULT or a dlopen handle).
Status ResolveCPython(void* library) {
  CPython found{};
  std::string missing;
  Resolve(library, "Py_IsInitialized", found.Py_IsInitialized, missing);
  Resolve(library, "Py_InitializeEx", found.Py_InitializeEx, missing);
  Resolve(library, "PyGILState_Ensure", found.PyGILState_Ensure, missing);
  Resolve(library, "PyGILState_Release", found.PyGILState_Release, missing);
  Resolve(library, "PyEval_SaveThread", found.PyEval_SaveThread, missing);
  Resolve(library, "PyRun_SimpleString", found.PyRun_SimpleString, missing);
  Resolve(library, "PyImport_ImportModule", found.PyImport_ImportModule, missing);
  Resolve(library, "PyObject_CallMethod", found.PyObject_CallMethod, missing);
  Resolve(library, "PyObject_GetAttrString", found.PyObject_GetAttrString, missing);
  Resolve(library, "PyObject_Str", found.PyObject_Str, missing);
  Resolve(library, "PyUnicode_AsUTF8", found.PyUnicode_AsUTF8, missing);
  Resolve(library, "PyErr_Fetch", found.PyErr_Fetch, missing);
  Resolve(library, "PyErr_Restore", found.PyErr_Restore, missing);
  Resolve(library, "PyErr_NormalizeException", found.PyErr_NormalizeException, missing);
  Resolve(library, "Py_DecRef", found.Py_DecRef, missing);
  if (!missing.empty()) {
    return FailedPrecondition(std::string(kStartFailure) + "libpython lacks " + missing);
  }
  py = found;
  py_loaded = true;
  return Ok();
}

// Finds CPython in the process, or loads libpython when the process has none. Needs
// start_mutex.
Status LoadCPython() {
  if (py_loaded) return Ok();
  if (dlsym(RTLD_DEFAULT, "Py_IsInitialized") != nullptr) return ResolveCPython(RTLD_DEFAULT);
  const char* from_env = getenv("XLA_METAL_LIBPYTHON");
  std::string path = from_env != nullptr && from_env[0] != '\0' ? from_env : XM_DEFAULT_LIBPYTHON;
  if (path.empty()) {
    return FailedPrecondition(std::string(kStartFailure) +
                              "this process has no Python; set XLA_METAL_LIBPYTHON to the path "
                              "of libpython");
  }
  // RTLD_GLOBAL: extension modules Python imports later resolve their CPython symbols here.
  void* library = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (library == nullptr) {
    const char* reason = dlerror();
    return FailedPrecondition(std::string(kStartFailure) + "cannot load " + path + ": " +
                              (reason != nullptr ? reason : "unknown dlopen error"));
  }
  return ResolveCPython(library);
}

// Discards the pending Python exception, if any. Needs the GIL.
void ClearPythonError() {
  void *type = nullptr, *value = nullptr, *traceback = nullptr;
  py.PyErr_Fetch(&type, &value, &traceback);
  py.Py_DecRef(type);
  py.Py_DecRef(value);
  py.Py_DecRef(traceback);
}

// str(object), or a placeholder; never leaves a Python exception set. Needs the GIL.
std::string PythonText(void* object) {
  if (object == nullptr) return "";
  void* text = py.PyObject_Str(object);
  const char* utf8 = text != nullptr ? py.PyUnicode_AsUTF8(text) : nullptr;
  std::string result = utf8 != nullptr ? utf8 : "<unprintable>";
  py.Py_DecRef(text);
  if (utf8 == nullptr) ClearPythonError();
  return result;
}

// Takes the pending Python exception and returns "<context><Type>: <message>". Needs the GIL.
Status TakePythonError(const std::string& context) {
  void *type = nullptr, *value = nullptr, *traceback = nullptr;
  py.PyErr_Fetch(&type, &value, &traceback);
  if (type == nullptr) return FailedPrecondition(context + "unknown Python error");
  py.PyErr_NormalizeException(&type, &value, &traceback);
  void* type_name = py.PyObject_GetAttrString(type, "__name__");
  if (type_name == nullptr) ClearPythonError();
  std::string message = PythonText(type_name != nullptr ? type_name : type);
  py.Py_DecRef(type_name);
  std::string detail = PythonText(value);
  if (!detail.empty()) message += ": " + detail;
  py.Py_DecRef(type);
  py.Py_DecRef(value);
  py.Py_DecRef(traceback);
  return FailedPrecondition(context + message);
}

// Imports xla_metal.bridge and lets it fill the bridge table. Needs the GIL.
Status AttachBridge() {
  bridge.version = XM_BRIDGE_VERSION;
  bridge.python_exiting = &OnPythonExiting;
  void* module = py.PyImport_ImportModule("xla_metal.bridge");
  if (module == nullptr) return TakePythonError(kStartFailure);
  void* result = py.PyObject_CallMethod(module, "attach", "K",
                                        static_cast<unsigned long long>(
                                            reinterpret_cast<uintptr_t>(&bridge)));
  py.Py_DecRef(module);
  if (result == nullptr) return TakePythonError(kStartFailure);
  py.Py_DecRef(result);

  const std::pair<XmCall, const char*> slots[] = {
      {bridge.plugin_attributes, "plugin_attributes"},
      {bridge.client_create, "client_create"},
      {bridge.client_destroy, "client_destroy"},
      {bridge.compile, "compile"},
      {bridge.deserialize, "deserialize"},
      {bridge.executable_release, "executable_release"},
      {bridge.serialize, "serialize"},
      {bridge.program_text, "program_text"},
      {bridge.execute, "execute"},
      {bridge.buffer_from_host, "buffer_from_host"},
      {bridge.buffer_to_host, "buffer_to_host"},
      {bridge.buffers_release, "buffers_release"},
      {bridge.memory_stats, "memory_stats"},
      {bridge.cost_analysis, "cost_analysis"},
      {bridge.memory_analysis, "memory_analysis"},
      {bridge.buffer_copy, "buffer_copy"},
      {bridge.buffer_pointer, "buffer_pointer"},
      {bridge.await_execution, "await_execution"},
  };
  for (const auto& [slot, name] : slots) {
    if (slot == nullptr) {
      return FailedPrecondition(std::string(kStartFailure) +
                                "xla_metal.bridge.attach() left the bridge slot '" + name +
                                "' unset");
    }
  }
  attached.store(true, std::memory_order_release);
  return Ok();
}

// The directory holding the xla_metal package: the parent of the directory of this library.
std::string PackageRoot() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<const void*>(&GetPjrtApi), &info) == 0 || info.dli_fname == nullptr) {
    return "";
  }
  char resolved[PATH_MAX];
  std::string path = realpath(info.dli_fname, resolved) != nullptr ? resolved : info.dli_fname;
  for (int level = 0; level < 2; ++level) {
    size_t slash = path.find_last_of('/');
    if (slash == std::string::npos) return "";
    path.resize(slash);
  }
  return path;
}

// A Python string literal holding `text`.
std::string PythonStringLiteral(const std::string& text) {
  std::string literal = "'";
  for (char c : text) {
    if (c == '\\' || c == '\'') literal += '\\';
    literal += c;
  }
  return literal + "'";
}

// Starts an interpreter in a process without one, attaches, then releases the GIL so any
// thread can take it. Needs start_mutex.
Status StartEmbeddedPython() {
  py.Py_InitializeEx(0);  // 0: leave the host's signal handlers alone
  Status status = Ok();
  std::string root = PackageRoot();
  if (!root.empty() &&
      py.PyRun_SimpleString(("import sys\nsys.path.insert(0, " + PythonStringLiteral(root) +
                             ")\n").c_str()) != 0) {
    status = FailedPrecondition(std::string(kStartFailure) + "cannot add " + root +
                                " to sys.path");
  }
  if (status == nullptr) status = AttachBridge();
  py.PyEval_SaveThread();
  return status;
}

// Holds the GIL for its lifetime; the thread may or may not hold it already. A Python
// exception already in flight on this thread (a buffer destroyed while JAX raises) is set
// aside for the scope and put back after it: a callback run with an exception pending would
// fail with SystemError and the user's real error would be lost.
class GilScope {
 public:
  GilScope() : state_(py.PyGILState_Ensure()) {
    py.PyErr_Fetch(&pending_type_, &pending_value_, &pending_traceback_);
  }
  ~GilScope() {
    py.PyErr_Restore(pending_type_, pending_value_, pending_traceback_);
    py.PyGILState_Release(state_);
  }
  GilScope(const GilScope&) = delete;
  GilScope& operator=(const GilScope&) = delete;

 private:
  int state_;
  void* pending_type_ = nullptr;
  void* pending_value_ = nullptr;
  void* pending_traceback_ = nullptr;
};

// Turns a bridge failure "<code>:<message>" into a PJRT_Error.
Status ErrorFromBridge(const char* failure) {
  const char* text = failure;
  long code = 0;
  while (*text >= '0' && *text <= '9' && code < 1000) code = code * 10 + (*text++ - '0');
  if (text != failure && *text == ':' && code >= PJRT_Error_Code_CANCELLED &&
      code <= PJRT_Error_Code_UNAUTHENTICATED) {
    return MakeError(static_cast<PJRT_Error_Code>(code), text + 1);
  }
  return MakeError(PJRT_Error_Code_INTERNAL, failure);
}

}  // namespace

Status EnsurePythonRuntime() {
  if (python_exiting.load(std::memory_order_acquire)) {
    return FailedPrecondition("xla-metal: the Python interpreter is shutting down");
  }
  if (attached.load(std::memory_order_acquire)) return Ok();
  {
    std::lock_guard<std::mutex> lock(start_mutex);
    XM_RETURN_IF_ERROR(LoadCPython());
    if (!py.Py_IsInitialized()) return StartEmbeddedPython();
  }
  // Python is running already (we are inside it, e.g. under JAX). The calling thread may or
  // may not hold the GIL; PyGILState_Ensure works either way, and the GIL makes attaching
  // happen once.
  GilScope gil;
  return attached.load(std::memory_order_acquire) ? Ok() : AttachBridge();
}

namespace {

// Hands the queued buffer releases to Python. Needs the GIL.
void FlushReleasedBuffers() noexcept {
  std::vector<int64_t> batch;
  {
    std::lock_guard<std::mutex> lock(release_mutex);
    batch.swap(released_buffers);
  }
  if (batch.empty()) return;
  XmReleaseManyArgs args{batch.data(), static_cast<int64_t>(batch.size())};
  const char* failure = bridge.buffers_release(&args);
  if (failure != nullptr) {
    fprintf(stderr, "xla-metal: releasing %zu Python buffer handles failed: %s\n", batch.size(),
            failure);
  }
}

}  // namespace

Status CallBridge(XmCall XmBridge::*slot, const char* slot_name, void* args,
                  const std::function<Status()>& read_outputs) {
  if (python_exiting.load(std::memory_order_acquire)) {
    return FailedPrecondition(std::string("xla-metal cannot run '") + slot_name +
                              "': the Python interpreter is shutting down");
  }
  XM_RETURN_IF_ERROR(EnsurePythonRuntime());
  // ctypes takes the GIL for the callback itself; holding it across the call as well keeps
  // this thread's Python state (where Python parks the memory its results point to) alive
  // until they are copied. On a thread Python did not create, that state would otherwise be
  // torn down the moment the callback returned.
  GilScope gil;
  // Not on the completion thread's await: a buffer is released on a thread of the frontend,
  // as when each release was its own call.
  if (slot != &XmBridge::await_execution) FlushReleasedBuffers();
  const char* failure = (bridge.*slot)(args);
  if (failure != nullptr) return ErrorFromBridge(failure);  // copies the text
  return read_outputs ? read_outputs() : Ok();
}

void AdoptPythonThreadState() noexcept {
  if (EnsurePythonRuntime() != nullptr) return;  // later bridge calls report the problem
  // PyGILState_Ensure gives this thread a thread state; it is never released, so the state
  // outlives every later GilScope here. PyEval_SaveThread lets go of the GIL, not the state.
  py.PyGILState_Ensure();
  py.PyEval_SaveThread();
}

void ReleaseHandle(XmCall XmBridge::*slot, int64_t handle) noexcept {
  if (python_exiting.load(std::memory_order_acquire) ||
      !attached.load(std::memory_order_acquire)) {
    return;
  }
  GilScope gil;
  XmReleaseArgs args{handle};
  const char* failure = (bridge.*slot)(&args);
  if (failure != nullptr) {
    fprintf(stderr, "xla-metal: releasing Python handle %lld failed: %s\n",
            static_cast<long long>(handle), failure);
  }
}

void ReleaseBuffer(int64_t handle) noexcept {
  if (python_exiting.load(std::memory_order_acquire) ||
      !attached.load(std::memory_order_acquire)) {
    return;
  }
  bool full;
  {
    std::lock_guard<std::mutex> lock(release_mutex);
    released_buffers.push_back(handle);
    full = released_buffers.size() >= kReleaseBatch;
  }
  if (full) {
    GilScope gil;
    FlushReleasedBuffers();
  }
}

}  // namespace xla_metal
