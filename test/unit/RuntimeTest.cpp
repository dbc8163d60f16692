//===- RuntimeTest.cpp - Sessions on the CPU driver through the C API -----===//
#include "TestUtil.h"

#include "kiln/runtime.h"

#include <algorithm>
#include <sstream>
#include <thread>

using namespace kiln;
using namespace kiln::test;
using ::testing::HasSubstr;

namespace {

/// Writes `module`, opens it and creates a session with `threads` threads.
struct Fixture {
  kiln_artifact *artifact = nullptr;
  kiln_session *session = nullptr;
  Fixture(const artifact::Module &module, uint32_t threads = 4) {
    std::string path = tempPath(".kiln");
    EXPECT_EQ(artifact::writeArtifact(module, path), "");
    EXPECT_EQ(kiln_artifact_open(path.c_str(), &artifact), KILN_OK)
        << kiln_last_error();
    kiln_session_options opts{threads};
    EXPECT_EQ(kiln_session_create(artifact, nullptr, &opts, &session), KILN_OK)
        << kiln_last_error();
  }
  ~Fixture() {
    kiln_session_release(session);
    kiln_artifact_release(artifact);
  }
};

kiln_status setF32(kiln_session *s, const char *name,
                   const std::vector<float> &v) {
  int64_t dims[] = {static_cast<int64_t>(v.size())};
  return kiln_session_set_input(s, name, KILN_DTYPE_F32, 1, dims, v.data(),
                                v.size() * 4);
}

void runAndCheck(kiln_session *s, const VaddModule &m, float seed) {
  std::vector<float> a(m.n), b(m.n), y(m.n);
  for (int64_t i = 0; i < m.n; ++i) {
    a[i] = seed * static_cast<float>(i);
    b[i] = 1.0f - static_cast<float>(i % 3);
  }
  ASSERT_EQ(setF32(s, "a", a), KILN_OK) << kiln_last_error();
  ASSERT_EQ(setF32(s, "b", b), KILN_OK) << kiln_last_error();
  ASSERT_EQ(kiln_session_run(s), KILN_OK) << kiln_last_error();
  ASSERT_EQ(kiln_session_output_read(s, 0, y.data(), y.size() * 4), KILN_OK)
      << kiln_last_error();
  for (int64_t i = 0; i < m.n; ++i)
    ASSERT_EQ(y[i], (a[i] + b[i]) * m.c[i]) << "at " << i;
}

TEST(Runtime, ListsCpuDevice) {
  ASSERT_GE(kiln_device_count(), 1u);
  kiln_device_info info;
  size_t i = 0;
  while (i < kiln_device_count() &&
         (kiln_device_info_get(i, &info) != KILN_OK ||
          std::string(info.driver) != "cpu"))
    ++i;
  ASSERT_LT(i, kiln_device_count());
  // Drivers list their devices in the build's backend order, the device
  // preference order (KILN_BACKENDS: the GPUs, the cpu, the simulated npu).
  std::vector<std::string> order;
  std::stringstream backends(KILN_BACKEND_ORDER);
  for (std::string b; std::getline(backends, b, ',');)
    order.push_back(b);
  size_t last = 0;
  for (size_t j = 0; j < kiln_device_count(); ++j) {
    kiln_device_info other;
    ASSERT_EQ(kiln_device_info_get(j, &other), KILN_OK);
    size_t at = std::find(order.begin(), order.end(), other.driver) - order.begin();
    ASSERT_LT(at, order.size()) << other.driver << " is not a backend: "
                                << KILN_BACKEND_ORDER;
    EXPECT_GE(at, last) << other.name << " is out of the backends' order";
    last = at;
  }
  ASSERT_EQ(kiln_device_info_get(i, &info), KILN_OK);
  EXPECT_STREQ(info.name, "cpu:0");
  EXPECT_STREQ(info.driver, "cpu");
  EXPECT_TRUE(info.available);
  EXPECT_THAT(info.description, HasSubstr("host CPU"));
  EXPECT_EQ(kiln_device_info_get(99, &info), KILN_ERROR_NOT_FOUND);
}

TEST(Runtime, DtypeHelpers) {
  kiln_dtype t;
  ASSERT_EQ(kiln_dtype_from_name("bf16", &t), KILN_OK);
  EXPECT_EQ(t, KILN_DTYPE_BF16);
  ASSERT_EQ(kiln_dtype_from_name("bool", &t), KILN_OK);
  EXPECT_STREQ(kiln_dtype_name(t), "i1");
  EXPECT_EQ(kiln_dtype_size(KILN_DTYPE_I64), 8u);
  EXPECT_EQ(kiln_dtype_size(static_cast<kiln_dtype>(99)), 0u);
  EXPECT_EQ(kiln_dtype_from_name("f128", &t), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_THAT(kiln_last_error(), HasSubstr("unknown dtype 'f128'"));
}

TEST(Runtime, RunsChainedDispatchesOnThreads) {
  VaddModule m(1000); // 63 workgroups, last one partial.
  Fixture f(m.module, 4);
  ASSERT_NE(f.session, nullptr);
  EXPECT_STREQ(kiln_session_device(f.session), "cpu:0");
  runAndCheck(f.session, m, 0.25f);
  runAndCheck(f.session, m, -3.0f); // Inputs replaced, constants intact.
}

TEST(Runtime, SingleThreadAndArtifactReleasedEarly) {
  VaddModule m(37);
  Fixture f(m.module, 1);
  ASSERT_NE(f.session, nullptr);
  // The session holds its own reference to the mapping.
  kiln_artifact_release(f.artifact);
  f.artifact = nullptr;
  runAndCheck(f.session, m, 2.0f);
}

TEST(Runtime, ConcurrentSessions) {
  VaddModule m(5000);
  Fixture f1(m.module, 2), f2(m.module, 3);
  std::thread t([&] { runAndCheck(f1.session, m, 1.5f); });
  runAndCheck(f2.session, m, 0.5f);
  t.join();
}

TEST(Runtime, GridCoversEveryWorkgroupOnce) {
  using namespace artifact;
  Module m;
  m.name = "grid";
  m.buffers = {{BufferKind::Output, 30 * 4, nullptr}};
  m.outputs = {{"hits", DType::I32, {2, 3, 5}, 0}};
  m.executables = {
      {"cpu", "elf-x86_64-so", readFile(KILN_TEST_KERNELS), {{"mark", {5, 3, 2}, {1, 1, 1}}}}};
  Dispatch d;
  d.bindings = {{0, 0}};
  m.dispatches = {d};
  Fixture f(m, 3);
  ASSERT_NE(f.session, nullptr);
  ASSERT_EQ(kiln_session_run(f.session), KILN_OK) << kiln_last_error();
  std::vector<int32_t> hits(30);
  ASSERT_EQ(kiln_session_output_read(f.session, 0, hits.data(), 120), KILN_OK);
  EXPECT_EQ(hits, std::vector<int32_t>(30, 1));
}

TEST(Runtime, InputValidation) {
  VaddModule m(8);
  Fixture f(m.module);
  kiln_session *s = f.session;
  ASSERT_NE(s, nullptr);
  std::vector<float> v(8, 1.0f);

  EXPECT_EQ(setF32(s, "z", v), KILN_ERROR_NOT_FOUND);
  EXPECT_STREQ(kiln_last_error(), "no input named 'z' (inputs: a, b)");

  EXPECT_EQ(setF32(s, "a", std::vector<float>(7)), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(kiln_last_error(), "input 'a': expected f32[8], got f32[7]");

  int64_t dims2[] = {2, 4};
  EXPECT_EQ(kiln_session_set_input(s, "a", KILN_DTYPE_F32, 2, dims2, v.data(), 32),
            KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(kiln_last_error(), "input 'a': expected f32[8], got f32[2,4]");

  int64_t dims[] = {8};
  std::vector<double> d(8);
  EXPECT_EQ(kiln_session_set_input(s, "a", KILN_DTYPE_F64, 1, dims, d.data(), 64),
            KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(kiln_last_error(), "input 'a': expected f32[8], got f64[8]");

  EXPECT_EQ(kiln_session_set_input(s, "a", KILN_DTYPE_F32, 1, dims, v.data(), 16),
            KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(kiln_last_error(), "input 'a': expected 32 bytes of data, got 16");

  ASSERT_EQ(setF32(s, "a", v), KILN_OK);
  EXPECT_EQ(kiln_session_run(s), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(kiln_last_error(), "input 'b' was never set");

  float out[8];
  EXPECT_EQ(kiln_session_output_read(s, 0, out, sizeof(out)),
            KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_THAT(kiln_last_error(), HasSubstr("no successful run"));
  ASSERT_EQ(setF32(s, "b", v), KILN_OK);
  ASSERT_EQ(kiln_session_run(s), KILN_OK);
  EXPECT_EQ(kiln_session_output_read(s, 0, out, 4), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_THAT(kiln_last_error(), HasSubstr("expected a 32-byte destination"));
  EXPECT_EQ(kiln_session_output_read(s, 0, out, sizeof(out)), KILN_OK);
}

/// An output whose two dims are data-dependent: bound [3, 4], extents read
/// from buffer 2, which the kernel copies from input "e".
artifact::Module boxModule() {
  using namespace artifact;
  Module m;
  m.name = "box";
  m.buffers = {{BufferKind::Input, 16, nullptr},
               {BufferKind::Output, 48, nullptr},
               {BufferKind::Output, 16, nullptr}};
  m.inputs = {{"e", DType::I64, {2}, 0}};
  m.outputs = {{"y", DType::I32, {3, 4}, 1, {{0, 2, 0}, {1, 2, 8}}}};
  m.executables = {
      {"cpu", "elf-x86_64-so", readFile(KILN_TEST_KERNELS), {{"box", {1, 1, 1}, {1, 1, 1}}}}};
  Dispatch d;
  d.bindings = {{0, 0}, {1, 0}, {2, 0}};
  m.dispatches = {d};
  return m;
}

TEST(Runtime, DataDependentOutputShape) {
  Fixture f(boxModule(), 1);
  kiln_session *s = f.session;
  ASSERT_NE(s, nullptr);
  kiln_tensor_info info;
  // Before a run: the bound, as the artifact records it.
  ASSERT_EQ(kiln_session_output_info(s, 0, &info), KILN_OK);
  EXPECT_EQ(std::vector<int64_t>(info.dims, info.dims + info.rank), (std::vector<int64_t>{3, 4}));

  int64_t dims[] = {2}, want[] = {2, 3};
  ASSERT_EQ(kiln_session_set_input(s, "e", KILN_DTYPE_I64, 1, dims, want, 16), KILN_OK);
  ASSERT_EQ(kiln_session_run(s), KILN_OK) << kiln_last_error();
  ASSERT_EQ(kiln_session_output_info(s, 0, &info), KILN_OK);
  EXPECT_EQ(std::vector<int64_t>(info.dims, info.dims + info.rank), (std::vector<int64_t>{2, 3}));
  // The leading [2, 3] sub-box of the [3, 4] buffer.
  std::vector<int32_t> y(6);
  EXPECT_EQ(kiln_session_output_read(s, 0, y.data(), 48), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_THAT(kiln_last_error(), HasSubstr("expected a 24-byte destination"));
  ASSERT_EQ(kiln_session_output_read(s, 0, y.data(), 24), KILN_OK) << kiln_last_error();
  EXPECT_EQ(y, (std::vector<int32_t>{0, 1, 2, 10, 11, 12}));

  int64_t empty[] = {0, 4};
  ASSERT_EQ(kiln_session_set_input(s, "e", KILN_DTYPE_I64, 1, dims, empty, 16), KILN_OK);
  ASSERT_EQ(kiln_session_run(s), KILN_OK) << kiln_last_error();
  EXPECT_EQ(kiln_session_output_read(s, 0, nullptr, 0), KILN_OK) << kiln_last_error();

  // An extent past the bound is a kernel bug: the run fails, naming it.
  int64_t bad[] = {2, 5};
  ASSERT_EQ(kiln_session_set_input(s, "e", KILN_DTYPE_I64, 1, dims, bad, 16), KILN_OK);
  EXPECT_EQ(kiln_session_run(s), KILN_ERROR_INTERNAL);
  EXPECT_STREQ(kiln_last_error(),
               "output 'y': the run computed extent 5 for dim 1, outside [0, 4]");
}

TEST(Runtime, DataDependentOutputValidation) {
  artifact::Module m = boxModule();
  m.outputs[0].dynamicDims = {{2, 2, 0}};
  EXPECT_THAT(artifact::writeArtifact(m, tempPath(".kiln")),
              HasSubstr("invalid module: output 'y': dynamic dim 2 past its rank"));
  m.outputs[0].dynamicDims = {{0, 2, 12}};
  EXPECT_THAT(artifact::writeArtifact(m, tempPath(".kiln")),
              HasSubstr("invalid module: output 'y': the extent of dim 0 is outside the buffers"));
}

TEST(Runtime, RunIoInOneCall) {
  VaddModule m(8);
  Fixture f(m.module, 1);
  kiln_session *s = f.session;
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(kiln_artifact_is_static(f.artifact), 1);
  std::vector<float> a(8), b(8, 2.0f), y(8, -1.0f);
  for (int i = 0; i < 8; ++i)
    a[i] = static_cast<float>(i);
  const void *ins[] = {a.data(), b.data()};
  void *outs[] = {y.data()};
  ASSERT_EQ(kiln_session_run_io(s, ins, 2, outs, 1), KILN_OK) << kiln_last_error();
  for (int i = 0; i < 8; ++i)
    EXPECT_EQ(y[i], (a[i] + b[i]) * m.c[i]) << "at " << i;
  // The inputs stay bound, as with kiln_session_set_input.
  std::fill(y.begin(), y.end(), -1.0f);
  ASSERT_EQ(kiln_session_run(s), KILN_OK);
  ASSERT_EQ(kiln_session_output_read(s, 0, y.data(), 32), KILN_OK);
  EXPECT_EQ(y[3], (a[3] + b[3]) * m.c[3]);

  EXPECT_EQ(kiln_session_run_io(s, ins, 1, outs, 1), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(kiln_last_error(),
               "kiln_session_run_io: the artifact has 2 inputs and 1 outputs, got 1 and 1");
  EXPECT_EQ(kiln_session_run_io(s, nullptr, 2, outs, 1), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_session_run_io(nullptr, ins, 2, outs, 1), KILN_ERROR_INVALID_ARGUMENT);
}

TEST(Runtime, BindInputReadsInPlace) {
  VaddModule m(32);
  Fixture f(m.module, 1);
  kiln_session *s = f.session;
  ASSERT_NE(s, nullptr);
  alignas(64) float a[33], b[32];
  std::vector<float> y(32);
  for (int i = 0; i < 32; ++i)
    a[i] = static_cast<float>(i), b[i] = 1.0f;
  int64_t dims[] = {32};
  ASSERT_EQ(kiln_session_bind_input(s, "a", KILN_DTYPE_F32, 1, dims, a, 128), KILN_OK)
      << kiln_last_error();
  ASSERT_EQ(kiln_session_bind_input(s, "b", KILN_DTYPE_F32, 1, dims, b, 128), KILN_OK);
  ASSERT_EQ(kiln_session_run(s), KILN_OK) << kiln_last_error();
  ASSERT_EQ(kiln_session_output_read(s, 0, y.data(), 128), KILN_OK);
  EXPECT_EQ(y[5], (5.0f + 1.0f) * m.c[5]);
  // No copy: the next run sees what the caller wrote since.
  a[5] = 100.0f;
  ASSERT_EQ(kiln_session_run(s), KILN_OK);
  ASSERT_EQ(kiln_session_output_read(s, 0, y.data(), 128), KILN_OK);
  EXPECT_EQ(y[5], (100.0f + 1.0f) * m.c[5]);
  // set_input copies again, into the session's own buffer.
  ASSERT_EQ(kiln_session_set_input(s, "a", KILN_DTYPE_F32, 1, dims, a, 128), KILN_OK);
  a[5] = -7.0f;
  ASSERT_EQ(kiln_session_run(s), KILN_OK);
  ASSERT_EQ(kiln_session_output_read(s, 0, y.data(), 128), KILN_OK);
  EXPECT_EQ(y[5], (100.0f + 1.0f) * m.c[5]);

  // Memory the cpu kernels cannot assume aligned is refused, not copied.
  EXPECT_EQ(kiln_session_bind_input(s, "a", KILN_DTYPE_F32, 1, dims, a + 1, 128),
            KILN_ERROR_UNAVAILABLE);
  EXPECT_THAT(kiln_last_error(), HasSubstr("not 64-byte aligned"));
  EXPECT_EQ(kiln_session_bind_input(s, "a", KILN_DTYPE_F32, 1, dims, a, 64),
            KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(kiln_last_error(), "input 'a': expected 128 bytes of data, got 64");
}

TEST(Runtime, BindOutputWritesInPlace) {
  VaddModule m(32);
  Fixture f(m.module, 1);
  kiln_session *s = f.session;
  ASSERT_NE(s, nullptr);
  alignas(64) float a[32], b[32], y[33];
  for (int i = 0; i < 32; ++i)
    a[i] = static_cast<float>(i), b[i] = 2.0f;
  int64_t dims[] = {32};
  ASSERT_EQ(kiln_session_set_input(s, "a", KILN_DTYPE_F32, 1, dims, a, 128), KILN_OK);
  ASSERT_EQ(kiln_session_set_input(s, "b", KILN_DTYPE_F32, 1, dims, b, 128), KILN_OK);
  ASSERT_EQ(kiln_session_bind_output(s, 0, y, 128), KILN_OK) << kiln_last_error();
  y[5] = -1.0f;
  ASSERT_EQ(kiln_session_run(s), KILN_OK) << kiln_last_error();
  // The kernels wrote the caller's memory; output_read still copies it out.
  EXPECT_EQ(y[5], (5.0f + 2.0f) * m.c[5]);
  float copy[32];
  ASSERT_EQ(kiln_session_output_read(s, 0, copy, 128), KILN_OK);
  EXPECT_EQ(copy[5], y[5]);

  // Unbound, the output is the session's again and the last run's is gone.
  ASSERT_EQ(kiln_session_bind_output(s, 0, nullptr, 0), KILN_OK);
  EXPECT_EQ(kiln_session_output_read(s, 0, copy, 128), KILN_ERROR_INVALID_ARGUMENT);
  y[5] = -1.0f;
  ASSERT_EQ(kiln_session_run(s), KILN_OK);
  EXPECT_EQ(y[5], -1.0f);
  ASSERT_EQ(kiln_session_output_read(s, 0, copy, 128), KILN_OK);
  EXPECT_EQ(copy[5], (5.0f + 2.0f) * m.c[5]);

  EXPECT_EQ(kiln_session_bind_output(s, 0, y + 1, 128), KILN_ERROR_UNAVAILABLE);
  EXPECT_THAT(kiln_last_error(), HasSubstr("not 64-byte aligned"));
  EXPECT_EQ(kiln_session_bind_output(s, 0, y, 64), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(kiln_last_error(), "output 'y': expected a 128-byte destination, got 64");
  EXPECT_EQ(kiln_session_bind_output(s, 1, y, 128), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(kiln_last_error(), "output index 1 out of range (1 outputs)");
}

TEST(Runtime, RunIoRefusesDataDependentShapes) {
  Fixture f(boxModule(), 1);
  EXPECT_EQ(kiln_artifact_is_static(f.artifact), 0);
  int64_t e[] = {2, 3};
  int32_t y[12];
  const void *ins[] = {e};
  void *outs[] = {y};
  EXPECT_EQ(kiln_session_run_io(f.session, ins, 1, outs, 1), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_THAT(kiln_last_error(), HasSubstr("needs an artifact whose shapes are all fixed"));
  EXPECT_EQ(kiln_artifact_is_static(nullptr), 0);
}

/// Creates a session for `module` on `device`, expecting failure.
void expectCreateError(const artifact::Module &module, const char *device,
                       kiln_status status, const std::string &text) {
  std::string path = tempPath(".kiln");
  ASSERT_EQ(artifact::writeArtifact(module, path), "");
  kiln_artifact *a = nullptr;
  ASSERT_EQ(kiln_artifact_open(path.c_str(), &a), KILN_OK) << kiln_last_error();
  kiln_session *s = nullptr;
  EXPECT_EQ(kiln_session_create(a, device, nullptr, &s), status)
      << kiln_last_error();
  EXPECT_EQ(s, nullptr);
  EXPECT_THAT(kiln_last_error(), HasSubstr(text));
  kiln_artifact_release(a);
}

TEST(Runtime, DeviceSelectionErrors) {
  VaddModule m(8);
  expectCreateError(m.module, "tpu:3", KILN_ERROR_NOT_FOUND,
                    "no device named 'tpu:3' (devices: ");
  EXPECT_THAT(kiln_last_error(), HasSubstr("cpu:0"));
  m.module.executables[0].target = "gpu";
  expectCreateError(m.module, nullptr, KILN_ERROR_NOT_FOUND,
                    "no available device for the artifact's targets (gpu;");
  expectCreateError(m.module, "cpu", KILN_ERROR_UNAVAILABLE,
                    "no executable for target 'cpu' loads on device 'cpu:0' (the artifact "
                    "has none)");
}

TEST(Runtime, ExecutableLoadErrors) {
  VaddModule garbage(8, std::vector<uint8_t>(256, 0xab));
  expectCreateError(garbage.module, nullptr, KILN_ERROR_CORRUPT,
                    "loading executable section 'exec.cpu' (elf-x86_64-so): "
                    "image (256 bytes) is not a 64-bit ELF file");
  VaddModule missing(8);
  missing.module.executables[0].entries[1].name = "vdiv";
  expectCreateError(missing.module, nullptr, KILN_ERROR_NOT_FOUND,
                    "executable has no entry point 'vdiv'");
  VaddModule format(8);
  format.module.executables[0].format = "spirv";
  expectCreateError(format.module, nullptr, KILN_ERROR_UNAVAILABLE,
                    "no executable for target 'cpu' loads on device 'cpu:0' (spirv: cpu "
                    "driver cannot load format 'spirv'");
}

TEST(Runtime, ManyExecutablesLoadIndependently) {
  // Each load must get its own image even as fds and names get reused.
  VaddModule m(64);
  for (int i = 0; i < 5; ++i) {
    Fixture f(m.module, 2);
    ASSERT_NE(f.session, nullptr);
    runAndCheck(f.session, m, static_cast<float>(i));
  }
}

} // namespace
