//===- ProfileTest.cpp - Profiles of cpu sessions: trace, stats, timings --===//
#include "Json.h"
#include "TestUtil.h"

#include "kiln/runtime.h"

#include <set>

using namespace kiln;
using namespace kiln::test;
using ::testing::HasSubstr;

namespace {

constexpr uint32_t kThreads = 3;
const char *const kOps = "Conv(conv1) + Relu(\"r\\1\")"; // Needs escaping in JSON.

/// Two dispatches of `meet` (test_kernels.c) over kThreads workgroups: with
/// kThreads threads each thread runs exactly one workgroup of each, so the
/// trace must have one slice per thread per dispatch. The first kernel has
/// ONNX ops, the second none (it is named by its kernel).
struct MeetModule {
  std::vector<int64_t> n{kThreads};
  artifact::Module module;
  MeetModule() {
    using namespace artifact;
    Module &m = module;
    m.producer = "kiln-tests";
    m.name = "meet";
    m.buffers = {{BufferKind::Transient, 64, nullptr},
                 {BufferKind::Constant, 8, reinterpret_cast<const uint8_t *>(n.data())}};
    Entry first{"meet", {kThreads, 1, 1}, {1, 1, 1}};
    Entry second{"meet", {kThreads, 1, 1}, {1, 1, 1}};
    m.executables = {{"cpu", "elf-x86_64-so", readFile(KILN_TEST_KERNELS), {first, second}}};
    Dispatch d;
    d.bindings = {{0, 0}, {1, 0}};
    m.dispatches = {d, d};
    m.dispatches[1].kernel = 1;
    m.kernelOps = {kOps, ""};
  }
};

struct Profiled {
  std::string trace = tempPath(".trace.json"), stats = tempPath(".stats.json");
  kiln_artifact *artifact = nullptr;
  kiln_session *session = nullptr;
  Profiled(const artifact::Module &module, bool profile) {
    std::string path = tempPath(".kiln");
    EXPECT_EQ(artifact::writeArtifact(module, path), "");
    EXPECT_EQ(kiln_artifact_open(path.c_str(), &artifact), KILN_OK) << kiln_last_error();
    std::remove(trace.c_str());
    std::remove(stats.c_str());
    kiln_session_options opts{kThreads, profile ? trace.c_str() : nullptr,
                              profile ? stats.c_str() : nullptr};
    EXPECT_EQ(kiln_session_create(artifact, "cpu", &opts, &session), KILN_OK)
        << kiln_last_error();
  }
  ~Profiled() {
    kiln_session_release(session);
    kiln_artifact_release(artifact);
  }
  Json read(const std::string &path) {
    std::vector<uint8_t> bytes = readFile(path);
    std::string text(bytes.begin(), bytes.end());
    std::optional<Json> json = Json::parse(text);
    EXPECT_TRUE(json.has_value()) << path << " is not valid JSON:\n" << text;
    return json.value_or(Json());
  }
};

TEST(CpuProfile, TraceHasOneSlicePerWorkerPerDispatch) {
  MeetModule m;
  Profiled p(m.module, true);
  // The files describe the last run only.
  ASSERT_EQ(kiln_session_run(p.session), KILN_OK) << kiln_last_error();
  ASSERT_EQ(kiln_session_run(p.session), KILN_OK) << kiln_last_error();

  Json trace = p.read(p.trace);
  std::map<std::string, std::set<double>> threadsOf; // dispatch index -> tids
  int dispatchSlices = 0;
  for (const Json &e : trace["traceEvents"].array) {
    if (e["ph"].string != "X")
      continue;
    const Json &args = e["args"];
    std::string index = std::to_string(int(args["index"].number));
    EXPECT_EQ(args["kernel"].string, "meet");
    EXPECT_EQ(e["name"].string, index == "0" ? kOps : "meet") << "dispatch " << index;
    EXPECT_EQ(args["ops"].string, index == "0" ? kOps : "");
    EXPECT_GE(e["dur"].number, 0);
    if (e["cat"].string == "dispatch") {
      ++dispatchSlices;
      EXPECT_EQ(e["tid"].number, 0);
      EXPECT_EQ(args["workgroups"].number, kThreads);
      continue;
    }
    EXPECT_EQ(e["cat"].string, "worker");
    EXPECT_EQ(args["workgroups"].number, 1) << "dispatch " << index;
    EXPECT_TRUE(threadsOf[index].insert(e["tid"].number).second)
        << "two slices of dispatch " << index << " on one thread";
  }
  EXPECT_EQ(dispatchSlices, 2);
  std::set<double> all = {1, 2, 3};
  EXPECT_EQ(threadsOf["0"], all);
  EXPECT_EQ(threadsOf["1"], all);

  Json stats = p.read(p.stats);
  EXPECT_EQ(stats["device"].string, "cpu");
  EXPECT_EQ(stats["threads"].number, kThreads);
  double total = stats["total_ns"].number;
  EXPECT_GT(total, 0);
  ASSERT_EQ(stats["workers"].size(), kThreads);
  for (const Json &w : stats["workers"].array) {
    EXPECT_EQ(w["workgroups"].number, 2);
    EXPECT_LE(w["busy_ns"].number, total);
  }
  ASSERT_EQ(stats["dispatches"].size(), 2u);
  const Json &slowest = stats["dispatches"][0], &other = stats["dispatches"][1];
  EXPECT_GE(slowest["total_ns"].number, other["total_ns"].number);
  EXPECT_EQ(slowest["workers"].size(), kThreads);
  EXPECT_LE(slowest["share"].number + other["share"].number, 1.0);
  ASSERT_EQ(stats["top"].size(), 2u);
  EXPECT_EQ(stats["top"][0]["index"].number, slowest["index"].number);

  // The same figures through the C API.
  ASSERT_EQ(kiln_session_dispatch_count(p.session), 2u);
  kiln_dispatch_info info[2];
  for (size_t i = 0; i < 2; ++i)
    ASSERT_EQ(kiln_session_dispatch_info(p.session, i, &info[i]), KILN_OK);
  EXPECT_STREQ(info[0].kernel, "meet");
  EXPECT_STREQ(info[0].ops, kOps);
  EXPECT_STREQ(info[1].ops, "");
  EXPECT_EQ(info[1].workgroup_count[0], kThreads);
  EXPECT_EQ(info[0].start_ns, 0);
  EXPECT_GE(info[1].start_ns, info[0].start_ns + info[0].time_ns);
  size_t slowIndex = static_cast<size_t>(slowest["index"].number);
  EXPECT_EQ(info[slowIndex].time_ns, slowest["total_ns"].number);
  EXPECT_EQ(kiln_session_dispatch_info(p.session, 2, &info[0]), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_THAT(kiln_last_error(), HasSubstr("out of range"));
}

TEST(CpuProfile, NothingTimedUnlessAsked) {
  MeetModule m;
  Profiled p(m.module, false);
  ASSERT_EQ(kiln_session_run(p.session), KILN_OK) << kiln_last_error();
  kiln_dispatch_info info;
  ASSERT_EQ(kiln_session_dispatch_info(p.session, 0, &info), KILN_OK);
  EXPECT_STREQ(info.ops, kOps);
  EXPECT_EQ(info.time_ns, -1);
  EXPECT_EQ(info.start_ns, -1);
  EXPECT_TRUE(readFile(p.trace).empty());
  EXPECT_TRUE(readFile(p.stats).empty());
}

TEST(CpuProfile, SingleThreadAndEmptyGrids) {
  // One workgroup runs on the calling thread alone; an empty grid is a
  // dispatch that took (almost) no time, still in the profile.
  VaddModule m(16);
  m.module.executables[0].entries[1].workgroupCount[0] = 0;
  m.module.kernelOps = {"Add(a)", "Mul(m)"};
  Profiled p(m.module, true);
  std::vector<float> x(16, 1.0f);
  int64_t dims[] = {16};
  for (const char *name : {"a", "b"})
    ASSERT_EQ(kiln_session_set_input(p.session, name, KILN_DTYPE_F32, 1, dims, x.data(), 64),
              KILN_OK);
  ASSERT_EQ(kiln_session_run(p.session), KILN_OK) << kiln_last_error();
  Json trace = p.read(p.trace);
  std::vector<std::string> workerSlices;
  for (const Json &e : trace["traceEvents"].array)
    if (e["cat"].string == "worker")
      workerSlices.push_back(e["name"].string + "@" + std::to_string(int(e["tid"].number)));
  EXPECT_EQ(workerSlices, std::vector<std::string>{"Add(a)@1"});
  Json stats = p.read(p.stats);
  ASSERT_EQ(stats["dispatches"].size(), 2u);
  std::set<std::string> ops;
  for (const Json &d : stats["top"].array)
    ops.insert(d["ops"].string);
  EXPECT_EQ(ops, (std::set<std::string>{"Add(a)", "Mul(m)"}));
  kiln_dispatch_info info;
  ASSERT_EQ(kiln_session_dispatch_info(p.session, 1, &info), KILN_OK);
  EXPECT_GE(info.time_ns, 0);
}

} // namespace
