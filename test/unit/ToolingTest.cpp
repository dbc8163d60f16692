//===- ToolingTest.cpp - runtime/tooling: codecs, inputs, reports, kiln-run ===//
#include "TestUtil.h"

#include "element.h"
#include "half.h"
#include "inputs.h"
#include "profile.h"
#include "report.h"
#include "run_args.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

using namespace kiln;
using namespace kiln::tooling;
using ::testing::HasSubstr;

namespace {

TEST(Half, RoundTripsAndRoundsToNearestEven) {
  EXPECT_EQ(floatToHalf(1.0f), 0x3c00);
  EXPECT_EQ(floatToHalf(-2.0f), 0xc000);
  EXPECT_EQ(floatToHalf(65504.0f), 0x7bff);
  EXPECT_EQ(floatToHalf(65520.0f), 0x7c00) << "overflows to inf";
  EXPECT_EQ(floatToHalf(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_EQ(floatToHalf(-0.0f), 0x8000);
  // 1 + 2^-11 is halfway between 1 and the next half: to the even one.
  EXPECT_EQ(floatToHalf(1.0f + 0x1p-11f), 0x3c00);
  EXPECT_EQ(floatToHalf(1.0f + 3 * 0x1p-11f), 0x3c02);
  EXPECT_EQ(floatToHalf(0x1p-24f), 0x0001) << "smallest subnormal";
  EXPECT_TRUE(std::isnan(halfToFloat(floatToHalf(NAN))));
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff))
      continue; // NaNs keep no payload promise.
    ASSERT_EQ(floatToHalf(halfToFloat(uint16_t(h))), h) << std::hex << h;
  }
  EXPECT_EQ(halfToFloat(0x0001), 0x1p-24f);
}

TEST(Half, Bf16KeepsNanAndRoundsToNearestEven) {
  EXPECT_EQ(floatToBf16(1.0f), 0x3f80);
  EXPECT_EQ(floatToBf16(1.0f + 0x1p-8f), 0x3f80) << "tie to even";
  EXPECT_EQ(floatToBf16(1.0f + 3 * 0x1p-8f), 0x3f82);
  EXPECT_EQ(floatToBf16(-NAN), 0xffc0);
  EXPECT_EQ(bf16ToFloat(0x4049), 3.140625f);
}

double roundTrip(kiln_dtype t, const std::string &text) {
  uint8_t buf[8] = {};
  EXPECT_TRUE(storeLiteral(t, buf, text)) << text;
  return loadElement(t, buf);
}

TEST(Element, EveryTypeReadsBackWhatWasWritten) {
  EXPECT_EQ(roundTrip(KILN_DTYPE_F32, "1.5"), 1.5);
  EXPECT_EQ(roundTrip(KILN_DTYPE_F64, "-0.1"), -0.1);
  EXPECT_EQ(roundTrip(KILN_DTYPE_F16, "0.333333"), double(halfToFloat(0x3555)));
  EXPECT_EQ(roundTrip(KILN_DTYPE_BF16, "3.14159"), 3.140625);
  EXPECT_EQ(roundTrip(KILN_DTYPE_I8, "-128"), -128);
  EXPECT_EQ(roundTrip(KILN_DTYPE_I64, "0x10"), 16);
  EXPECT_EQ(roundTrip(KILN_DTYPE_U16, "65535"), 65535);
  EXPECT_EQ(roundTrip(KILN_DTYPE_BOOL, "true"), 1);
  EXPECT_EQ(roundTrip(KILN_DTYPE_I4, "-8"), -8);
  EXPECT_EQ(roundTrip(KILN_DTYPE_U2, "3"), 3);
  // The small floats: exact values stay, others round to the nearest code.
  EXPECT_EQ(roundTrip(KILN_DTYPE_F8E4M3FN, "448"), 448);
  EXPECT_EQ(roundTrip(KILN_DTYPE_F8E4M3FN, "0.3"), 0.3125);
  EXPECT_EQ(roundTrip(KILN_DTYPE_F8E5M2, "-inf"), -INFINITY);
  EXPECT_EQ(roundTrip(KILN_DTYPE_F4E2M1, "6"), 6);
  EXPECT_EQ(roundTrip(KILN_DTYPE_F8E8M0, "0.25"), 0.25);
  EXPECT_TRUE(std::isnan(roundTrip(KILN_DTYPE_F8E4M3FNUZ, "nan")));
  EXPECT_TRUE(isFloat(KILN_DTYPE_F8E5M2FNUZ));
  EXPECT_FALSE(isFloat(KILN_DTYPE_I4));
  EXPECT_TRUE(isSmallInt(KILN_DTYPE_U4));
}

TEST(Element, RefusesLiteralsThatDoNotFit) {
  uint8_t buf[8];
  for (auto [t, text] : std::vector<std::pair<kiln_dtype, std::string>>{
           {KILN_DTYPE_I8, "128"},      {KILN_DTYPE_I8, "1.5"},
           {KILN_DTYPE_U8, "-1"},       {KILN_DTYPE_U32, "4294967296"},
           {KILN_DTYPE_I64, "99999999999999999999"},
           {KILN_DTYPE_BOOL, "2"},      {KILN_DTYPE_BOOL, "yes"},
           {KILN_DTYPE_I4, "8"},        {KILN_DTYPE_U2, "4"},
           {KILN_DTYPE_F32, "1.5x"},    {KILN_DTYPE_F32, ""}})
    EXPECT_FALSE(storeLiteral(t, buf, text)) << kiln_dtype_name(t) << " " << text;
}

TEST(Inputs, ParsesEveryForm) {
  InputSpec s;
  ASSERT_EQ(parseInputSpec("x=@in.npy", s), "");
  EXPECT_EQ(s.name, "x");
  EXPECT_EQ(s.file, "in.npy");
  ASSERT_EQ(parseInputSpec("@t.pb", s), "");
  EXPECT_EQ(s.name, "");
  EXPECT_EQ(s.file, "t.pb");
  ASSERT_EQ(parseInputSpec("2x3xf32=1,2,3,4,5,6", s), "");
  EXPECT_EQ(s.dtype, KILN_DTYPE_F32);
  EXPECT_EQ(s.dims, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(s.values, "1,2,3,4,5,6");
  ASSERT_EQ(parseInputSpec("axes=1xi64=2", s), "");
  EXPECT_EQ(s.name, "axes");
  EXPECT_EQ(s.dtype, KILN_DTYPE_I64);
  ASSERT_EQ(parseInputSpec("f16=3", s), "");
  EXPECT_TRUE(s.dims.empty());
}

TEST(Inputs, SaysWhatIsWrongWithASpec) {
  InputSpec s;
  for (const char *bad : {"", "@", "x", "x=@", "=1xf32=1", "x=2xq7=1",
                          "x=-1xf32=1", "x=1xf32"})
    EXPECT_EQ(parseInputSpec(bad, s),
              std::string("bad --input='") + bad +
                  "': expected NAME=@FILE, @FILE (.npy or .pb), "
                  "DIMSxDTYPE=VALUES or NAME=DIMSxDTYPE=VALUES");
  EXPECT_EQ(parseInt("12", 0, 100), 12);
  EXPECT_FALSE(parseInt("12", 0, 10));
  EXPECT_FALSE(parseInt("1e3", 0, 10000));
  EXPECT_FALSE(parseInt("", 0, 1));
}

TEST(Inputs, BindsSpecsByPositionAndName) {
  int64_t d[] = {1};
  std::vector<kiln_tensor_info> ins = {{"a", KILN_DTYPE_F32, 1, d},
                                       {"b", KILN_DTYPE_F32, 1, d}};
  auto specs = [](std::vector<const char *> texts) {
    std::vector<InputSpec> v(texts.size());
    for (size_t i = 0; i < texts.size(); ++i)
      EXPECT_EQ(parseInputSpec(texts[i], v[i]), "");
    return v;
  };
  std::vector<const InputSpec *> bound;
  std::vector<InputSpec> s = specs({"b=1xf32=2", "1xf32=1"});
  ASSERT_EQ(bindInputs(s, ins, bound), "");
  EXPECT_EQ(bound[0], &s[1]);
  EXPECT_EQ(bound[1], &s[0]);
  EXPECT_EQ(bindInputs({}, ins, bound), "");
  EXPECT_EQ(bound, (std::vector<const InputSpec *>{nullptr, nullptr}));
  EXPECT_EQ(bindInputs(specs({"f32=1", "f32=2", "f32=3"}), ins, bound),
            "too many positional --input: the model has 2 inputs (a, b)");
  EXPECT_EQ(bindInputs(specs({"c=f32=1"}), ins, bound),
            "no input named 'c' (inputs: a, b)");
  EXPECT_EQ(bindInputs(specs({"a=f32=1", "f32=2"}), ins, bound),
            "input 'a' is given twice ('a=f32=1' and 'f32=2')");
  EXPECT_EQ(bindInputs(specs({"b=f32=1"}), ins, bound),
            "no --input for 'a' (inputs: a, b); give every input, or none for "
            "random inputs");
  EXPECT_EQ(bindInputs(specs({"f32=1"}), {}, bound),
            "too many positional --input: the model has 0 inputs");
}

TEST(Inputs, LiteralTensorsAndTheirErrors) {
  InputSpec s;
  npy::Array a;
  ASSERT_EQ(parseInputSpec("2x2xi32=1,-2,3,4", s), "");
  ASSERT_EQ(literalTensor(s, "x", a), "");
  int32_t v[4];
  ASSERT_EQ(a.data.size(), sizeof(v));
  std::memcpy(v, a.data.data(), sizeof(v));
  EXPECT_EQ(v[1], -2);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 2}));

  ASSERT_EQ(parseInputSpec("2x3xf32=1,2", s), "");
  EXPECT_EQ(literalTensor(s, "x", a), "input 'x': f32[2,3] needs 6 values, got 2");
  ASSERT_EQ(parseInputSpec("2xi8=1,300", s), "");
  EXPECT_EQ(literalTensor(s, "x", a), "input 'x': value '300' is not a valid i8");
  ASSERT_EQ(parseInputSpec("0xf32=", s), "");
  EXPECT_EQ(literalTensor(s, "x", a), "") << "an empty tensor has no values";
  ASSERT_EQ(parseInputSpec("1048576x1048576x2xf32=1", s), "");
  EXPECT_EQ(literalTensor(s, "x", a), "input 'x': literal shape too large");
}

TEST(Inputs, ReadsNpyAndTensorProtoFilesAndSaysWhyNot) {
  npy::Array a;
  std::string missing = ::testing::TempDir() + "kiln_no_such_input.npy";
  EXPECT_EQ(readTensorFile(missing, a), missing + ": No such file or directory");
  npy::Array x;
  x.dtype = KILN_DTYPE_F32;
  x.shape = {2};
  x.data.resize(8, 0);
  std::string path = kiln::test::tempPath(".npy");
  ASSERT_EQ(npy::write(path, x), "");
  ASSERT_EQ(readTensorFile(path, a), "");
  EXPECT_EQ(a.shape, x.shape);
}

TEST(Inputs, WritesNpyOrTensorProtoByExtension) {
  npy::Array x;
  x.dtype = KILN_DTYPE_I32;
  x.shape = {3};
  x.data = {1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0};
  for (const char *ext : {".npy", ".pb"}) {
    std::string path = kiln::test::tempPath(ext);
    ASSERT_EQ(writeTensorFile(path, x, "y"), "") << ext;
    std::vector<uint8_t> bytes = kiln::test::readFile(path);
    bool npyMagic = bytes.size() > 6 && std::memcmp(bytes.data(), "\x93NUMPY", 6) == 0;
    EXPECT_EQ(npyMagic, std::string(ext) == ".npy") << ext;
    npy::Array a;
    ASSERT_EQ(readTensorFile(path, a), "") << ext;
    EXPECT_EQ(a.dtype, x.dtype);
    EXPECT_EQ(a.shape, x.shape);
    EXPECT_EQ(a.data, x.data);
  }
  std::string bad = ::testing::TempDir() + "kiln_no_such_dir/y.npy";
  EXPECT_THAT(writeTensorFile(bad, x, "y"), HasSubstr("kiln_no_such_dir"));
}

TEST(Inputs, RandomInputsRefusalNamesTheInputs) {
  EXPECT_EQ(randomInputsRefusal({}), "");
  EXPECT_EQ(randomInputsRefusal({"n"}),
            "input 'n' decides what is compiled (by value, or by a shape with symbolic "
            "dims), so the model cannot run on random inputs: give every input with --input "
            "(or bind or pin it with kiln-compile --input-value / --input-shape)");
  std::string two = randomInputsRefusal({"a", "b"});
  EXPECT_THAT(two, HasSubstr("inputs 'a', 'b' decide what is compiled"));
  EXPECT_THAT(two, HasSubstr("(or bind or pin those with"));
}

TEST(Inputs, RandomTensorsAreSeededAndInRange) {
  int64_t dims[] = {64};
  kiln_tensor_info f{"x", KILN_DTYPE_F32, 1, dims};
  Rng r1{7}, r2{7};
  npy::Array a = randomTensor(f, r1), b = randomTensor(f, r2);
  EXPECT_EQ(a.data, b.data) << "same seed, same data";
  std::vector<float> v(64);
  std::memcpy(v.data(), a.data.data(), 256);
  for (float x : v) {
    EXPECT_GE(x, -1.0f);
    EXPECT_LT(x, 1.0f);
  }
  kiln_tensor_info i{"n", KILN_DTYPE_I64, 1, dims}, t{"m", KILN_DTYPE_BOOL, 1, dims};
  npy::Array ints = randomTensor(i, r1), bools = randomTensor(t, r1);
  for (int k = 0; k < 64; ++k) {
    int64_t n;
    std::memcpy(&n, ints.data.data() + 8 * k, 8);
    EXPECT_TRUE(n >= 0 && n < 10) << n;
    EXPECT_LE(bools.data[k], 1);
  }
  EXPECT_EQ(Rng{0}.next(), 0xe220a8397b1dcdafull) << "SplitMix64's first value";
}

TEST(Report, SummarizesOutputs) {
  int64_t dims[] = {2, 2};
  kiln_tensor_info info{"y", KILN_DTYPE_F32, 2, dims};
  std::vector<float> v = {1.5f, -2.0f, NAN, 4.0f};
  std::vector<uint8_t> data(16);
  std::memcpy(data.data(), v.data(), 16);
  EXPECT_EQ(summarizeOutput(info, data, false),
            "output 'y': f32[2,2] min=-2 max=4 mean=1.16667 nan=1\n"
            "  [1.5, -2, nan, 4]\n");
  std::vector<uint8_t> many(20 * 4, 0);
  int64_t n[] = {20};
  kiln_tensor_info big{"z", KILN_DTYPE_I32, 1, n};
  EXPECT_THAT(summarizeOutput(big, many, false), HasSubstr(", ... (4 more)]"));
  EXPECT_THAT(summarizeOutput(big, many, true), ::testing::Not(HasSubstr("more")));
  int64_t zero[] = {0};
  kiln_tensor_info empty{"e", KILN_DTYPE_I64, 1, zero};
  EXPECT_EQ(summarizeOutput(empty, {}, false), "output 'e': i64[0] (empty)\n");
  EXPECT_EQ(formatValue(KILN_DTYPE_I64, 3.0), "3");
}

TEST(Report, SlowestDispatchesAndEngineUtilization) {
  std::vector<kiln_dispatch_info> infos = {
      {"k0", "Conv(a)", {1, 1, 1}, 0, 1e6}, {"k1", "", {1, 1, 1}, 1e6, 3e6}};
  EXPECT_EQ(slowestDispatches("cpu:0", infos, 1),
            "profile of the last run on cpu:0: 2 dispatches in 4.000 ms\n"
            "  dispatch         ms  % of run  ONNX ops\n"
            "  1             3.000     75.0%  (k1)\n"
            "  (1 more)\n");
  std::string err;
  std::string stats =
      R"({"total_ns": 2000, "engines": {"tensor": {"busy_ns": 1000, "instructions": 3}, )"
      R"("vector": {"busy_ns": 0, "instructions": 0}, "scalar": {"busy_ns": 0, "instructions": 0}, )"
      R"("gpsimd": {"busy_ns": 0, "instructions": 0}, "dma": {"busy_ns": 500, "instructions": 2}}})";
  std::string text = engineUtilization(stats, err);
  EXPECT_EQ(err, "");
  EXPECT_THAT(text, HasSubstr("simulated time: 2.000 us\n"));
  EXPECT_THAT(text, HasSubstr("  tensor   50.00% busy       1.000 us  3 instructions\n"));
  EXPECT_EQ(engineUtilization("{}", err), "");
  EXPECT_EQ(err, "malformed stats: {}");
}

//===--- kiln-run's command line -------------------------------------------===//

std::string parse(std::vector<const char *> args, RunOptions &o) {
  args.insert(args.begin(), "kiln-run");
  return parseRunArgs(static_cast<int>(args.size()), args.data(), o);
}

TEST(RunArgs, ParsesEveryOption) {
  RunOptions o;
  ASSERT_EQ(parse({"m.kiln", "--device=cpu:0", "--threads=3", "--input=x=2xf32=1,2",
                   "--input=@b.npy", "--output=@y.npy", "--output=@z.pb", "--seed=7",
                   "--repeat=5", "--print-all", "--profile=t.json", "--stats=s.json"},
                  o),
            "");
  EXPECT_EQ(o.model, "m.kiln");
  EXPECT_EQ(o.device, "cpu:0");
  EXPECT_EQ(o.threads, 3u);
  ASSERT_EQ(o.inputs.size(), 2u);
  EXPECT_EQ(o.inputs[0].name, "x");
  EXPECT_EQ(o.inputs[1].file, "b.npy");
  EXPECT_EQ(o.outputs, (std::vector<std::string>{"y.npy", "z.pb"}));
  EXPECT_EQ(o.seed, 7u);
  EXPECT_EQ(o.repeat, 5);
  EXPECT_TRUE(o.printAll);
  EXPECT_EQ(o.profile, "t.json");
  EXPECT_EQ(o.stats, "s.json");
  EXPECT_FALSE(o.help);
  EXPECT_FALSE(o.listDevices);

  RunOptions d;
  ASSERT_EQ(parse({"m.kiln"}, d), "");
  EXPECT_EQ(d.threads, 0u);
  EXPECT_EQ(d.seed, 0u);
  EXPECT_EQ(d.repeat, 0) << "not requested";
  RunOptions l;
  EXPECT_EQ(parse({"--list-devices"}, l), "") << "needs no model";
  EXPECT_TRUE(l.listDevices);
}

TEST(RunArgs, HelpStopsParsing) {
  for (const char *flag : {"--help", "-h"}) {
    RunOptions o;
    EXPECT_EQ(parse({"--seed=1", flag, "--bogus", "a", "b"}, o), "") << flag;
    EXPECT_TRUE(o.help);
    EXPECT_EQ(o.seed, 1u);
  }
  RunOptions o;
  EXPECT_EQ(parse({"--bogus", "--help"}, o), "unknown option '--bogus'")
      << "arguments before --help are still checked";
  std::string help = kRunHelp;
  EXPECT_EQ(help.rfind("usage: kiln-run MODEL.kiln [options]\n", 0), 0u);
  for (const char *flag : {"--device=", "--threads=", "--input=", "--output=", "--seed=",
                           "--repeat=", "--print-all", "--profile=", "--stats=",
                           "--list-devices"})
    EXPECT_THAT(help, HasSubstr(flag));
}

TEST(RunArgs, SaysWhatIsWrong) {
  auto err = [](std::vector<const char *> args) {
    RunOptions o;
    return parse(std::move(args), o);
  };
  EXPECT_EQ(err({}), "no model given");
  EXPECT_EQ(err({"a", "b"}), "more than one model given ('a', 'b')");
  EXPECT_EQ(err({"m", "--bogus"}), "unknown option '--bogus'");
  EXPECT_EQ(err({"m", "--seed"}), "--seed needs a value: --seed=...");
  EXPECT_EQ(err({"m", "--devicex"}), "--device needs a value: --device=...");
  EXPECT_EQ(err({"m", "--threads=0"}), "--threads must be an integer in [1, 4096], got '0'");
  EXPECT_EQ(err({"m", "--threads=4097"}),
            "--threads must be an integer in [1, 4096], got '4097'");
  EXPECT_EQ(err({"m", "--seed=-1"}), "--seed must be a non-negative integer, got '-1'");
  EXPECT_EQ(err({"m", "--repeat=0"}), "--repeat must be a positive integer, got '0'");
  EXPECT_EQ(err({"m", "--output=y.npy"}), "--output expects @FILE.npy or @FILE.pb, got 'y.npy'");
  EXPECT_EQ(err({"m", "--output=@"}), "--output expects @FILE.npy or @FILE.pb, got '@'");
  RunOptions o;
  EXPECT_NE(parse({"m", "--input=2xq9=1"}, o), "") << "the --input parser's message";
  RunOptions dash;
  EXPECT_EQ(parse({"-"}, dash), "") << "'-' is a model name";
  EXPECT_EQ(dash.model, "-");
}

//===--- --profile / --stats ----------------------------------------------===//

TEST(Profile, PrepareRemovesStaleFilesAndPicksATemporaryStatsFile) {
  std::string trace = kiln::test::tempPath(".trace.json");
  std::string stats = kiln::test::tempPath(".stats.json");
  kiln::test::writeFile(trace, {'x'});
  kiln::test::writeFile(stats, {'x'});
  ProfileFiles both = ProfileFiles::prepare(trace, stats);
  EXPECT_EQ(both.trace, trace);
  EXPECT_EQ(both.stats, stats);
  EXPECT_FALSE(both.tempStats);
  EXPECT_EQ(readText(trace), "") << "stale trace removed";
  EXPECT_EQ(readText(stats), "") << "stale stats removed";
  EXPECT_EQ(both.takeStats(), "");
  kiln::test::writeFile(stats, {'{', '}'});
  EXPECT_EQ(both.takeStats(), "{}");
  EXPECT_EQ(readText(stats), "{}") << "--stats files are kept";

  ProfileFiles traceOnly = ProfileFiles::prepare(trace, "");
  EXPECT_TRUE(traceOnly.tempStats);
  EXPECT_EQ(traceOnly.stats, tempStatsPath());
  kiln::test::writeFile(traceOnly.stats, {'{', '}'});
  EXPECT_EQ(traceOnly.takeStats(), "{}");
  EXPECT_EQ(readText(traceOnly.stats), "") << "the temporary file is removed";

  ProfileFiles none = ProfileFiles::prepare("", "");
  EXPECT_TRUE(none.trace.empty());
  EXPECT_TRUE(none.stats.empty());
  EXPECT_EQ(none.takeStats(), "");
}

TEST(Profile, ReportSaysWhatTheDeviceRecorded) {
  std::string err;
  EXPECT_EQ(profileReport("cuda:0", {}, "", err), "device cuda:0 records no profile\n");
  EXPECT_EQ(err, "");
  std::vector<kiln_dispatch_info> timed = {{"k0", "Relu(r)", {1, 1, 1}, 0, 2e6}};
  EXPECT_EQ(profileReport("cpu:0", timed, "{\"dispatches\": []}", err),
            slowestDispatches("cpu:0", timed));
  std::vector<kiln_dispatch_info> untimed = {{"k0", "", {1, 1, 1}, -1, -1}};
  EXPECT_EQ(profileReport("cpu:0", untimed, "{}", err), "") << "no times, no table";
  std::string npu =
      R"({"total_ns": 1000, "engines": {"tensor": {"busy_ns": 1000, "instructions": 1}, )"
      R"("vector": {"busy_ns": 0, "instructions": 0}, "scalar": {"busy_ns": 0, "instructions": 0}, )"
      R"("gpsimd": {"busy_ns": 0, "instructions": 0}, "dma": {"busy_ns": 0, "instructions": 0}}})";
  std::string text = profileReport("npu:0", timed, npu, err);
  EXPECT_EQ(err, "");
  EXPECT_EQ(text.rfind(slowestDispatches("npu:0", timed), 0), 0u) << "the table comes first";
  EXPECT_THAT(text, HasSubstr("  tensor  100.00% busy"));
  EXPECT_EQ(profileReport("npu:0", untimed, "{\"engines\": 1}", err), "");
  EXPECT_EQ(err, "malformed stats: {\"engines\": 1}");
}

TEST(Report, LatencySummary) {
  EXPECT_EQ(latencySummary({3.0, 1.0, 2.0}),
            "latency over 3 runs: min=1 ms median=2 ms\n");
  EXPECT_EQ(latencySummary({4.0, 1.0, 2.0, 8.0}),
            "latency over 4 runs: min=1 ms median=3 ms\n");
  EXPECT_EQ(latencySummary({0.123456}),
            "latency over 1 runs: min=0.1235 ms median=0.1235 ms\n");
}

TEST(Report, DeviceListHasALinePerDevice) {
  std::string err;
  std::string text = deviceList(err);
  EXPECT_EQ(err, "");
  size_t n = kiln_device_count();
  if (!n) {
    EXPECT_EQ(text, "no devices (the runtime was built without drivers)\n");
    return;
  }
  EXPECT_EQ(static_cast<size_t>(std::count(text.begin(), text.end(), '\n')), n);
  kiln_device_info d;
  ASSERT_EQ(kiln_device_info_get(0, &d), KILN_OK);
  std::string name = d.name;
  name.resize(std::max<size_t>(name.size(), 12), ' ');
  std::string first =
      name + " " + (d.available ? "available: " : "") + d.description + "\n";
  EXPECT_EQ(text.substr(0, first.size()), first);
}

} // namespace
