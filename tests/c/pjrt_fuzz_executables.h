/* Actions of tests/c/pjrt_fuzz.c on executables, events and clients, and the action table.
 * Included once, by pjrt_fuzz.c, after pjrt_fuzz_actions.h. */

static PJRT_Executable* view_of(PJRT_LoadedExecutable* loaded) {
  ARGS(PJRT_LoadedExecutable_GetExecutable_Args, get);
  get.loaded_executable = loaded;
  must_succeed(api->PJRT_LoadedExecutable_GetExecutable(&get), "GetExecutable");
  return get.executable;
}

static void destroy_view(PJRT_Executable* view) {
  ARGS(PJRT_Executable_Destroy_Args, destroy);
  destroy.executable = view;
  must_succeed(api->PJRT_Executable_Destroy(&destroy), "Executable_Destroy");
}

static size_t num_outputs_of(PJRT_LoadedExecutable* loaded) {
  PJRT_Executable* view = view_of(loaded);
  ARGS(PJRT_Executable_NumOutputs_Args, outputs);
  outputs.executable = view;
  must_succeed(api->PJRT_Executable_NumOutputs(&outputs), "NumOutputs");
  destroy_view(view);
  return outputs.num_outputs;
}

static int is_deleted(PJRT_LoadedExecutable* loaded) {
  ARGS(PJRT_LoadedExecutable_IsDeleted_Args, deleted);
  deleted.executable = loaded;
  must_succeed(api->PJRT_LoadedExecutable_IsDeleted(&deleted), "IsDeleted");
  return deleted.is_deleted;
}

/* Checks an output of the add program (programs[0], a + b of f32) against the inputs. */
static void check_add_output(PJRT_Buffer* sum, const float* a, const float* b, size_t count) {
  float values[64];
  ARGS(PJRT_Buffer_ToHostBuffer_Args, copy);
  copy.src = sum;
  copy.dst = values;
  copy.dst_size = count * sizeof(float);
  must_succeed(api->PJRT_Buffer_ToHostBuffer(&copy), "ToHostBuffer (sum)");
  ARGS(PJRT_Event_Destroy_Args, destroy);
  destroy.event = copy.event;
  must_succeed(api->PJRT_Event_Destroy(&destroy), "Event_Destroy");
  for (size_t i = 0; i < count; ++i) CHECK(values[i] == a[i] + b[i], "sum[%zu] wrong", i);
}

static void act_execute(void) {
  if (num_executables == 0) return act_compile();
  ExecutableSlot* slot = &executables[rnd((size_t)num_executables)];
  const Program* p = slot->program >= 0 ? &programs[slot->program] : NULL;
  /* Modes 0-5 pass fresh arguments of the right signature; the others break something. */
  int mode = p != NULL && slot->client != NULL ? (int)rnd(10) : 6 + (int)rnd(3);
  PJRT_Buffer* arguments[MAX_ARGS + 1];
  int fresh[MAX_ARGS + 1] = {0};
  int broken = 0; /* the call must fail */
  size_t num_args = p != NULL ? (size_t)p->num_args : rnd(3);
  float inputs[MAX_ARGS][64];
  if (mode <= 5 || mode == 9) {
    for (size_t i = 0; i < num_args; ++i) {
      size_t count = 1;
      for (int d = 0; d < p->ranks[i]; ++d) count *= (size_t)p->dims[i][d];
      for (size_t k = 0; k < count && k < 64; ++k) inputs[i][k] = (float)rnd(100);
      arguments[i] = make_buffer(slot->client, p->types[i], p->ranks[i], p->dims[i], 1,
                                 p->types[i] == PJRT_Buffer_Type_F32 && count <= 64
                                     ? inputs[i] : NULL);
      fresh[i] = 1;
    }
    broken = mode == 9 && num_args > 0;
    if (broken) { /* one argument deleted before the call */
      ARGS(PJRT_Buffer_Delete_Args, del);
      del.buffer = arguments[rnd(num_args)];
      must_succeed(api->PJRT_Buffer_Delete(&del), "Buffer_Delete");
    }
  } else { /* whatever the pool holds: any dtype, shape, client, deleted or not */
    if (mode == 6 && p != NULL) num_args += 1, broken = 1;
    if (mode == 7 && p != NULL && num_args > 0) num_args -= 1, broken = 1;
    if (num_buffers == 0) return act_buffer_from_host();
    for (size_t i = 0; i < num_args; ++i) arguments[i] = buffers[rnd((size_t)num_buffers)].buffer;
  }
  size_t num_outputs = num_outputs_of(slot->loaded);
  PJRT_Buffer** outputs = calloc(num_outputs + 1, sizeof(PJRT_Buffer*));
  PJRT_Buffer* const* argument_lists[1] = {arguments};
  PJRT_Buffer** output_lists[1] = {outputs};
  PJRT_Event* complete[2] = {NULL, NULL};
  int64_t keep[2] = {(int64_t)rnd(4) - 1, (int64_t)rnd(40) - 20};
  ARGS(PJRT_ExecuteOptions, options);
  if (chance(20)) {
    options.non_donatable_input_indices = keep;
    options.num_non_donatable_input_indices = 1 + rnd(2);
  }
  ARGS(PJRT_LoadedExecutable_Execute_Args, run);
  run.executable = slot->loaded;
  run.options = chance(5) ? NULL : &options;
  run.argument_lists = argument_lists;
  run.num_devices = chance(3) ? rnd(3) : 1;
  run.num_args = num_args;
  run.output_lists = output_lists;
  run.device_complete_events = chance(30) ? NULL : complete;
  if (chance(10) && slot->client != NULL) {
    run.execute_device = chance(50) ? own_device(slot->client) : foreign_device(slot->client);
  }
  PJRT_Error* error = api->PJRT_LoadedExecutable_Execute(&run);
  int must_work = mode <= 5 && run.num_devices == 1 && !is_deleted(slot->loaded) &&
                  (run.execute_device == NULL || run.execute_device == own_device(slot->client));
  if (must_work) {
    must_succeed(error, "Execute");
  } else if (broken || (mode <= 5 && run.num_devices != 1)) {
    must_fail(error, "Execute (broken)");
  } else {
    check(error, "Execute (random arguments)");
  }
  if (error == NULL) {
    keep_event(complete[0]);
    if (must_work && slot->program == 0) {
      check_add_output(outputs[0], inputs[0], inputs[1], (size_t)(p->dims[0][0] * p->dims[0][1]));
    }
    for (size_t i = 0; i < num_outputs; ++i) {
      CHECK(outputs[i] != NULL, "Execute left output %zu unset", i);
      keep_buffer(outputs[i], slot->client);
    }
  }
  for (size_t i = 0; i < num_args; ++i) {
    if (!fresh[i]) continue;
    if (chance(50)) destroy_buffer(arguments[i]); else keep_buffer(arguments[i], slot->client);
  }
  free(outputs);
}

static void act_executable_query(void) {
  if (num_executables == 0) return act_compile();
  ExecutableSlot* slot = &executables[rnd((size_t)num_executables)];
  PJRT_Executable* view = view_of(slot->loaded);
  switch (rnd(16)) {
    case 0: { ARGS(PJRT_Executable_Name_Args, a); a.executable = view;
      must_succeed(api->PJRT_Executable_Name(&a), "Name"); break; }
    case 1: { ARGS(PJRT_Executable_NumReplicas_Args, a); a.executable = view;
      must_succeed(api->PJRT_Executable_NumReplicas(&a), "NumReplicas"); break; }
    case 2: { ARGS(PJRT_Executable_NumPartitions_Args, a); a.executable = view;
      must_succeed(api->PJRT_Executable_NumPartitions(&a), "NumPartitions"); break; }
    case 3: { ARGS(PJRT_Executable_SizeOfGeneratedCodeInBytes_Args, a); a.executable = view;
      must_succeed(api->PJRT_Executable_SizeOfGeneratedCodeInBytes(&a), "CodeSize"); break; }
    case 4: { ARGS(PJRT_Executable_GetCostAnalysis_Args, a); a.executable = view;
      must_succeed(api->PJRT_Executable_GetCostAnalysis(&a), "CostAnalysis"); break; }
    case 5: { ARGS(PJRT_Executable_OutputMemoryKinds_Args, a); a.executable = view;
      must_succeed(api->PJRT_Executable_OutputMemoryKinds(&a), "OutputMemoryKinds"); break; }
    case 6: { ARGS(PJRT_Executable_OutputElementTypes_Args, a); a.executable = view;
      must_succeed(api->PJRT_Executable_OutputElementTypes(&a), "OutputElementTypes"); break; }
    case 7: { ARGS(PJRT_Executable_OutputDimensions_Args, a); a.executable = view;
      must_succeed(api->PJRT_Executable_OutputDimensions(&a), "OutputDimensions"); break; }
    case 8: { ARGS(PJRT_Executable_Fingerprint_Args, a); a.executable = view;
      check(api->PJRT_Executable_Fingerprint(&a), "Fingerprint"); break; }
    case 9: { /* the two-call protocol, sometimes with too little room */
      ARGS(PJRT_Program, program);
      ARGS(PJRT_Executable_OptimizedProgram_Args, a); a.executable = view; a.program = &program;
      must_succeed(api->PJRT_Executable_OptimizedProgram(&a), "OptimizedProgram (size)");
      int shrink = chance(30) && program.code_size > 0;
      size_t size = program.code_size;
      program.code = malloc(size + 1);
      program.code_size = shrink ? size - 1 : size;
      PJRT_Error* error = api->PJRT_Executable_OptimizedProgram(&a);
      if (shrink) must_fail(error, "OptimizedProgram (small)");
      else must_succeed(error, "OptimizedProgram");
      free(program.code);
      break; }
    case 10: { /* serialize: the blob is kept for deserialize, its handle freed at once */
      ARGS(PJRT_Executable_Serialize_Args, a); a.executable = view;
      must_succeed(api->PJRT_Executable_Serialize(&a), "Serialize");
      if (num_blobs < 4) {
        Blob blob = {malloc(a.serialized_bytes_size + 1), a.serialized_bytes_size};
        memcpy(blob.bytes, a.serialized_bytes, a.serialized_bytes_size);
        blobs[num_blobs++] = blob;
      }
      a.serialized_executable_deleter(a.serialized_executable);
      break; }
    case 11: { ARGS(PJRT_LoadedExecutable_AddressableDevices_Args, a);
      a.executable = slot->loaded;
      must_succeed(api->PJRT_LoadedExecutable_AddressableDevices(&a), "Exe devices"); break; }
    case 12: { ARGS(PJRT_LoadedExecutable_Fingerprint_Args, a); a.executable = slot->loaded;
      check(api->PJRT_LoadedExecutable_Fingerprint(&a), "Loaded fingerprint"); break; }
    case 13: { if (slot->borrowed) break;
      ARGS(PJRT_LoadedExecutable_Delete_Args, a); a.executable = slot->loaded;
      must_succeed(api->PJRT_LoadedExecutable_Delete(&a), "LoadedExecutable_Delete"); break; }
    case 14: { if (slot->borrowed) break;  /* the view may outlive its loaded executable */
      destroy_loaded(slot->loaded);
      *slot = executables[--num_executables];
      break; }
    default: break;
  }
  if (num_views < MAX_OBJECTS && chance(50)) views[num_views++] = view; else destroy_view(view);
}

static void act_deserialize(void) {
  if (num_blobs == 0) return act_executable_query();
  const Blob* blob = &blobs[rnd((size_t)num_blobs)];
  char* bytes = malloc(blob->size + 64);
  memcpy(bytes, blob->bytes, blob->size);
  size_t size = blob->size;
  int how = (int)rnd(5); /* 0: intact; 1: truncated; 2: flipped; 3: grown; 4: header length */
  if (how == 1) size = rnd(size);
  if (how == 2) bytes[rnd(size)] ^= (char)(1 << rnd(8));
  if (how == 3) { for (int i = 0; i < 64; ++i) bytes[size + i] = (char)next_random(); size += 64; }
  if (how == 4 && size >= 12) { uint32_t huge = 0xFFFFFFF0u - (uint32_t)rnd(16);
    memcpy(bytes + 8, &huge, 4); }
  ARGS(PJRT_Executable_DeserializeAndLoad_Args, load);
  PJRT_Client* client = any_client();
  load.client = client;
  load.serialized_executable = bytes;
  load.serialized_executable_size = size;
  PJRT_Error* error = api->PJRT_Executable_DeserializeAndLoad(&load);
  if (how == 0) must_succeed(error, "DeserializeAndLoad");
  else if (how != 2) must_fail(error, "DeserializeAndLoad (tampered)");
  else check(error, "DeserializeAndLoad (flipped)");
  free(bytes);
  if (error == NULL) keep_executable(load.loaded_executable, client, -1);
}

static int on_ready_calls;
static void count_on_ready(PJRT_Error* error, void* user_arg) {
  check(error, "OnReady callback error");
  CHECK(user_arg == &on_ready_calls, "OnReady user_arg");
  on_ready_calls++;
}

static void act_event(void) {
  if (num_events == 0) return act_buffer_query();
  size_t i = rnd((size_t)num_events);
  PJRT_Event* event = events[i];
  switch (rnd(5)) {
    case 0: { ARGS(PJRT_Event_Await_Args, a); a.event = event;
      check(api->PJRT_Event_Await(&a), "Await"); break; }
    case 1: { ARGS(PJRT_Event_IsReady_Args, a); a.event = event;
      must_succeed(api->PJRT_Event_IsReady(&a), "IsReady"); break; }
    case 2: { ARGS(PJRT_Event_Error_Args, a); a.event = event;
      check(api->PJRT_Event_Error(&a), "Event_Error"); break; }
    case 3: { int before = on_ready_calls;
      ARGS(PJRT_Event_OnReady_Args, a); a.event = event; a.callback = count_on_ready;
      a.user_arg = &on_ready_calls;
      must_succeed(api->PJRT_Event_OnReady(&a), "OnReady");
      CHECK(on_ready_calls == before + 1, "OnReady on a ready event did not run at once");
      break; }
    default: { ARGS(PJRT_Event_Destroy_Args, a); a.event = event;
      must_succeed(api->PJRT_Event_Destroy(&a), "Event_Destroy");
      events[i] = events[--num_events]; break; }
  }
}

static void act_client(void) {
  PJRT_Client* client = any_client();
  PJRT_Device* device = own_device(client);
  switch (rnd(16)) {
    case 0: if (num_clients < 4) {
        ARGS(PJRT_Client_Create_Args, a);
        must_succeed(api->PJRT_Client_Create(&a), "Client_Create");
        clients[num_clients++] = (ClientSlot){a.client, 0};
      } break;
    case 1: if (num_clients > 1) { /* its buffers and executables live on */
        int k = 1 + (int)rnd((size_t)num_clients - 1);
        PJRT_Client* gone = clients[k].client;
        for (int b = 0; b < num_buffers; ++b) if (buffers[b].client == gone) buffers[b].client = NULL;
        for (int e = 0; e < num_executables; ++e) {
          if (executables[e].client == gone) executables[e].client = NULL;
        }
        ARGS(PJRT_Client_Destroy_Args, a); a.client = gone;
        must_succeed(api->PJRT_Client_Destroy(&a), "Client_Destroy");
        clients[k] = clients[--num_clients];
      } break;
    case 2: { ARGS(PJRT_Client_PlatformVersion_Args, a); a.client = client;
      must_succeed(api->PJRT_Client_PlatformVersion(&a), "PlatformVersion"); break; }
    case 3: { ARGS(PJRT_Client_LookupDevice_Args, a); a.client = client; a.id = (int)rnd(4) - 1;
      int code = check(api->PJRT_Client_LookupDevice(&a), "LookupDevice");
      CHECK((code == 0) == (a.id == 0), "LookupDevice(%d)", a.id); break; }
    case 4: { ARGS(PJRT_Client_LookupAddressableDevice_Args, a); a.client = client;
      a.local_hardware_id = (int)rnd(4) - 1;
      check(api->PJRT_Client_LookupAddressableDevice(&a), "LookupAddressableDevice"); break; }
    case 5: { int assignment[2];
      ARGS(PJRT_Client_DefaultDeviceAssignment_Args, a); a.client = client;
      a.num_replicas = (int)rnd(4) - 1; a.num_partitions = (int)rnd(4) - 1;
      a.default_assignment_size = rnd(3); a.default_assignment = chance(90) ? assignment : NULL;
      check(api->PJRT_Client_DefaultDeviceAssignment(&a), "DefaultDeviceAssignment"); break; }
    case 6: { ARGS(PJRT_Device_MemoryStats_Args, a); a.device = device;
      must_succeed(api->PJRT_Device_MemoryStats(&a), "MemoryStats"); break; }
    case 7: { ARGS(PJRT_Device_GetDescription_Args, a); a.device = device;
      must_succeed(api->PJRT_Device_GetDescription(&a), "GetDescription");
      ARGS(PJRT_DeviceDescription_Attributes_Args, b); b.device_description = a.device_description;
      must_succeed(api->PJRT_DeviceDescription_Attributes(&b), "Description attributes");
      ARGS(PJRT_DeviceDescription_ToString_Args, c); c.device_description = a.device_description;
      must_succeed(api->PJRT_DeviceDescription_ToString(&c), "Description ToString"); break; }
    case 8: { ARGS(PJRT_Device_AddressableMemories_Args, a); a.device = device;
      must_succeed(api->PJRT_Device_AddressableMemories(&a), "Device memories");
      ARGS(PJRT_Memory_AddressableByDevices_Args, b); b.memory = a.memories[0];
      must_succeed(api->PJRT_Memory_AddressableByDevices(&b), "Memory devices");
      ARGS(PJRT_Memory_ToString_Args, c); c.memory = a.memories[0];
      must_succeed(api->PJRT_Memory_ToString(&c), "Memory ToString"); break; }
    case 9: { ARGS(PJRT_Plugin_Attributes_Args, a);
      must_succeed(api->PJRT_Plugin_Attributes(&a), "Plugin_Attributes"); break; }
    case 10: { ARGS(PJRT_Buffer_UnsafePointer_Args, a); /* live: an address; else an error */
      size_t i = rnd(num_buffers + 1);
      a.buffer = i < num_buffers ? buffers[i].buffer : NULL;
      int code = check(api->PJRT_Buffer_UnsafePointer(&a), "UnsafePointer");
      CHECK(a.buffer != NULL || code != 0, "UnsafePointer of NULL succeeded"); break; }
    case 11: { ARGS(PJRT_Buffer_CopyToDevice_Args, a); /* any buffer, any device: either way */
      size_t i = rnd(num_buffers + 1);
      a.buffer = i < num_buffers ? buffers[i].buffer : NULL; a.dst_device = device;
      if (check(api->PJRT_Buffer_CopyToDevice(&a), "CopyToDevice") == 0) {
        CHECK(a.buffer != NULL && a.dst_buffer != NULL, "CopyToDevice: no buffer");
        keep_buffer(a.dst_buffer, client);
      }
      break; }
    default: { ARGS(PJRT_Client_AddressableMemories_Args, a); a.client = client;
      must_succeed(api->PJRT_Client_AddressableMemories(&a), "Client memories"); break; }
  }
}

/* One random call, weighted toward the cheap ones (most never enter Python). */
static void random_action(void) {
  size_t roll = rnd(100);
#ifdef PJRT_FUZZ_TRACE
  fprintf(stderr, "action %zu\n", roll);
#endif
  if (roll < 18) act_buffer_from_host();
  else if (roll < 36) act_buffer_query();
  else if (roll < 44) act_to_host();
  else if (roll < 48) act_destroy_buffer();
  else if (roll < 62) act_execute();
  else if (roll < 65) act_compile();
  else if (roll < 75) act_executable_query();
  else if (roll < 77) act_deserialize();
  else if (roll < 87) act_event();
  else act_client();
}
