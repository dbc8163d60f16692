//===- ConcurrencyTest.cpp - Sessions from many threads at once -----------===//
//
// What runtime.h promises: an artifact may be shared by sessions in any
// threads, sessions run concurrently, and a session is used by one thread at
// a time but may move between threads. Each run checks that its outputs are
// exactly those of its own inputs. Built with KILN_SANITIZE=thread, these are
// the ThreadSanitizer stress runs of docs/reliability.md.
//
//===----------------------------------------------------------------------===//
#include "TestUtil.h"

#include "kiln/runtime.h"

#include <atomic>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

using namespace kiln;
using namespace kiln::test;

namespace {

constexpr int kThreads = 8;
constexpr int kIterations = 50;
constexpr int64_t kN = 1000; // 63 workgroups of 16, the last one partial.

/// 64-byte aligned floats, for kiln_session_bind_input and _bind_output.
struct Aligned {
  std::unique_ptr<float, decltype(&std::free)> p;
  explicit Aligned(int64_t n)
      : p(static_cast<float *>(std::aligned_alloc(64, (n * 4 + 63) / 64 * 64)), &std::free) {}
  float *get() const { return p.get(); }
};

/// The three ways to run: set_input + run + output_read, run_io, and
/// bind_input + bind_output + run.
enum Way { kCopy, kRunIo, kBind, kWays };

/// Runs `s` on inputs of its own (from `seed`) one `way`, and checks every
/// output element exactly; "" or what went wrong.
std::string runOnce(kiln_session *s, const VaddModule &m, float seed, Way way) {
  Aligned a(m.n), b(m.n), y(m.n);
  for (int64_t i = 0; i < m.n; ++i) {
    a.get()[i] = seed * static_cast<float>(i % 101);
    b.get()[i] = seed - static_cast<float>(i % 3);
    y.get()[i] = -1.0f;
  }
  int64_t dims[] = {m.n};
  size_t bytes = static_cast<size_t>(m.n) * 4;
  auto fail = [](const char *what) { return std::string(what) + ": " + kiln_last_error(); };
  switch (way) {
  case kCopy:
    if (kiln_session_set_input(s, "a", KILN_DTYPE_F32, 1, dims, a.get(), bytes) ||
        kiln_session_set_input(s, "b", KILN_DTYPE_F32, 1, dims, b.get(), bytes))
      return fail("set_input");
    if (kiln_session_run(s))
      return fail("run");
    if (kiln_session_output_read(s, 0, y.get(), bytes))
      return fail("output_read");
    break;
  case kRunIo: {
    const void *ins[] = {a.get(), b.get()};
    void *outs[] = {y.get()};
    if (kiln_session_run_io(s, ins, 2, outs, 1))
      return fail("run_io");
    break;
  }
  case kBind:
    if (kiln_session_bind_input(s, "a", KILN_DTYPE_F32, 1, dims, a.get(), bytes) ||
        kiln_session_bind_input(s, "b", KILN_DTYPE_F32, 1, dims, b.get(), bytes) ||
        kiln_session_bind_output(s, 0, y.get(), bytes))
      return fail("bind");
    if (kiln_session_run(s))
      return fail("run");
    // Give the session its own memory back before ours is freed.
    if (kiln_session_set_input(s, "a", KILN_DTYPE_F32, 1, dims, a.get(), bytes) ||
        kiln_session_set_input(s, "b", KILN_DTYPE_F32, 1, dims, b.get(), bytes) ||
        kiln_session_bind_output(s, 0, nullptr, 0))
      return fail("unbind");
    break;
  default:
    return "no such way";
  }
  for (int64_t i = 0; i < m.n; ++i) {
    float want = (a.get()[i] + b.get()[i]) * m.c[i];
    if (y.get()[i] != want)
      return "seed " + std::to_string(seed) + ", element " + std::to_string(i) + ": got " +
             std::to_string(y.get()[i]) + ", want " + std::to_string(want);
  }
  // Errors are per thread: this one's message is its own.
  std::string bad = "no_such_input_" + std::to_string(seed);
  if (kiln_session_set_input(s, bad.c_str(), KILN_DTYPE_F32, 1, dims, a.get(), bytes) !=
          KILN_ERROR_NOT_FOUND ||
      std::string(kiln_last_error()).find(bad) == std::string::npos)
    return "kiln_last_error() is not this thread's: " + std::string(kiln_last_error());
  return "";
}

/// Writes and opens the vadd artifact; nullptr (and a test failure) if not.
kiln_artifact *openVadd(const VaddModule &m) {
  std::string path = tempPath(".kiln");
  EXPECT_EQ(artifact::writeArtifact(m.module, path), "");
  kiln_artifact *a = nullptr;
  EXPECT_EQ(kiln_artifact_open(path.c_str(), &a), KILN_OK) << kiln_last_error();
  return a;
}

/// Runs body(t) on `n` threads and fails the test with every thread's error.
template <typename Body> void onThreads(int n, Body body) {
  std::vector<std::string> errors(n);
  std::vector<std::thread> threads;
  for (int t = 0; t < n; ++t)
    threads.emplace_back([&, t] { errors[t] = body(t); });
  for (std::thread &th : threads)
    th.join();
  for (int t = 0; t < n; ++t)
    EXPECT_EQ(errors[t], "") << "thread " << t;
}

// 8 threads each create, run and release 50 sessions over one artifact,
// with 1 or 2 pool threads each, every third profiled. Each thread first
// opens a session it keeps to the end; the test's own reference to the
// artifact is dropped once those exist, so the last session released
// (in whichever thread) frees it.
TEST(Concurrency, ManySessionsOverOneArtifact) {
  VaddModule m(kN);
  kiln_artifact *art = openVadd(m);
  ASSERT_NE(art, nullptr);
  std::atomic<int> anchored{0};
  std::atomic<bool> released{false};
  std::thread dropper([&] {
    while (anchored.load() < kThreads)
      std::this_thread::yield();
    kiln_artifact_release(art);
    released.store(true);
  });
  onThreads(kThreads, [&](int t) -> std::string {
    kiln_session_options one{1, nullptr, nullptr};
    kiln_session *anchor = nullptr;
    kiln_status st = kiln_session_create(art, "cpu", &one, &anchor);
    anchored.fetch_add(1);
    if (st != KILN_OK)
      return std::string("create: ") + kiln_last_error();
    std::string stats = tempPath(".stats" + std::to_string(t) + ".json");
    std::string error;
    for (int it = 0; it < kIterations && error.empty(); ++it) {
      // The artifact is read by every thread while sessions come and go.
      kiln_tensor_info info;
      if (kiln_artifact_input_info(art, 1, &info) || std::string(info.name) != "b")
        return "input_info: " + std::string(kiln_last_error());
      kiln_session_options opts{static_cast<uint32_t>(1 + (t + it) % 2), nullptr,
                                it % 3 == 0 ? stats.c_str() : nullptr};
      kiln_session *s = nullptr;
      if (kiln_session_create(art, nullptr, &opts, &s) != KILN_OK)
        return "create: " + std::string(kiln_last_error());
      float seed = static_cast<float>(t * 1000 + it) * 0.25f + 0.5f;
      error = runOnce(s, m, seed, static_cast<Way>(it % kWays));
      if (error.empty())
        error = runOnce(s, m, -seed, static_cast<Way>((it + 1) % kWays));
      if (error.empty() && it % 3 == 0) {
        kiln_dispatch_info d;
        if (kiln_session_dispatch_info(s, 1, &d) || d.time_ns < 0)
          error = "dispatch_info: no time for a profiled run";
      }
      kiln_session_release(s);
      if (error.empty() && it % 10 == 9)
        error = runOnce(anchor, m, seed + 0.125f, kCopy);
    }
    kiln_session_release(anchor);
    return error;
  });
  dropper.join();
  EXPECT_TRUE(released.load());
}

// One session (two pool threads) used by 4 threads in turn, the callers
// serializing themselves as runtime.h asks; created on this thread and
// released on the last one to use it.
TEST(Concurrency, OneSessionMovesBetweenThreads) {
  VaddModule m(kN);
  kiln_artifact *art = openVadd(m);
  ASSERT_NE(art, nullptr);
  kiln_session_options opts{2, nullptr, nullptr};
  kiln_session *s = nullptr;
  ASSERT_EQ(kiln_session_create(art, nullptr, &opts, &s), KILN_OK) << kiln_last_error();
  kiln_artifact_release(art);
  std::mutex turn;
  int uses = 0;
  onThreads(4, [&](int t) -> std::string {
    for (int it = 0; it < kIterations; ++it) {
      std::lock_guard<std::mutex> lock(turn);
      float seed = static_cast<float>(t * 1000 + it) + 0.75f;
      if (std::string error = runOnce(s, m, seed, static_cast<Way>((t + it) % kWays));
          !error.empty())
        return error;
      if (++uses == 4 * kIterations)
        kiln_session_release(s);
    }
    return "";
  });
  EXPECT_EQ(uses, 4 * kIterations);
}

} // namespace
