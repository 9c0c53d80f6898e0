// Executables: programs compiled by the Python compiler. Their signature (name, outputs,
// fingerprint) is kept here so metadata queries need no Python; compiling, executing,
// serializing and printing go through the bridge.
#include <algorithm>
#include <cstring>

#include "internal.h"

namespace xla_metal {

// The element types and dimensions of a program's parameters or of its results.
struct ValueTypes {
  std::vector<PJRT_Buffer_Type> types;
  std::vector<int64_t> dims;     // every value's dimensions back to back
  std::vector<size_t> ranks;
  std::vector<size_t> offsets;   // where each value's dimensions start in `dims`

  const int64_t* Dims(size_t i) const { return dims.data() + offsets[i]; }
};

// What compile (or deserialize) reported about one executable held by Python. Shared by the
// loaded executable and every PJRT_Executable view of it; the last owner releases the handle.
struct ExecutableState {
  ExecutableState(PJRT_Client* client, int64_t handle) : client(client), handle(handle) {
    RetainClient(client);
  }
  ~ExecutableState() {
    ReleaseHandle(&XmBridge::executable_release, handle);
    ReleaseClient(client);
  }
  ExecutableState(const ExecutableState&) = delete;
  ExecutableState& operator=(const ExecutableState&) = delete;

  PJRT_Client* const client;
  const int64_t handle;
  std::string name;
  std::string fingerprint;
  int32_t num_args = 0;
  std::vector<uint8_t> donatable;  // empty, or one flag per argument
  ValueTypes parameters;
  ValueTypes outputs;
  std::vector<int> output_memories;  // a MemoryId per output
  std::vector<const char*> output_memory_kinds;
  std::vector<size_t> output_memory_kind_sizes;

  // The optimized program text, fetched once: callers ask for it twice in a row.
  std::mutex program_text_mutex;
  std::optional<std::string> program_text;

  // The cost analysis, fetched once; the properties point into cost_names and live as long
  // as the executable, as PJRT requires. Never changed once cost_ready is set.
  std::mutex cost_mutex;
  bool cost_ready = false;
  std::vector<std::string> cost_names;
  std::vector<PJRT_NamedValue> cost_properties;
};

}  // namespace xla_metal

struct PJRT_Executable {
  std::shared_ptr<xla_metal::ExecutableState> state;
};

struct PJRT_LoadedExecutable {
  std::shared_ptr<xla_metal::ExecutableState> state;
  std::atomic<bool> deleted{false};
};

struct PJRT_SerializedExecutable {
  std::string bytes;
};

namespace xla_metal {
namespace {

// program_text returns MLIR (text or bytecode, e.g. the StableHLO artifact that was compiled).
// JAX parses it into HLO for Compiled.as_text() and before serializing an executable.
constexpr char kOptimizedProgramFormat[] = "mlir";

Status BadCompileResult(const std::string& problem) {
  return MakeError(PJRT_Error_Code_INTERNAL, "xla-metal's compiler returned " + problem);
}

// Reads `count` values' [type, rank, dim_0 .. dim_{rank-1}] from `meta` (compile's encoding).
Status ReadValueTypes(const int64_t* meta, size_t meta_size, int32_t count, const char* what,
                      ValueTypes& values) {
  if (count < 0) return BadCompileResult(std::string("a negative number of ") + what + "s");
  if (meta == nullptr && meta_size != 0) {
    return BadCompileResult(std::string("no ") + what + " types");
  }
  size_t position = 0;
  for (int32_t i = 0; i < count; ++i) {
    const std::string which = std::string(what) + " " + std::to_string(i);
    if (meta_size - position < 2) return BadCompileResult("truncated types at " + which);
    const int64_t type = meta[position];
    const int64_t rank = meta[position + 1];
    position += 2;
    if (type <= PJRT_Buffer_Type_INVALID || type > PJRT_Buffer_Type_F4E2M1FN) {
      return BadCompileResult("unknown element type " + std::to_string(type) + " for " + which);
    }
    if (rank < 0 || static_cast<uint64_t>(rank) > meta_size - position) {
      return BadCompileResult("a bad rank for " + which);
    }
    values.types.push_back(static_cast<PJRT_Buffer_Type>(type));
    values.ranks.push_back(static_cast<size_t>(rank));
    values.offsets.push_back(values.dims.size());
    values.dims.insert(values.dims.end(), meta + position, meta + position + rank);
    position += static_cast<size_t>(rank);
  }
  if (position != meta_size) {
    return BadCompileResult(std::string("extra values in ") + what + " types");
  }
  return Ok();
}

// Reads the signature from a successful compile or deserialize call.
Status ReadSignature(const XmCompileArgs& result, ExecutableState& state) {
  state.name = result.name != nullptr ? result.name : "";
  state.fingerprint = result.fingerprint != nullptr ? result.fingerprint : "";
  state.num_args = result.num_args;
  if (result.donatable != nullptr && result.num_args > 0) {
    state.donatable.assign(result.donatable, result.donatable + result.num_args);
  }
  XM_RETURN_IF_ERROR(ReadValueTypes(result.input_meta, result.input_meta_size, result.num_args,
                                    "argument", state.parameters));
  XM_RETURN_IF_ERROR(ReadValueTypes(result.output_meta, result.output_meta_size,
                                    result.num_outputs, "output", state.outputs));
  for (int32_t output = 0; output < result.num_outputs; ++output) {
    // The memory kind the program gives the result (JAX's out_shardings); 'device' if none.
    const int memory = result.output_memories != nullptr ? result.output_memories[output]
                                                         : kDeviceMemory;
    if (memory < 0 || memory >= kNumMemories) {
      return BadCompileResult("an unknown memory " + std::to_string(memory) + " for output " +
                              std::to_string(output));
    }
    state.output_memories.push_back(memory);
    state.output_memory_kinds.push_back(kMemoryKinds[memory]);
    state.output_memory_kind_sizes.push_back(std::strlen(kMemoryKinds[memory]));
  }
  return Ok();
}

// Runs compile or deserialize (`slot`) and wraps the result in a new loaded executable.
Status LoadThroughBridge(PJRT_Client* client, XmCall XmBridge::*slot, const char* slot_name,
                         XmCompileArgs& request, PJRT_LoadedExecutable*& loaded) {
  request.client = client->handle;
  std::shared_ptr<ExecutableState> state;
  XM_RETURN_IF_ERROR(CallBridge(slot, slot_name, &request, [&]() -> Status {
    // The state owns the Python handle at once, so a bad signature releases it.
    state = std::make_shared<ExecutableState>(client, request.executable);
    return ReadSignature(request, *state);
  }));
  loaded = new PJRT_LoadedExecutable{std::move(state)};
  return Ok();
}

Status RequireExecutable(const PJRT_Executable* executable) {
  XM_RETURN_IF_ERROR(RequireNonNull(executable, "executable"));
  return RequireNonNull(executable->state.get(), "executable state");
}

Status RequireLoadedExecutable(const PJRT_LoadedExecutable* executable) {
  XM_RETURN_IF_ERROR(RequireNonNull(executable, "executable"));
  return RequireNonNull(executable->state.get(), "executable state");
}

void DeleteSerializedExecutable(PJRT_SerializedExecutable* serialized) { delete serialized; }

// The optimized program text, from the cache or from Python. The lock is not held while
// Python runs: the bridge call may wait for the GIL.
Status ProgramText(ExecutableState& state, std::string& text) {
  {
    std::lock_guard<std::mutex> lock(state.program_text_mutex);
    if (state.program_text) {
      text = *state.program_text;
      return Ok();
    }
  }
  XmProgramTextArgs request{};
  request.executable = state.handle;
  XM_RETURN_IF_ERROR(XM_CALL_BRIDGE_AND_READ(program_text, &request, [&]() -> Status {
    text.assign(request.text != nullptr ? request.text : "",
                request.text != nullptr ? request.size : 0);
    return Ok();
  }));
  std::lock_guard<std::mutex> lock(state.program_text_mutex);
  if (!state.program_text) state.program_text = text;
  return Ok();
}

// ---------------------------------------------------------------------------- Compiling

XM_ENTRY(PJRT_Client_Compile, executable) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.client, "client"));
  XM_RETURN_IF_ERROR(RequireNonNull(args.program, "program"));
  const PJRT_Program& program = *args.program;
  if (program.struct_size < PJRT_Program_STRUCT_SIZE) {
    return InvalidArgument("PJRT_Client_Compile: program->struct_size is too small");
  }
  if (program.code_size > 0) XM_RETURN_IF_ERROR(RequireNonNull(program.code, "program->code"));
  XmCompileArgs request{};
  request.code = program.code;
  request.code_size = program.code_size;
  request.format = program.format;
  request.format_size = program.format != nullptr ? program.format_size : 0;
  request.options = args.compile_options;
  request.options_size = args.compile_options != nullptr ? args.compile_options_size : 0;
  return LoadThroughBridge(args.client, &XmBridge::compile, "compile", request, args.executable);
}

XM_ENTRY(PJRT_Executable_DeserializeAndLoad, loaded_executable) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.client, "client"));
  XM_RETURN_IF_ERROR(RequireNonNull(args.serialized_executable, "serialized_executable"));
  XmCompileArgs request{};
  request.code = args.serialized_executable;
  request.code_size = args.serialized_executable_size;
  return LoadThroughBridge(args.client, &XmBridge::deserialize, "deserialize", request,
                           args.loaded_executable);
}

// ---------------------------------------------------------------------------- Executable

XM_ENTRY(PJRT_Executable_Destroy, executable) {
  delete args.executable;
  return Ok();
}

XM_ENTRY(PJRT_Executable_Name, executable_name_size) {
  XM_RETURN_IF_ERROR(RequireExecutable(args.executable));
  args.executable_name = args.executable->state->name.data();
  args.executable_name_size = args.executable->state->name.size();
  return Ok();
}

XM_ENTRY(PJRT_Executable_NumReplicas, num_replicas) {
  XM_RETURN_IF_ERROR(RequireExecutable(args.executable));
  args.num_replicas = 1;
  return Ok();
}

XM_ENTRY(PJRT_Executable_NumPartitions, num_partitions) {
  XM_RETURN_IF_ERROR(RequireExecutable(args.executable));
  args.num_partitions = 1;
  return Ok();
}

XM_ENTRY(PJRT_Executable_NumOutputs, num_outputs) {
  XM_RETURN_IF_ERROR(RequireExecutable(args.executable));
  args.num_outputs = args.executable->state->outputs.types.size();
  return Ok();
}

XM_ENTRY(PJRT_Executable_SizeOfGeneratedCodeInBytes, size_in_bytes) {
  XM_RETURN_IF_ERROR(RequireExecutable(args.executable));
  args.size_in_bytes = 0;  // MLX compiles kernels lazily; there is no code image to measure
  return Ok();
}

// XLA's HloCostAnalysis of the program, computed by Python on first request.
Status CostAnalysis(ExecutableState& state) {
  {
    std::lock_guard<std::mutex> lock(state.cost_mutex);
    if (state.cost_ready) return Ok();
  }
  // The lock is not held while Python runs: the bridge call may wait for the GIL.
  XmCostAnalysisArgs request{};
  request.executable = state.handle;
  std::vector<std::string> names;
  std::vector<double> values;
  XM_RETURN_IF_ERROR(XM_CALL_BRIDGE_AND_READ(cost_analysis, &request, [&]() -> Status {
    if (request.count < 0 || (request.count > 0 && (request.names == nullptr ||
                                                     request.values == nullptr))) {
      return BadCompileResult("a malformed cost analysis");
    }
    for (int32_t i = 0; i < request.count; ++i) {
      names.emplace_back(request.names[i] != nullptr ? request.names[i] : "");
      values.push_back(request.values[i]);
    }
    return Ok();
  }));
  std::lock_guard<std::mutex> lock(state.cost_mutex);
  if (state.cost_ready) return Ok();  // another thread got there first
  state.cost_names = std::move(names);
  for (size_t i = 0; i < state.cost_names.size(); ++i) {
    PJRT_NamedValue value{};
    value.struct_size = PJRT_NamedValue_STRUCT_SIZE;
    value.name = state.cost_names[i].data();
    value.name_size = state.cost_names[i].size();
    value.type = PJRT_NamedValue_kFloat;
    value.float_value = static_cast<float>(values[i]);
    value.value_size = 1;
    state.cost_properties.push_back(value);
  }
  state.cost_ready = true;
  return Ok();
}

XM_ENTRY(PJRT_Executable_GetCostAnalysis, properties) {
  XM_RETURN_IF_ERROR(RequireExecutable(args.executable));
  ExecutableState& state = *args.executable->state;
  XM_RETURN_IF_ERROR(CostAnalysis(state));
  args.num_properties = state.cost_properties.size();
  args.properties = state.cost_properties.empty() ? nullptr : state.cost_properties.data();
  return Ok();
}

// Sizes from the program; MLX has no code image, and all memory is the device's.
XM_ENTRY(PJRT_Executable_GetCompiledMemoryStats, host_temp_size_in_bytes) {
  XM_RETURN_IF_ERROR(RequireExecutable(args.executable));
  XmMemoryAnalysisArgs request{};
  request.executable = args.executable->state->handle;
  XM_RETURN_IF_ERROR(XM_CALL_BRIDGE(memory_analysis, &request));
  args.generated_code_size_in_bytes = 0;
  args.argument_size_in_bytes = request.argument_size;
  args.output_size_in_bytes = request.output_size;
  args.alias_size_in_bytes = request.alias_size;
  args.temp_size_in_bytes = request.temp_size;
  args.host_generated_code_size_in_bytes = 0;
  args.host_argument_size_in_bytes = 0;
  args.host_output_size_in_bytes = 0;
  args.host_alias_size_in_bytes = 0;
  args.host_temp_size_in_bytes = 0;
  return Ok();
}

XM_ENTRY(PJRT_Executable_OutputMemoryKinds, memory_kind_sizes) {
  XM_RETURN_IF_ERROR(RequireExecutable(args.executable));
  const ExecutableState& state = *args.executable->state;
  args.num_outputs = state.output_memory_kinds.size();
  args.memory_kinds = state.output_memory_kinds.data();
  args.memory_kind_sizes = state.output_memory_kind_sizes.data();
  return Ok();
}

XM_ENTRY(PJRT_Executable_OutputElementTypes, num_output_types) {
  XM_RETURN_IF_ERROR(RequireExecutable(args.executable));
  ExecutableState& state = *args.executable->state;
  args.output_types = state.outputs.types.data();
  args.num_output_types = state.outputs.types.size();
  return Ok();
}

XM_ENTRY(PJRT_Executable_OutputDimensions, dim_sizes) {
  XM_RETURN_IF_ERROR(RequireExecutable(args.executable));
  const ExecutableState& state = *args.executable->state;
  args.num_outputs = state.outputs.ranks.size();
  args.dims = state.outputs.dims.data();
  args.dim_sizes = state.outputs.ranks.data();
  return Ok();
}

// Frameworks call this with program->code NULL to learn the size (code_size is not read
// then), and again with a buffer of that size.
XM_ENTRY(PJRT_Executable_OptimizedProgram, program) {
  XM_RETURN_IF_ERROR(RequireExecutable(args.executable));
  XM_RETURN_IF_ERROR(RequireNonNull(args.program, "program"));
  PJRT_Program& program = *args.program;
  if (program.struct_size < PJRT_Program_STRUCT_SIZE) {
    return InvalidArgument("PJRT_Executable_OptimizedProgram: program->struct_size is too small");
  }
  std::string text;
  XM_RETURN_IF_ERROR(ProgramText(*args.executable->state, text));
  program.format = kOptimizedProgramFormat;
  program.format_size = sizeof(kOptimizedProgramFormat) - 1;
  if (program.code == nullptr) {
    program.code_size = text.size();
    return Ok();
  }
  if (program.code_size < text.size()) {
    return InvalidArgument("PJRT_Executable_OptimizedProgram: code_size " +
                           std::to_string(program.code_size) + " is smaller than the " +
                           std::to_string(text.size()) + " bytes of the program");
  }
  std::memcpy(program.code, text.data(), text.size());
  program.code_size = text.size();
  return Ok();
}

XM_ENTRY(PJRT_Executable_Fingerprint, executable_fingerprint_size) {
  XM_RETURN_IF_ERROR(RequireExecutable(args.executable));
  const std::string& fingerprint = args.executable->state->fingerprint;
  if (fingerprint.empty()) return Unimplemented("this executable has no fingerprint");
  args.executable_fingerprint = fingerprint.data();
  args.executable_fingerprint_size = fingerprint.size();
  return Ok();
}

XM_ENTRY(PJRT_Executable_Serialize, serialized_executable_deleter) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.executable, "executable"));
  XM_RETURN_IF_ERROR(RequireNonNull(args.executable->state.get(), "executable state"));
  XmSerializeArgs request{};
  request.executable = args.executable->state->handle;
  auto serialized = std::make_unique<PJRT_SerializedExecutable>();
  XM_RETURN_IF_ERROR(XM_CALL_BRIDGE_AND_READ(serialize, &request, [&]() -> Status {
    serialized->bytes.assign(request.data != nullptr ? request.data : "",
                             request.data != nullptr ? request.size : 0);
    return Ok();
  }));
  args.serialized_bytes = serialized->bytes.data();
  args.serialized_bytes_size = serialized->bytes.size();
  args.serialized_executable = serialized.release();
  args.serialized_executable_deleter = &DeleteSerializedExecutable;
  return Ok();
}

// ---------------------------------------------------------------------------- Loaded executable

XM_ENTRY(PJRT_LoadedExecutable_Destroy, executable) {
  delete args.executable;
  return Ok();
}

XM_ENTRY(PJRT_LoadedExecutable_GetExecutable, executable) {
  XM_RETURN_IF_ERROR(RequireLoadedExecutable(args.loaded_executable));
  args.executable = new PJRT_Executable{args.loaded_executable->state};
  return Ok();
}

XM_ENTRY(PJRT_LoadedExecutable_AddressableDevices, num_addressable_devices) {
  XM_RETURN_IF_ERROR(RequireLoadedExecutable(args.executable));
  args.addressable_devices = args.executable->state->client->device_list;
  args.num_addressable_devices = 1;
  return Ok();
}

XM_ENTRY(PJRT_LoadedExecutable_Delete, executable) {
  XM_RETURN_IF_ERROR(RequireLoadedExecutable(args.executable));
  args.executable->deleted.store(true);
  return Ok();
}

XM_ENTRY(PJRT_LoadedExecutable_IsDeleted, is_deleted) {
  XM_RETURN_IF_ERROR(RequireLoadedExecutable(args.executable));
  args.is_deleted = args.executable->deleted.load();
  return Ok();
}

XM_ENTRY(PJRT_LoadedExecutable_Fingerprint, executable_fingerprint_size) {
  XM_RETURN_IF_ERROR(RequireLoadedExecutable(args.executable));
  const std::string& fingerprint = args.executable->state->fingerprint;
  if (fingerprint.empty()) return Unimplemented("this executable has no fingerprint");
  args.executable_fingerprint = fingerprint.data();
  args.executable_fingerprint_size = fingerprint.size();
  return Ok();
}

// Which arguments this call gives up: those the program may donate, less the ones the caller
// keeps (non_donatable_input_indices) and any buffer with external references. A buffer given
// up in one place cannot also be read in another (its memory may hold results by then), so,
// as XLA's CPU backend does, such a call is refused rather than run without the donation.
Status DonatedArguments(const ExecutableState& state,
                        const PJRT_LoadedExecutable_Execute_Args& args,
                        std::vector<uint8_t>& donated) {
  donated.assign(args.num_args, 0);
  if (state.donatable.size() != args.num_args) return Ok();
  donated = state.donatable;
  const PJRT_ExecuteOptions* options = args.options;
  if (options != nullptr && XM_HAS_FIELD(*options, num_non_donatable_input_indices) &&
      options->non_donatable_input_indices != nullptr) {
    for (size_t k = 0; k < options->num_non_donatable_input_indices; ++k) {
      const int64_t index = options->non_donatable_input_indices[k];
      if (index >= 0 && static_cast<size_t>(index) < donated.size()) donated[index] = 0;
    }
  }
  for (size_t i = 0; i < args.num_args; ++i) {
    // Memory someone outside holds a pointer to (DLPack, unsafe_buffer_pointer) must stay
    // as it is: the buffer is kept, and the results get memory of their own.
    if (args.argument_lists[0][i]->external_references.load() > 0) donated[i] = 0;
  }
  for (size_t j = 1; j < args.num_args; ++j) {
    for (size_t i = 0; i < j; ++i) {
      if (args.argument_lists[0][i] != args.argument_lists[0][j]) continue;
      if (!donated[i] && !donated[j]) continue;
      return InvalidArgument("[execute] arguments " + std::to_string(i) + " and " +
                             std::to_string(j) + " of '" + state.name +
                             "' are the same buffer, and it is donated: a donated buffer "
                             "cannot be passed twice in one call");
    }
  }
  return Ok();
}

// Whether `buffer` can be parameter i: the same element type and dimensions, as on XLA's
// backends (Python then trusts the arrays' types). A token parameter takes a TOKEN buffer or
// an empty one: JAX hands an empty bool array the first time it runs an ordered effect.
Status CheckArgumentType(const ValueTypes& parameters, size_t i, const PJRT_Buffer& buffer) {
  const PJRT_Buffer_Type want = parameters.types[i];
  const int64_t* dims = parameters.Dims(i);
  const size_t rank = parameters.ranks[i];
  if (want == PJRT_Buffer_Type_TOKEN) {
    const bool empty = buffer.dims.size() <= 1 &&
                       ElementCount(buffer.dims.data(), buffer.dims.size()) == size_t{0};
    if (buffer.type == PJRT_Buffer_Type_TOKEN || empty) return Ok();
  } else if (buffer.type == want && buffer.dims.size() == rank &&
             std::equal(buffer.dims.begin(), buffer.dims.end(), dims)) {
    return Ok();
  }
  return InvalidArgument("[execute] argument " + std::to_string(i) + " is " +
                         DescribeType(buffer.type, buffer.dims.data(), buffer.dims.size()) +
                         ", the program expects " + DescribeType(want, dims, rank));
}

// Returns once Python has scheduled the program on MLX: the outputs' ready events and the
// device completion event complete when MLX has computed them (completion.cc). Of the
// execute options only the non-donatable inputs matter (one device, no send/recv callbacks).
XM_ENTRY(PJRT_LoadedExecutable_Execute, device_complete_events) {
  XM_RETURN_IF_ERROR(RequireLoadedExecutable(args.executable));
  if (args.executable->deleted.load()) {
    return FailedPrecondition("PJRT_LoadedExecutable_Execute: the executable has been deleted");
  }
  ExecutableState& state = *args.executable->state;
  PJRT_Client* client = state.client;
  if (args.num_devices != 1) {
    return InvalidArgument("xla-metal has one device, but Execute got num_devices=" +
                           std::to_string(args.num_devices));
  }
  if (XM_HAS_FIELD(args, execute_device) && args.execute_device != nullptr &&
      args.execute_device != &client->device) {
    return InvalidArgument("PJRT_LoadedExecutable_Execute: execute_device is not this client's");
  }
  if (args.num_args != static_cast<size_t>(state.num_args)) {
    return InvalidArgument("executable '" + state.name + "' takes " +
                           std::to_string(state.num_args) + " arguments, Execute got " +
                           std::to_string(args.num_args));
  }
  if (args.num_args > 0) {
    XM_RETURN_IF_ERROR(RequireNonNull(args.argument_lists, "argument_lists"));
    XM_RETURN_IF_ERROR(RequireNonNull(args.argument_lists[0], "argument_lists[0]"));
  }
  const size_t num_outputs = state.outputs.types.size();
  if (num_outputs > 0) {  // a program with no results gets no output list (jit(lambda: None))
    XM_RETURN_IF_ERROR(RequireNonNull(args.output_lists, "output_lists"));
    XM_RETURN_IF_ERROR(RequireNonNull(args.output_lists[0], "output_lists[0]"));
  }

  std::vector<int64_t> argument_handles(args.num_args);
  for (size_t i = 0; i < args.num_args; ++i) {
    const PJRT_Buffer* argument = args.argument_lists[0][i];
    XM_RETURN_IF_ERROR(RequireLiveBuffer(argument, "argument " + std::to_string(i)));
    if (argument->client != client) {
      return InvalidArgument("argument " + std::to_string(i) + " belongs to another client");
    }
    XM_RETURN_IF_ERROR(CheckArgumentType(state.parameters, i, *argument));
    // An argument whose computation failed carries that error on, as on XLA's backends.
    if (argument->ready->IsReady()) {
      Status failed = argument->ready->Error();
      if (failed != nullptr) {
        failed->message = "argument " + std::to_string(i) + ": " + failed->message;
        return failed;
      }
    }
    argument_handles[i] = argument->handle;
  }

  XmExecuteArgs request{};
  request.executable = state.handle;
  request.args = argument_handles.data();
  request.num_args = static_cast<int32_t>(args.num_args);
  std::vector<uint8_t> donated;
  XM_RETURN_IF_ERROR(DonatedArguments(state, args, donated));
  const bool any_donated = std::find(donated.begin(), donated.end(), 1) != donated.end();
  request.donated = any_donated ? donated.data() : nullptr;
  request.num_outputs = static_cast<int32_t>(num_outputs);
  XM_RETURN_IF_ERROR(XM_CALL_BRIDGE(execute, &request));
  // From here on nothing fails before the outputs are handed out (except allocation), so the
  // job Python scheduled is always awaited.
  std::optional<ExecutionEvents> pending;
  if (request.completion != 0) pending = AwaitExecution(request.completion);
  // Python has let go of donated arguments (their memory may now hold results).
  for (size_t i = 0; i < args.num_args; ++i) {
    if (donated[i]) args.argument_lists[0][i]->Delete();
  }

  // Own every output before handing any out, so a failure part-way releases them all.
  std::vector<std::unique_ptr<PJRT_Buffer>> outputs;
  outputs.reserve(num_outputs);
  for (size_t i = 0; i < num_outputs; ++i) {
    const int64_t* dims = state.outputs.Dims(i);
    outputs.push_back(std::make_unique<PJRT_Buffer>(
        client, request.first_output + static_cast<int64_t>(i), state.outputs.types[i],
        std::vector<int64_t>(dims, dims + state.outputs.ranks[i]),
        &client->memories[state.output_memories[i]],
        pending ? pending->outputs_ready : nullptr));
  }
  PJRT_Event* complete = nullptr;
  if (args.device_complete_events != nullptr) {
    complete = pending ? NewEvent(pending->complete) : NewReadyEvent();
  }
  for (size_t i = 0; i < num_outputs; ++i) args.output_lists[0][i] = outputs[i].release();
  if (complete != nullptr) args.device_complete_events[0] = complete;
  return Ok();
}

}  // namespace

void FillExecutableSlots(PJRT_Api& api) {
  api.PJRT_Client_Compile = PJRT_Client_Compile;
  api.PJRT_Executable_DeserializeAndLoad = PJRT_Executable_DeserializeAndLoad;

  api.PJRT_Executable_Destroy = PJRT_Executable_Destroy;
  api.PJRT_Executable_Name = PJRT_Executable_Name;
  api.PJRT_Executable_NumReplicas = PJRT_Executable_NumReplicas;
  api.PJRT_Executable_NumPartitions = PJRT_Executable_NumPartitions;
  api.PJRT_Executable_NumOutputs = PJRT_Executable_NumOutputs;
  api.PJRT_Executable_SizeOfGeneratedCodeInBytes = PJRT_Executable_SizeOfGeneratedCodeInBytes;
  api.PJRT_Executable_GetCostAnalysis = PJRT_Executable_GetCostAnalysis;
  api.PJRT_Executable_GetCompiledMemoryStats = PJRT_Executable_GetCompiledMemoryStats;
  api.PJRT_Executable_OutputMemoryKinds = PJRT_Executable_OutputMemoryKinds;
  api.PJRT_Executable_OutputElementTypes = PJRT_Executable_OutputElementTypes;
  api.PJRT_Executable_OutputDimensions = PJRT_Executable_OutputDimensions;
  api.PJRT_Executable_OptimizedProgram = PJRT_Executable_OptimizedProgram;
  api.PJRT_Executable_Fingerprint = PJRT_Executable_Fingerprint;
  api.PJRT_Executable_Serialize = PJRT_Executable_Serialize;

  api.PJRT_LoadedExecutable_Destroy = PJRT_LoadedExecutable_Destroy;
  api.PJRT_LoadedExecutable_GetExecutable = PJRT_LoadedExecutable_GetExecutable;
  api.PJRT_LoadedExecutable_AddressableDevices = PJRT_LoadedExecutable_AddressableDevices;
  api.PJRT_LoadedExecutable_Delete = PJRT_LoadedExecutable_Delete;
  api.PJRT_LoadedExecutable_IsDeleted = PJRT_LoadedExecutable_IsDeleted;
  api.PJRT_LoadedExecutable_Fingerprint = PJRT_LoadedExecutable_Fingerprint;
  api.PJRT_LoadedExecutable_Execute = PJRT_LoadedExecutable_Execute;
}

}  // namespace xla_metal
