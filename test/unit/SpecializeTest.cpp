//===- SpecializeTest.cpp - Sessions over artifacts compiled at run time --===//
//
// The compiler is a stand-in script that records its arguments and copies a
// prepared vadd artifact to its -o path, so the runtime's side (signature,
// host inputs, cache, errors) is tested without kiln-compile.
//
//===----------------------------------------------------------------------===//
#include "TestUtil.h"

#include "kiln/artifact_format.h"
#include "kiln/runtime.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <sys/stat.h>
#include <thread>

using namespace kiln;
using namespace kiln::test;
using ::testing::HasSubstr;

namespace {

constexpr int64_t kN = 32;

/// The vadd inputs plus "k", an i64[2] whose value the model is compiled
/// for; "a" has a symbolic dim, so its shape is compiled for too.
std::string writeSpecializing(const std::string &path) {
  artifact::Module m;
  m.producer = "kiln-tests";
  m.name = "vadd_mul";
  uint64_t bytes = kN * 4;
  m.buffers = {{artifact::BufferKind::Input, 0, nullptr},
               {artifact::BufferKind::Input, 16, nullptr},
               {artifact::BufferKind::Input, bytes, nullptr}};
  m.inputs = {{"a", artifact::DType::F32, {-1}, 0},
              {"k", artifact::DType::I64, {2}, 1},
              {"b", artifact::DType::F32, {kN}, 2}};
  m.specializeOn = {{0, KILN_ART_SPECIALIZE_SHAPE}, {1, KILN_ART_SPECIALIZE_VALUE}};
  m.source.targets = {"cpu"};
  m.source.args = {"--target=cpu"};
  m.source.modelName = "model.onnx";
  m.source.model = {'o', 'n', 'n', 'x'};
  EXPECT_EQ(artifact::writeArtifact(m, path), "");
  return path;
}

struct Fixture : ::testing::Test {
  std::string dir, cache, log, compiled;
  void SetUp() override {
    dir = tempPath(".d");
    std::filesystem::remove_all(dir); // the cache of an earlier run
    std::filesystem::create_directories(dir);
    cache = dir + "/cache";
    log = dir + "/calls";
    compiled = dir + "/vadd.kiln";
    VaddModule vadd(kN);
    ASSERT_EQ(artifact::writeArtifact(vadd.module, compiled), "");
    std::string script = dir + "/fake-compile";
    writeFile(script, toBytes("#!/bin/sh\necho \"$@\" >> " + log +
                              "\nwhile [ $# -gt 2 ]; do shift; done\ncp " + compiled +
                              " \"$2\"\n"));
    ::chmod(script.c_str(), 0755);
    ::setenv("KILN_COMPILE", script.c_str(), 1);
    ::setenv("KILN_CACHE_DIR", cache.c_str(), 1);
  }
  void TearDown() override {
    ::unsetenv("KILN_COMPILE");
    ::unsetenv("KILN_CACHE_DIR");
  }
  static std::vector<uint8_t> toBytes(const std::string &s) { return {s.begin(), s.end()}; }
  int calls() {
    std::vector<uint8_t> b = readFile(log);
    return static_cast<int>(std::count(b.begin(), b.end(), '\n'));
  }
};

kiln_status setAll(kiln_session *s, const std::vector<float> &a, const std::vector<float> &b,
                   std::vector<int64_t> k) {
  int64_t n = kN, two = 2;
  if (kiln_status st = kiln_session_set_input(s, "a", KILN_DTYPE_F32, 1, &n, a.data(), n * 4))
    return st;
  if (kiln_status st = kiln_session_set_input(s, "b", KILN_DTYPE_F32, 1, &n, b.data(), n * 4))
    return st;
  return kiln_session_set_input(s, "k", KILN_DTYPE_I64, 1, &two, k.data(), 16);
}

TEST_F(Fixture, CompilesOncePerValue) {
  kiln_artifact *art = nullptr;
  ASSERT_EQ(kiln_artifact_open(writeSpecializing(dir + "/m.kiln").c_str(), &art), KILN_OK)
      << kiln_last_error();
  EXPECT_EQ(kiln_artifact_output_count(art), 0u);
  EXPECT_EQ(kiln_artifact_input_specializes(art, 0), KILN_SPECIALIZE_SHAPE);
  EXPECT_EQ(kiln_artifact_input_specializes(art, 1), KILN_SPECIALIZE_VALUE);
  EXPECT_EQ(kiln_artifact_input_specializes(art, 2), 0);
  kiln_tensor_info in;
  ASSERT_EQ(kiln_artifact_input_info(art, 0, &in), KILN_OK);
  ASSERT_EQ(in.rank, 1u);
  EXPECT_EQ(in.dims[0], -1);
  kiln_session *s = nullptr;
  ASSERT_EQ(kiln_session_create(art, nullptr, nullptr, &s), KILN_OK) << kiln_last_error();
  EXPECT_STREQ(kiln_session_device(s), "cpu:0");
  kiln_tensor_info info;
  EXPECT_EQ(kiln_session_output_info(s, 0, &info), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_THAT(kiln_last_error(), HasSubstr("known after a run"));

  VaddModule ref(kN);
  std::vector<float> a(kN), b(kN), y(kN);
  for (int64_t i = 0; i < kN; ++i) {
    a[i] = static_cast<float>(i);
    b[i] = 1.0f;
  }
  for (std::vector<int64_t> k : {std::vector<int64_t>{1, 2}, {3, 4}, {1, 2}}) {
    ASSERT_EQ(setAll(s, a, b, k), KILN_OK) << kiln_last_error();
    ASSERT_EQ(kiln_session_run(s), KILN_OK) << kiln_last_error();
    ASSERT_EQ(kiln_session_output_count(s), 1u);
    ASSERT_EQ(kiln_session_output_info(s, 0, &info), KILN_OK);
    EXPECT_STREQ(info.name, "y");
    ASSERT_EQ(kiln_session_output_read(s, 0, y.data(), y.size() * 4), KILN_OK);
    for (int64_t i = 0; i < kN; ++i)
      ASSERT_FLOAT_EQ(y[i], (a[i] + 1.0f) * ref.c[i]);
  }
  // {1, 2} came back: still two compiles.
  EXPECT_EQ(calls(), 2);
  std::vector<uint8_t> calls_ = readFile(log);
  std::string args(calls_.begin(), calls_.end());
  EXPECT_THAT(args, HasSubstr("--target=cpu --input-shape=a=32 --input-value=k=@" + cache + "/"));
  kiln_session_release(s);

  // Another session (or process) finds the compiled artifacts in the cache.
  ASSERT_EQ(kiln_session_create(art, "cpu", nullptr, &s), KILN_OK) << kiln_last_error();
  ASSERT_EQ(setAll(s, a, b, {3, 4}), KILN_OK);
  ASSERT_EQ(kiln_session_run(s), KILN_OK) << kiln_last_error();
  EXPECT_EQ(calls(), 2);
  kiln_session_release(s);
  kiln_artifact_release(art);
}

TEST_F(Fixture, CompilerFailureNamesTheValue) {
  std::string script = dir + "/failing-compile";
  writeFile(script, toBytes("#!/bin/sh\necho \"kiln-compile: error: $1: node 'r' (Reshape, "
                            "opset 13): bad shape\" >&2\nexit 1\n"));
  ::chmod(script.c_str(), 0755);
  ::setenv("KILN_COMPILE", script.c_str(), 1);
  kiln_artifact *art = nullptr;
  ASSERT_EQ(kiln_artifact_open(writeSpecializing(dir + "/m.kiln").c_str(), &art), KILN_OK);
  kiln_session *s = nullptr;
  ASSERT_EQ(kiln_session_create(art, nullptr, nullptr, &s), KILN_OK);
  std::vector<float> a(kN), b(kN);
  ASSERT_EQ(setAll(s, a, b, {7, -1}), KILN_OK);
  EXPECT_EQ(kiln_session_run(s), KILN_ERROR_INVALID_ARGUMENT);
  std::string msg = kiln_last_error();
  // The model is named as the user gave it, not the cache's copy.
  EXPECT_THAT(msg, HasSubstr("compiling the model for input 'a' f32[32], 'k' i64[2]=[7, -1]: "
                             "model.onnx: node 'r' (Reshape, opset 13): bad shape"));
  EXPECT_EQ(kiln_session_output_count(s), 0u);
  // A wrongly shaped input is refused before anything is compiled.
  int64_t three = 3;
  std::vector<int64_t> k3{1, 2, 3};
  EXPECT_EQ(kiln_session_set_input(s, "k", KILN_DTYPE_I64, 1, &three, k3.data(), 24),
            KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_THAT(kiln_last_error(), HasSubstr("expected i64[2], got i64[3]"));
  // Any extent where the signature says -1, but not another rank.
  int64_t twoByTwo[2] = {2, 2};
  EXPECT_EQ(kiln_session_set_input(s, "a", KILN_DTYPE_F32, 2, twoByTwo, a.data(), 16),
            KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_THAT(kiln_last_error(), HasSubstr("expected f32[-1], got f32[2,2]"));
  int64_t five = 5;
  EXPECT_EQ(kiln_session_set_input(s, "a", KILN_DTYPE_F32, 1, &five, a.data(), 20), KILN_OK);
  kiln_session_release(s);
  kiln_artifact_release(art);
}

// Sessions in 4 threads compile the same two values at once: each gets its
// own run's result, and the cache ends with one artifact per value and no
// partial file (compiles write under names of their own, then rename).
TEST_F(Fixture, SessionsCompileConcurrently) {
  kiln_artifact *art = nullptr;
  ASSERT_EQ(kiln_artifact_open(writeSpecializing(dir + "/m.kiln").c_str(), &art), KILN_OK)
      << kiln_last_error();
  VaddModule ref(kN);
  std::vector<std::string> errors(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      kiln_session *s = nullptr;
      if (kiln_session_create(art, nullptr, nullptr, &s) != KILN_OK) {
        errors[t] = kiln_last_error();
        return;
      }
      std::vector<float> a(kN), b(kN, static_cast<float>(t)), y(kN);
      for (int it = 0; it < 4 && errors[t].empty(); ++it) {
        for (int64_t i = 0; i < kN; ++i)
          a[i] = static_cast<float>(i * (it + 1));
        if (setAll(s, a, b, {1 + (t + it) % 2, 2}) != KILN_OK ||
            kiln_session_run(s) != KILN_OK ||
            kiln_session_output_read(s, 0, y.data(), y.size() * 4) != KILN_OK)
          errors[t] = kiln_last_error();
        for (int64_t i = 0; i < kN && errors[t].empty(); ++i)
          if (y[i] != (a[i] + b[i]) * ref.c[i])
            errors[t] = "wrong output at " + std::to_string(i);
      }
      kiln_session_release(s);
    });
  for (std::thread &th : threads)
    th.join();
  for (int t = 0; t < 4; ++t)
    EXPECT_EQ(errors[t], "") << "thread " << t;
  int artifacts = 0;
  for (const auto &e : std::filesystem::directory_iterator(cache)) {
    std::string name = e.path().filename().string();
    EXPECT_EQ(name.find(".tmp"), std::string::npos) << name;
    EXPECT_EQ(name.find(".log"), std::string::npos) << name;
    artifacts += e.path().extension() == ".kiln";
  }
  EXPECT_EQ(artifacts, 2);
  EXPECT_GE(calls(), 2);
  kiln_artifact_release(art);
}

TEST(Specialize, WriterRequiresSourceAndNoCode) {
  VaddModule m(16);
  m.module.specializeOn = {{0, KILN_ART_SPECIALIZE_VALUE}};
  std::string path = tempPath(".kiln");
  EXPECT_THAT(artifact::writeArtifact(m.module, path), HasSubstr("holds its source and no code"));
  m.module.specializeOn = {{5, KILN_ART_SPECIALIZE_VALUE}};
  EXPECT_THAT(artifact::writeArtifact(m.module, path), HasSubstr("input 5 (kinds 1), which does not exist"));
  // A dim of -1 only where the input's shape specializes.
  VaddModule dyn(16);
  dyn.module.inputs[0].shape = {-1};
  EXPECT_THAT(artifact::writeArtifact(dyn.module, path), HasSubstr("input 'a' has a dynamic dim"));
}

} // namespace
