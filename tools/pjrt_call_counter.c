// A diagnostic shim that counts the PJRT C API calls a framework makes (tools/profile_dispatch.py
// uses it to count and time the calls of one jitted call). Build:
//   cc -O2 -shared -fPIC -o /tmp/pjrt_call_counter.so tools/pjrt_call_counter.c -ldl
// It exports GetPjrtApi, loads the real plugin named by XM_COUNTER_REAL_PLUGIN, and hands the
// framework a copy of its table whose every slot first counts the call and its time, then calls
// the real entry. Slots are counted by position; the Python side names them from pjrt_c_api.h.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SLOTS 128  // slots of the API table this shim can wrap
#define MAX_TOKEN 1024  // trampolines are named by 3-digit tokens (see token_of)
typedef void* (*Entry)(void*);

static Entry real_slots[MAX_TOKEN];
static uint64_t call_counts[MAX_TOKEN];
static uint64_t call_nanoseconds[MAX_TOKEN];
static unsigned char table[MAX_SLOTS * sizeof(void*) + 64];

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

// Every slot is `PJRT_Error* f(Args*)` except two that return void; the trampoline passes
// the return register through, which the framework ignores for those two.
#define TRAMPOLINE(i)                                             \
  static void* trampoline_##i(void* args) {                       \
    uint64_t start = now_ns();                                    \
    void* result = real_slots[i](args);                           \
    __atomic_add_fetch(&call_nanoseconds[i], now_ns() - start, __ATOMIC_RELAXED); \
    __atomic_add_fetch(&call_counts[i], 1, __ATOMIC_RELAXED);     \
    return result;                                                \
  }
#define T4(i) TRAMPOLINE(i##0) TRAMPOLINE(i##1) TRAMPOLINE(i##2) TRAMPOLINE(i##3)
#define T16(i) T4(i##0) T4(i##1) T4(i##2) T4(i##3)
T16(1) T16(2) T16(3) T16(4) T16(5) T16(6) T16(7) T16(8)
#define R4(i) trampoline_##i##0, trampoline_##i##1, trampoline_##i##2, trampoline_##i##3
#define R16(i) R4(i##0), R4(i##1), R4(i##2), R4(i##3)
static Entry trampolines[] = {R16(1), R16(2), R16(3), R16(4), R16(5), R16(6), R16(7), R16(8)};

// The macros name the k-th trampoline by the decimal token a b c: a = k/16 + 1, b = k%16/4,
// c = k%4; that token indexes the arrays above.
static int token_of(int k) { return (k / 16 + 1) * 100 + (k % 16 / 4) * 10 + k % 4; }

// The table starts with struct_size, extension_start and PJRT_Api_Version (struct_size,
// extension_start, major and minor int) before the slots.
enum { kHeaderBytes = 4 * sizeof(void*) + 2 * sizeof(int) };

const void* GetPjrtApi(void) {
  const char* path = getenv("XM_COUNTER_REAL_PLUGIN");
  void* library = path != NULL ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : NULL;
  if (library == NULL) {
    fprintf(stderr, "pjrt_call_counter: cannot load XM_COUNTER_REAL_PLUGIN\n");
    return NULL;
  }
  const void* (*real_get)(void) = (const void* (*)(void))dlsym(library, "GetPjrtApi");
  const unsigned char* real = real_get();
  size_t size = *(const size_t*)real;
  size_t slots = (size - kHeaderBytes) / sizeof(void*);
  if (slots > MAX_SLOTS || slots > sizeof(trampolines) / sizeof(trampolines[0])) return NULL;
  memcpy(table, real, size);
  for (size_t i = 0; i < slots; ++i) {
    Entry* slot = (Entry*)(table + kHeaderBytes + i * sizeof(void*));
    real_slots[token_of((int)i)] = *slot;
    if (*slot != NULL) *slot = trampolines[i];
  }
  return table;
}

// For ctypes: copies the counts and nanoseconds of the first n slots; resets them if asked.
int xm_counter_read(uint64_t* counts, uint64_t* nanoseconds, int n, int reset) {
  for (int i = 0; i < n && i < MAX_SLOTS; ++i) {
    const int t = token_of(i);
    counts[i] = __atomic_load_n(&call_counts[t], __ATOMIC_RELAXED);
    nanoseconds[i] = __atomic_load_n(&call_nanoseconds[t], __ATOMIC_RELAXED);
    if (reset) call_counts[t] = call_nanoseconds[t] = 0;
  }
  return MAX_SLOTS;
}
