/* The actions of tests/c/pjrt_fuzz.c: each makes one random, type-correct call (or a few)
 * on the pools of live objects. Included once, by pjrt_fuzz.c, after the pools. */

static const PJRT_Buffer_Type kTypes[] = {
    PJRT_Buffer_Type_PRED, PJRT_Buffer_Type_S8,   PJRT_Buffer_Type_S16, PJRT_Buffer_Type_S32,
    PJRT_Buffer_Type_S64,  PJRT_Buffer_Type_U8,   PJRT_Buffer_Type_U16, PJRT_Buffer_Type_U32,
    PJRT_Buffer_Type_U64,  PJRT_Buffer_Type_F16,  PJRT_Buffer_Type_F32, PJRT_Buffer_Type_F64,
    PJRT_Buffer_Type_BF16, PJRT_Buffer_Type_C64,  PJRT_Buffer_Type_C128,
    PJRT_Buffer_Type_F8E5M2, PJRT_Buffer_Type_S4, PJRT_Buffer_Type_U4,
    PJRT_Buffer_Type_INVALID, PJRT_Buffer_Type_TOKEN, (PJRT_Buffer_Type)100};

static size_t element_size(PJRT_Buffer_Type type) {
  switch (type) {
    case PJRT_Buffer_Type_S16: case PJRT_Buffer_Type_U16: case PJRT_Buffer_Type_F16:
    case PJRT_Buffer_Type_BF16: return 2;
    case PJRT_Buffer_Type_S32: case PJRT_Buffer_Type_U32: case PJRT_Buffer_Type_F32: return 4;
    case PJRT_Buffer_Type_S64: case PJRT_Buffer_Type_U64: case PJRT_Buffer_Type_F64:
    case PJRT_Buffer_Type_C64: return 8;
    case PJRT_Buffer_Type_C128: return 16;
    case PJRT_Buffer_Type_INVALID: case PJRT_Buffer_Type_TOKEN: return 0;
    default: return type > PJRT_Buffer_Type_F4E2M1FN ? 0 : 1;
  }
}

/* A device of another live client than `client`, or NULL. */
static PJRT_Device* foreign_device(PJRT_Client* client) {
  for (int i = 0; i < num_clients; ++i) {
    if (clients[i].client == client) continue;
    ARGS(PJRT_Client_AddressableDevices_Args, devices);
    devices.client = clients[i].client;
    must_succeed(api->PJRT_Client_AddressableDevices(&devices), "AddressableDevices");
    return devices.addressable_devices[0];
  }
  return NULL;
}

static PJRT_Device* own_device(PJRT_Client* client) {
  ARGS(PJRT_Client_AddressableDevices_Args, devices);
  devices.client = client;
  must_succeed(api->PJRT_Client_AddressableDevices(&devices), "AddressableDevices");
  CHECK(devices.num_addressable_devices == 1, "%zu devices", devices.num_addressable_devices);
  return devices.addressable_devices[0];
}

/* A buffer of `type` and `dims` from random host data, maybe strided. With `exact` the call
 * is a plain valid one that must succeed, and `values` (if given) fills an f32 buffer. */
static PJRT_Buffer* make_buffer(PJRT_Client* client, PJRT_Buffer_Type type, int rank,
                                const int64_t* dims, int exact, const float* values) {
  const size_t size = element_size(type) > 0 ? element_size(type) : 1;
  int64_t strides[4];
  int strided = !exact && chance(30);
  int64_t step = (int64_t)size;
  for (int d = rank - 1; d >= 0; --d) { /* dense row-major, then perturbed */
    strides[d] = step;
    step *= dims[d] > 0 ? dims[d] : 1;
  }
  if (strided && rank > 0) {
    int d = (int)rnd((size_t)rank);
    int how = (int)rnd(3);
    if (how == 0) strides[d] = -strides[d];            /* reversed */
    if (how == 1) strides[d] = 0;                       /* broadcast */
    if (how == 2) strides[d] *= 2;                      /* every other element */
  }
  /* The span the strides reach, so the data covers every element they address. */
  int64_t low = 0, high = (int64_t)size, count = 1;
  for (int d = 0; d < rank; ++d) {
    count *= dims[d];
    if (dims[d] <= 0) continue;
    int64_t reach = strides[d] * (dims[d] - 1);
    if (reach < 0) low += reach; else high += reach;
  }
  if (count == 0) low = 0, high = (int64_t)size;
  unsigned char* data = malloc((size_t)(high - low));
  for (int64_t i = 0; i < high - low; ++i) data[i] = (unsigned char)next_random();
  if (values != NULL) memcpy(data, values, (size_t)count * sizeof(float));
  ARGS(PJRT_Client_BufferFromHostBuffer_Args, from_host);
  from_host.client = client;
  from_host.data = chance(2) && !exact ? NULL : data - low;
  from_host.type = type;
  from_host.dims = dims;
  from_host.num_dims = (size_t)rank;
  from_host.byte_strides = strided || chance(20) ? strides : NULL;
  from_host.num_byte_strides = from_host.byte_strides != NULL ? (size_t)rank : 0;
  if (!exact && chance(3)) from_host.num_byte_strides = (size_t)rank + 1;
  from_host.host_buffer_semantics = (PJRT_HostBufferSemantics)rnd(4);
  int where = exact ? (int)rnd(3) : (int)rnd(5);
  if (where == 1) from_host.device = own_device(client);
  if (where == 2) {
    ARGS(PJRT_Device_DefaultMemory_Args, memory);
    memory.device = own_device(client);
    must_succeed(api->PJRT_Device_DefaultMemory(&memory), "DefaultMemory");
    from_host.memory = memory.memory;
  }
  if (where == 3) from_host.device = foreign_device(client);
  int64_t minor_to_major[4];
  ARGS(PJRT_Buffer_MemoryLayout, layout);
  if (!exact && chance(10)) {
    int reverse = chance(50);
    for (int d = 0; d < rank; ++d) minor_to_major[d] = reverse ? d : rank - 1 - d;
    layout.tiled.struct_size = PJRT_Buffer_MemoryLayout_Tiled_STRUCT_SIZE;
    layout.tiled.minor_to_major = minor_to_major;
    layout.tiled.minor_to_major_size = (size_t)rank;
    if (chance(20)) layout.struct_size = 8;
    from_host.device_layout = &layout;
  }
  PJRT_Error* error = api->PJRT_Client_BufferFromHostBuffer(&from_host);
  free(data); /* every semantics: the data may go once the call returns (done event ready) */
  if (exact) must_succeed(error, "BufferFromHostBuffer"); else if (check(error, "from host")) {
    return NULL;
  }
  CHECK(from_host.buffer != NULL && from_host.done_with_host_buffer != NULL, "from host outs");
  if (chance(50)) keep_event(from_host.done_with_host_buffer); else {
    ARGS(PJRT_Event_Await_Args, await);
    await.event = from_host.done_with_host_buffer;
    must_succeed(api->PJRT_Event_Await(&await), "done_with_host_buffer");
    ARGS(PJRT_Event_Destroy_Args, destroy);
    destroy.event = from_host.done_with_host_buffer;
    must_succeed(api->PJRT_Event_Destroy(&destroy), "Event_Destroy");
  }
  return from_host.buffer;
}

static void act_buffer_from_host(void) {
  PJRT_Client* client = any_client();
  PJRT_Buffer_Type type = kTypes[rnd(sizeof kTypes / sizeof kTypes[0])];
  int rank = (int)rnd(5);
  int64_t dims[4];
  for (int d = 0; d < rank; ++d) dims[d] = chance(10) ? 0 : (int64_t)rnd(4) + 1;
  if (rank > 0 && chance(3)) dims[rnd((size_t)rank)] = -1;
  if (rank >= 2 && chance(3)) { /* a huge broadcast: refused without allocating it */
    int64_t zero_strides[4] = {0, 0, 0, 0};
    int64_t huge[4] = {1 << 22, 1 << 22, 1, 1};
    float one = 1;
    ARGS(PJRT_Client_BufferFromHostBuffer_Args, from_host);
    from_host.client = client;
    from_host.data = &one;
    from_host.type = PJRT_Buffer_Type_F32;
    from_host.dims = huge;
    from_host.num_dims = (size_t)rank;
    from_host.byte_strides = zero_strides;
    from_host.num_byte_strides = (size_t)rank;
    must_fail(api->PJRT_Client_BufferFromHostBuffer(&from_host), "a 64 TiB broadcast");
    return;
  }
  PJRT_Buffer* buffer = make_buffer(client, type, rank, dims, 0, NULL);
  if (buffer != NULL) keep_buffer(buffer, client);
}

static void act_buffer_query(void) {
  if (num_buffers == 0) return act_buffer_from_host();
  PJRT_Buffer* buffer = buffers[rnd((size_t)num_buffers)].buffer;
  switch (rnd(14)) {
    case 0: { ARGS(PJRT_Buffer_ElementType_Args, a); a.buffer = buffer;
      must_succeed(api->PJRT_Buffer_ElementType(&a), "ElementType"); break; }
    case 1: { ARGS(PJRT_Buffer_Dimensions_Args, a); a.buffer = buffer;
      must_succeed(api->PJRT_Buffer_Dimensions(&a), "Dimensions");
      for (size_t d = 0; d < a.num_dims; ++d) CHECK(a.dims[d] >= 0, "negative dim");
      break; }
    case 2: { ARGS(PJRT_Buffer_UnpaddedDimensions_Args, a); a.buffer = buffer;
      must_succeed(api->PJRT_Buffer_UnpaddedDimensions(&a), "UnpaddedDimensions"); break; }
    case 3: { ARGS(PJRT_Buffer_DynamicDimensionIndices_Args, a); a.buffer = buffer;
      must_succeed(api->PJRT_Buffer_DynamicDimensionIndices(&a), "DynamicDims"); break; }
    case 4: { ARGS(PJRT_Buffer_GetMemoryLayout_Args, a); a.buffer = buffer;
      must_succeed(api->PJRT_Buffer_GetMemoryLayout(&a), "GetMemoryLayout"); break; }
    case 5: { ARGS(PJRT_Buffer_OnDeviceSizeInBytes_Args, a); a.buffer = buffer;
      check(api->PJRT_Buffer_OnDeviceSizeInBytes(&a), "OnDeviceSizeInBytes"); break; }
    case 6: { ARGS(PJRT_Buffer_Device_Args, a); a.buffer = buffer;
      must_succeed(api->PJRT_Buffer_Device(&a), "Buffer_Device");
      ARGS(PJRT_Device_GetDescription_Args, b); b.device = a.device;
      must_succeed(api->PJRT_Device_GetDescription(&b), "GetDescription"); break; }
    case 7: { ARGS(PJRT_Buffer_Memory_Args, a); a.buffer = buffer;
      must_succeed(api->PJRT_Buffer_Memory(&a), "Buffer_Memory");
      ARGS(PJRT_Memory_Kind_Args, b); b.memory = a.memory;
      must_succeed(api->PJRT_Memory_Kind(&b), "Memory_Kind"); break; }
    case 8: { ARGS(PJRT_Buffer_IsDeleted_Args, a); a.buffer = buffer;
      must_succeed(api->PJRT_Buffer_IsDeleted(&a), "IsDeleted"); break; }
    case 9: { ARGS(PJRT_Buffer_IsOnCpu_Args, a); a.buffer = buffer;
      must_succeed(api->PJRT_Buffer_IsOnCpu(&a), "IsOnCpu"); break; }
    case 10: { ARGS(PJRT_Buffer_ReadyEvent_Args, a); a.buffer = buffer;
      must_succeed(api->PJRT_Buffer_ReadyEvent(&a), "ReadyEvent"); keep_event(a.event); break; }
    case 11: { ARGS(PJRT_Buffer_IncreaseExternalReferenceCount_Args, a); a.buffer = buffer;
      check(api->PJRT_Buffer_IncreaseExternalReferenceCount(&a), "IncreaseRef"); break; }
    case 12: { ARGS(PJRT_Buffer_DecreaseExternalReferenceCount_Args, a); a.buffer = buffer;
      check(api->PJRT_Buffer_DecreaseExternalReferenceCount(&a), "DecreaseRef"); break; }
    default: { ARGS(PJRT_Buffer_Delete_Args, a); a.buffer = buffer;
      must_succeed(api->PJRT_Buffer_Delete(&a), "Buffer_Delete"); break; }
  }
}

static void act_to_host(void) {
  if (num_buffers == 0) return act_buffer_from_host();
  PJRT_Buffer* buffer = buffers[rnd((size_t)num_buffers)].buffer;
  ARGS(PJRT_Buffer_ToHostBuffer_Args, query);
  query.src = buffer;
  if (check(api->PJRT_Buffer_ToHostBuffer(&query), "ToHostBuffer (size)")) return;
  ARGS(PJRT_Buffer_Dimensions_Args, dims);
  dims.buffer = buffer;
  must_succeed(api->PJRT_Buffer_Dimensions(&dims), "Dimensions");
  int64_t minor_to_major[4];
  const size_t rank = dims.num_dims;
  ARGS(PJRT_Buffer_MemoryLayout, layout);
  int how = (int)rnd(5);
  for (size_t d = 0; d < rank; ++d) minor_to_major[d] = (int64_t)(how == 1 ? d : rank - 1 - d);
  if (how == 2 && rank > 0) minor_to_major[rnd(rank)] = (int64_t)rnd(6) - 1; /* maybe invalid */
  layout.tiled.struct_size = PJRT_Buffer_MemoryLayout_Tiled_STRUCT_SIZE;
  layout.tiled.minor_to_major = minor_to_major;
  layout.tiled.minor_to_major_size = how == 3 ? rank + 1 : rank;
  size_t size = query.dst_size;
  int shrink = chance(10) && size > 0;
  char* dst = malloc(size + 1);
  ARGS(PJRT_Buffer_ToHostBuffer_Args, copy);
  copy.src = buffer;
  copy.dst = dst;
  copy.dst_size = shrink ? size - 1 : size + (size_t)chance(10);
  copy.host_layout = how == 4 ? NULL : &layout;
  PJRT_Error* error = api->PJRT_Buffer_ToHostBuffer(&copy);
  if (shrink) must_fail(error, "ToHostBuffer into too small a buffer");
  else if (check(error, "ToHostBuffer") == 0) keep_event(copy.event);
  free(dst);
}

static void act_destroy_buffer(void) {
  if (num_buffers == 0) return;
  size_t i = rnd((size_t)num_buffers);
  destroy_buffer(buffers[i].buffer);
  buffers[i] = buffers[--num_buffers];
}

/* ------------------------------------------------------------------------- compiling */

static PJRT_LoadedExecutable* compile_code(PJRT_Client* client, const char* code, size_t size,
                                           const char* format, int must_work) {
  ARGS(PJRT_Program, program);
  program.code = (char*)code;
  program.code_size = size;
  program.format = format;
  program.format_size = format != NULL ? strlen(format) : 4;
  char options[32];
  ARGS(PJRT_Client_Compile_Args, compile);
  compile.client = client;
  compile.program = &program;
  if (!must_work && chance(20)) { /* random bytes as the CompileOptionsProto */
    for (size_t i = 0; i < sizeof options; ++i) options[i] = (char)next_random();
    compile.compile_options = options;
    compile.compile_options_size = rnd(sizeof options + 1);
  }
#ifdef PJRT_FUZZ_TRACE /* cc -DPJRT_FUZZ_TRACE: which program a replayed sequence compiles */
  fprintf(stderr, "compile %zu bytes, format %s\n", size, format ? format : "(null)");
#endif
  PJRT_Error* error = api->PJRT_Client_Compile(&compile);
  if (must_work) must_succeed(error, "Client_Compile");
  else if (check(error, "Client_Compile")) return NULL;
  CHECK(compile.executable != NULL, "Compile returned no executable");
  return compile.executable;
}

static const char* const kTexts[] = {
    "", "module {}", "func.func @main() { return }",
    "func.func @main(%a: tensor<2xf32>) -> tensor<2xf32> { return %a : tensor<2xf32> }",
    "func.func @main(%a: tensor<2xf32>) -> tensor<3xf32> { return %a : tensor<2xf32> }",
    "func.func @main(%a: tensor<?xf32>) -> tensor<?xf32> { return %a : tensor<?xf32> }",
    "func.func @main(%a: tensor<2xf32>) { %0 = stablehlo.add %a, %a : tensor<2xf32>",
    "func.func @f() { return }",
    "ML\xefR", "ML\xefR\x00\x01\x02\x03\x04\x05\x06\x07"};

static void act_compile(void) {
  PJRT_Client* client = any_client();
  const Program* p = &programs[rnd((size_t)num_programs)];
  int how = (int)rnd(6);
  /* Flips and splices go into the text or the bytecode, half each. */
  int in_text = (how == 2 || how == 5) && chance(50);
  size_t size = in_text ? p->text_size : p->code_size;
  char* code = malloc(size + 256);
  memcpy(code, in_text ? p->text : p->code, size);
  int program = -1;
  if (how == 0) program = (int)(p - programs);
  if (how == 1) size = rnd(size); /* truncated */
  if (how == 2) {                 /* bit flips */
    for (int flips = 1 + (int)rnd(8); flips > 0; --flips) code[rnd(size)] ^= (char)(1 << rnd(8));
  }
  if (how == 3) { /* random bytes, sometimes behind the bytecode magic */
    size = rnd(256);
    for (size_t i = 0; i < size; ++i) code[i] = (char)next_random();
    if (size >= 4 && chance(50)) memcpy(code, "ML\xefR", 4);
  }
  if (how == 4) {
    const char* text = kTexts[rnd(sizeof kTexts / sizeof kTexts[0])];
    size = strlen(text);
    memcpy(code, text, size);
    if (size > 0 && chance(30)) code[rnd(size)] = (char)next_random();
  }
  if (how == 5) { /* a valid program with a chunk swapped for another's */
    size_t at = rnd(size), length = rnd(size - at + 1);
    const Program* other = &programs[rnd((size_t)num_programs)];
    const char* chunk = in_text ? other->text : other->code;
    size_t chunk_size = in_text ? other->text_size : other->code_size;
    for (size_t i = 0; i < length && i < chunk_size; ++i) code[at + i] = chunk[i];
  }
  static const char* const kFormats[] = {"mlir", "mlir", "mlir", "hlo", "", "MLIR", NULL};
  const char* format = how == 0 ? "mlir" : kFormats[rnd(sizeof kFormats / sizeof kFormats[0])];
  PJRT_LoadedExecutable* loaded = compile_code(client, code, size, format, how == 0);
  free(code);
  if (loaded != NULL) keep_executable(loaded, client, program);
}
