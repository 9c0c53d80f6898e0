/* Fuzzes the xla-metal PJRT surface from plain C, with no JAX: random, type-correct sequences
 * of calls from a fixed seed. Every call either succeeds or returns a well-formed error; the
 * process must never crash (built with -fsanitize=address,undefined it must never report).
 *
 *   cc -std=c11 -fsanitize=address,undefined -o pjrt_fuzz tests/c/pjrt_fuzz.c -ldl
 *   ./pjrt_fuzz LIBRARY PROGRAMS [SEQUENCES [SEED [FIRST]]]
 *
 * PROGRAMS lists valid programs, one a line: "ARTIFACT TEXT NUM_ARGS" then, per argument,
 * "TYPE RANK DIM..." (PJRT_Buffer_Type numbers): ARTIFACT is the StableHLO portable artifact,
 * TEXT the same program as MLIR text. Tests write it (tests/test_fuzz.py).
 * Bit flips and spliced chunks go into the text or the artifact's bytecode, half each: the
 * plugin reads programs in a separate reader process, since jaxlib's own StableHLO reader
 * crashes or hangs on some corrupt bytecode (xla_metal/reader).
 * A sequence creates and queries clients, buffers (random dtypes and shapes, zero-size
 * included, strided host data), compiles valid, truncated, bit-flipped and random programs,
 * executes with right and wrong arity, shapes, dtypes, deleted or foreign buffers, keeps
 * events past their buffers, serializes and deserializes (tampered too), then destroys
 * everything left in a random order (clients first included).
 * Prints "pjrt_fuzz: OK <sequences> sequences, <calls> calls, <n> reader crashes avoided"
 * (compiles refused because jaxlib's reader crashed or hung in the plugin's reader process)
 * and exits 0.
 */
#include <signal.h>
#include <stdint.h>
#include <unistd.h>

#define CHECK_FAILED() abort() /* on_signal names the sequence */
#include "pjrt_helpers.h"

static long current_sequence = -1;
static long calls;
static long crashes_avoided;

/* Which sequence crashed, from a signal handler or the sanitizer's death callback. */
static void say_where(void) {
  char text[64];
  int n = snprintf(text, sizeof text, "pjrt_fuzz: died in sequence %ld\n", current_sequence);
  if (n > 0) (void)!write(2, text, (size_t)n);
}
static void on_signal(int signal_number) {
  say_where();
  signal(signal_number, SIG_DFL);
  raise(signal_number);
}
extern void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

/* ------------------------------------------------------------------------- randomness */

static uint64_t rng_state;
static uint64_t next_random(void) { /* splitmix64 */
  uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static size_t rnd(size_t n) { return n == 0 ? 0 : (size_t)(next_random() % n); }
static int chance(int percent) { return (int)rnd(100) < percent; }

/* ------------------------------------------------------------------------- errors */

/* Checks a returned error is well formed and destroys it; returns its code, 0 for success. */
static int check(PJRT_Error* error, const char* what) {
  calls++;
  if (error == NULL) return 0;
  ARGS(PJRT_Error_Message_Args, message);
  message.error = error;
  api->PJRT_Error_Message(&message);
  CHECK(message.message != NULL && message.message_size > 0, "%s: error without a message",
        what);
  CHECK(memchr(message.message, '\0', message.message_size) == NULL, "%s: NUL in message", what);
  char text[256];
  snprintf(text, sizeof text, "%.*s", (int)message.message_size, message.message);
  if (strstr(text, "jaxlib's reader") != NULL && strstr(text, "in the reader process") != NULL) {
    crashes_avoided++; /* the plugin's reader process crashed or hung reading the program */
  }
  PJRT_Error_Code code = error_code(error);
  CHECK(code >= PJRT_Error_Code_CANCELLED && code <= PJRT_Error_Code_UNAUTHENTICATED,
        "%s: error code %d", what, (int)code);
  destroy_error(error);
  return (int)code;
}
static void must_succeed(PJRT_Error* error, const char* what) {
  int code = check(error, what);
  CHECK(code == 0, "%s failed with code %d", what, code);
}
static void must_fail(PJRT_Error* error, const char* what) {
  CHECK(error != NULL, "%s succeeded but must fail", what);
  check(error, what);
}

/* ------------------------------------------------------------------------- programs */

#define MAX_PROGRAMS 16
#define MAX_ARGS 4
typedef struct {
  char* code;
  size_t code_size;
  char* text;
  size_t text_size;
  int num_args;
  PJRT_Buffer_Type types[MAX_ARGS];
  int ranks[MAX_ARGS];
  int64_t dims[MAX_ARGS][4];
} Program;
static Program programs[MAX_PROGRAMS];
static int num_programs;

static void read_programs(const char* list_path) {
  FILE* list = fopen(list_path, "r");
  CHECK(list != NULL, "cannot open %s", list_path);
  char path[4096], text_path[4096];
  while (num_programs < MAX_PROGRAMS && fscanf(list, "%4095s %4095s", path, text_path) == 2) {
    Program* p = &programs[num_programs++];
    p->text = read_file(text_path, &p->text_size);
    CHECK(fscanf(list, "%d", &p->num_args) == 1 && p->num_args <= MAX_ARGS, "program list");
    for (int i = 0; i < p->num_args; ++i) {
      int type;
      CHECK(fscanf(list, "%d %d", &type, &p->ranks[i]) == 2 && p->ranks[i] <= 4, "args");
      p->types[i] = (PJRT_Buffer_Type)type;
      for (int d = 0; d < p->ranks[i]; ++d) {
        long long dim;
        CHECK(fscanf(list, "%lld", &dim) == 1, "dims");
        p->dims[i][d] = dim;
      }
    }
    p->code = read_file(path, &p->code_size);
  }
  fclose(list);
  CHECK(num_programs > 0, "no programs in %s", list_path);
}

/* ------------------------------------------------------------------------- the pools */

#define MAX_OBJECTS 24
typedef struct {
  PJRT_Client* client;
  int borrowed; /* the long-lived client: never destroyed by a sequence */
} ClientSlot;
typedef struct {
  PJRT_Buffer* buffer;
  PJRT_Client* client;
} BufferSlot;
typedef struct {
  PJRT_LoadedExecutable* loaded;
  PJRT_Client* client;
  int program; /* index into programs, or -1 when not known to be one */
  int borrowed;
} ExecutableSlot;
typedef struct {
  char* bytes;
  size_t size;
} Blob;

static ClientSlot clients[4];
static int num_clients;
static BufferSlot buffers[MAX_OBJECTS];
static int num_buffers;
static ExecutableSlot executables[MAX_OBJECTS];
static int num_executables;
static PJRT_Executable* views[MAX_OBJECTS];
static int num_views;
static PJRT_Event* events[MAX_OBJECTS];
static int num_events;
static Blob blobs[4];
static int num_blobs;

static PJRT_Client* base_client;
static PJRT_LoadedExecutable* base_executables[MAX_PROGRAMS];

static void keep_event(PJRT_Event* event) {
  if (event == NULL) return;
  if (num_events < MAX_OBJECTS) {
    events[num_events++] = event;
    return;
  }
  ARGS(PJRT_Event_Destroy_Args, destroy);
  destroy.event = event;
  must_succeed(api->PJRT_Event_Destroy(&destroy), "Event_Destroy");
}

static void keep_buffer(PJRT_Buffer* buffer, PJRT_Client* client) {
  if (num_buffers < MAX_OBJECTS) {
    buffers[num_buffers++] = (BufferSlot){buffer, client};
  } else {
    destroy_buffer(buffer);
  }
}

static void destroy_loaded(PJRT_LoadedExecutable* loaded) {
  ARGS(PJRT_LoadedExecutable_Destroy_Args, destroy);
  destroy.executable = loaded;
  must_succeed(api->PJRT_LoadedExecutable_Destroy(&destroy), "LoadedExecutable_Destroy");
}

static void keep_executable(PJRT_LoadedExecutable* loaded, PJRT_Client* client, int program) {
  if (num_executables < MAX_OBJECTS) {
    executables[num_executables++] = (ExecutableSlot){loaded, client, program, 0};
  } else {
    destroy_loaded(loaded);
  }
}

static PJRT_Client* any_client(void) { return clients[rnd((size_t)num_clients)].client; }

/* The sequence's actions live in pjrt_fuzz_actions.h: one function per kind of call. */
#include "pjrt_fuzz_actions.h"
#include "pjrt_fuzz_executables.h"

/* ------------------------------------------------------------------------- a sequence */

static void destroy_everything_in_random_order(void) {
  for (;;) {
    int total = num_clients - 1 + num_buffers + num_executables + num_views + num_events +
                num_blobs;
    if (total == 0) return;
    size_t pick = rnd((size_t)total);
    if (pick < (size_t)num_clients - 1) {
      int i = 1 + (int)pick; /* slot 0 is the borrowed client */
      ARGS(PJRT_Client_Destroy_Args, destroy);
      destroy.client = clients[i].client;
      must_succeed(api->PJRT_Client_Destroy(&destroy), "Client_Destroy");
      clients[i] = clients[--num_clients];
      continue;
    }
    pick -= (size_t)num_clients - 1;
    if (pick < (size_t)num_buffers) {
      destroy_buffer(buffers[pick].buffer);
      buffers[pick] = buffers[--num_buffers];
      continue;
    }
    pick -= (size_t)num_buffers;
    if (pick < (size_t)num_executables) {
      if (!executables[pick].borrowed) destroy_loaded(executables[pick].loaded);
      executables[pick] = executables[--num_executables];
      continue;
    }
    pick -= (size_t)num_executables;
    if (pick < (size_t)num_views) {
      ARGS(PJRT_Executable_Destroy_Args, destroy);
      destroy.executable = views[pick];
      must_succeed(api->PJRT_Executable_Destroy(&destroy), "Executable_Destroy");
      views[pick] = views[--num_views];
      continue;
    }
    pick -= (size_t)num_views;
    if (pick < (size_t)num_events) {
      ARGS(PJRT_Event_Destroy_Args, destroy);
      destroy.event = events[pick];
      must_succeed(api->PJRT_Event_Destroy(&destroy), "Event_Destroy");
      events[pick] = events[--num_events];
      continue;
    }
    pick -= (size_t)num_events;
    free(blobs[pick].bytes);
    blobs[pick] = blobs[--num_blobs];
  }
}

static void run_sequence(uint64_t seed, long index) {
  current_sequence = index;
  rng_state = seed ^ ((uint64_t)index * 0xD1B54A32D192ED03ull);
  num_clients = 1;
  clients[0] = (ClientSlot){base_client, 1};
  /* The long-lived executables are borrowed: executed and queried, never destroyed. */
  for (int p = 0; p < num_programs && num_executables < MAX_OBJECTS; ++p) {
    if (chance(50)) {
      executables[num_executables++] = (ExecutableSlot){base_executables[p], base_client, p, 1};
    }
  }
  int length = 3 + (int)rnd(14);
  for (int step = 0; step < length; ++step) random_action();
  destroy_everything_in_random_order();
}

int main(int argc, char** argv) {
  program_name = "pjrt_fuzz";
  CHECK(argc >= 3 && argc <= 6, "usage: %s LIBRARY PROGRAMS [SEQUENCES [SEED [FIRST]]]",
        argv[0]);
  long sequences = argc >= 4 ? atol(argv[3]) : 10000;
  uint64_t seed = argc >= 5 ? strtoull(argv[4], NULL, 0) : 20261122;
  long first = argc >= 6 ? atol(argv[5]) : 0; /* to replay the sequence a failure names */
  signal(SIGSEGV, on_signal);
  signal(SIGBUS, on_signal);
  signal(SIGABRT, on_signal);
  if (__sanitizer_set_death_callback != NULL) __sanitizer_set_death_callback(say_where);

  api = load_api(argv[1]);
  read_programs(argv[2]);

  ARGS(PJRT_Plugin_Initialize_Args, initialize);
  must_succeed(api->PJRT_Plugin_Initialize(&initialize), "Plugin_Initialize");
  ARGS(PJRT_Client_Create_Args, create);
  must_succeed(api->PJRT_Client_Create(&create), "Client_Create");
  base_client = create.client;
  for (int p = 0; p < num_programs; ++p) {
    base_executables[p] = compile_code(base_client, programs[p].code, programs[p].code_size,
                                       "mlir", 1);
    CHECK(base_executables[p] != NULL, "program %d does not compile", p);
  }

  for (long i = first; i < first + sequences; ++i) run_sequence(seed, i);

  current_sequence = -1;
  for (int p = 0; p < num_programs; ++p) destroy_loaded(base_executables[p]);
  ARGS(PJRT_Client_Destroy_Args, destroy);
  destroy.client = base_client;
  must_succeed(api->PJRT_Client_Destroy(&destroy), "Client_Destroy");
  for (int p = 0; p < num_programs; ++p) free(programs[p].code), free(programs[p].text);
  printf("pjrt_fuzz: OK %ld sequences, %ld calls, %ld reader crashes avoided\n", sequences,
         calls, crashes_avoided);
  return 0;
}
