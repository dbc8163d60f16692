/* Test kernels in the CPU kernel ABI: bindings[i] = buffer base + offset.
 * Workgroup x covers elements [16x, 16x+16); the element count is an int64
 * read through bindings[3] so the tests exercise constants and offsets. */
#include <sched.h>
#include <stdint.h>
#include <time.h>

#define TILE 16

void vadd(void *const *b, int64_t x, int64_t y, int64_t z) {
  (void)y; (void)z;
  const float *lhs = (const float *)b[0], *rhs = (const float *)b[1];
  float *out = (float *)b[2];
  int64_t n = *(const int64_t *)b[3];
  for (int64_t i = x * TILE; i < n && i < (x + 1) * TILE; ++i)
    out[i] = lhs[i] + rhs[i];
}

void vmul(void *const *b, int64_t x, int64_t y, int64_t z) {
  (void)y; (void)z;
  const float *lhs = (const float *)b[0], *rhs = (const float *)b[1];
  float *out = (float *)b[2];
  int64_t n = *(const int64_t *)b[3];
  for (int64_t i = x * TILE; i < n && i < (x + 1) * TILE; ++i)
    out[i] = lhs[i] * rhs[i];
}

/* Records which (x, y, z) ran, to check the grid decomposition. */
void mark(void *const *b, int64_t x, int64_t y, int64_t z) {
  int32_t *hits = (int32_t *)b[0];
  hits[(z * 3 + y) * 5 + x] += 1;
}

/* A data-dependent output: fills a 3x4 i32 box with 10*row + col and copies
 * the run's extents (an i64[2] input) to the extents buffer. */
void box(void *const *b, int64_t x, int64_t y, int64_t z) {
  (void)x; (void)y; (void)z;
  const int64_t *want = (const int64_t *)b[0];
  int32_t *out = (int32_t *)b[1];
  int64_t *extents = (int64_t *)b[2];
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j)
      out[i * 4 + j] = 10 * i + j;
  extents[0] = want[0];
  extents[1] = want[1];
}

/* Returns once as many workgroups as the grid has (the i64 through
 * bindings[1]) are running at the same time, or after two seconds: with as
 * many pool threads as workgroups, every thread then runs exactly one, which
 * the profiling tests count on. bindings[0] is an i32 counter that only
 * grows, so the kernel can run again (the n arrivals after ticket t share
 * the goal (t / n + 1) * n). */
void meet(void *const *b, int64_t x, int64_t y, int64_t z) {
  (void)x; (void)y; (void)z;
  int32_t *arrived = (int32_t *)b[0];
  int64_t n = *(const int64_t *)b[1];
  int64_t ticket = __atomic_fetch_add(arrived, 1, __ATOMIC_SEQ_CST);
  int64_t goal = (ticket / n + 1) * n;
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  while (__atomic_load_n(arrived, __ATOMIC_SEQ_CST) < goal) {
    sched_yield();
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec - start.tv_sec > 2)
      break;
  }
}

/* What levelzero-cpu makes of a GPU kernel with workgroups of 16 invocations:
 * one cpu-ABI function per workgroup (workgroup_count is the GPU grid) that
 * runs each invocation with its global id, here one element each with the
 * MockGpu vadd's parameters. For the driver conformance test. */
static void vaddInvocation(void *const *b, int64_t gid) {
  const float *lhs = (const float *)b[0], *rhs = (const float *)b[1];
  float *out = (float *)b[2];
  if (gid < *(const int64_t *)b[3])
    out[gid] = lhs[gid] + rhs[gid];
}

void vadd_wg16(void *const *b, int64_t x, int64_t y, int64_t z) {
  (void)y; (void)z;
  for (int64_t lid = 0; lid < 16; ++lid)
    vaddInvocation(b, x * 16 + lid);
}
