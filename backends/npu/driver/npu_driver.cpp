//===- npu_driver.cpp - Kiln runtime driver: the simulated NeuronCore -----===//
//
// Runs "npu-isa-v1" executables on the simulator: buffers are host memory
// standing in for HBM, a dispatch runs one kernel program with binding i as
// hbm tensor i. Device 0 is the trn1-like preset, device 1 the trn2-like one.
// Each synchronize() closes a profiling window: the dispatches since the
// previous one, laid end to end, go to the trace and stats files requested
// in the device options.
//
//===----------------------------------------------------------------------===//
#include "driver_util.h"
#include "kiln/driver.h"

#include "../isa/Isa.h"
#include "../sim/Simulator.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

namespace {

using namespace kiln::npu;

const char *const kPresetOrder[] = {"trn1", "trn2"};
constexpr uint32_t kDeviceCount = 2;

struct Device {
  Simulator sim;
  std::string tracePath, statsPath;
  SimResult window;
  std::vector<kiln_driver_dispatch_time> lastTimes; // The closed window's.
  explicit Device(const MachineModel &m) : sim(m) {}
};

struct Buffer {
  uint8_t *data;
  uint64_t size;
};

struct Executable {
  Module module;
  std::vector<const Program *> entries;
};

uint32_t deviceCount() { return kDeviceCount; }

kiln_status deviceDescribe(uint32_t index, kiln_driver_device_desc *desc) {
  if (index >= kDeviceCount)
    return kiln_driver_error(KILN_ERROR_NOT_FOUND, "no npu device %u", index);
  static std::string text[kDeviceCount];
  if (text[index].empty()) {
    const MachineModel &m = *findMachineModel(kPresetOrder[index]);
    char buf[200];
    std::snprintf(buf, sizeof(buf),
                  "simulated %s (preset %s: Tensor Engine %.2f GHz, "
                  "%.0f GB/s HBM)",
                  m.description, m.name, m.tensorGhz, m.hbmGBps);
    text[index] = buf;
  }
  desc->description = text[index].c_str();
  desc->available = 1;
  return KILN_OK;
}

kiln_status deviceOpen(uint32_t index, const kiln_driver_device_options *opts,
                       void **device) {
  if (index >= kDeviceCount)
    return kiln_driver_error(KILN_ERROR_NOT_FOUND, "no npu device %u", index);
  auto *d = new Device(*findMachineModel(kPresetOrder[index]));
  if (opts && opts->trace_path)
    d->tracePath = opts->trace_path;
  if (opts && opts->stats_path)
    d->statsPath = opts->stats_path;
  *device = d;
  return KILN_OK;
}

void deviceClose(void *device) { delete static_cast<Device *>(device); }

kiln_status bufferAlloc(void *, uint64_t size, void **buffer) {
  uint64_t rounded = (size + 63) / 64 * 64;
  void *p = rounded < size ? nullptr
                           : std::aligned_alloc(64, rounded ? rounded : 64);
  if (!p)
    return kiln_driver_error(KILN_ERROR_INTERNAL,
                             "out of memory allocating %llu bytes",
                             static_cast<unsigned long long>(size));
  std::memset(p, 0, rounded ? rounded : 64);
  *buffer = new Buffer{static_cast<uint8_t *>(p), size};
  return KILN_OK;
}

void bufferFree(void *, void *buffer) {
  auto *b = static_cast<Buffer *>(buffer);
  std::free(b->data);
  delete b;
}

kiln_status bufferWrite(void *, void *buffer, uint64_t offset, const void *src,
                        uint64_t size) {
  std::memcpy(static_cast<Buffer *>(buffer)->data + offset, src, size);
  return KILN_OK;
}

kiln_status bufferRead(void *, void *buffer, uint64_t offset, void *dst,
                       uint64_t size) {
  std::memcpy(dst, static_cast<Buffer *>(buffer)->data + offset, size);
  return KILN_OK;
}

kiln_status executableLoad(void *, const char *format, const void *image,
                           uint64_t size, const kiln_driver_entry *entries,
                           uint32_t entryCount, void **executable) {
  if (std::strcmp(format, kBinaryFormat) != 0)
    return kiln_driver_error(KILN_ERROR_UNAVAILABLE,
                             "npu driver cannot load format '%s' (it loads "
                             "'%s')",
                             format, kBinaryFormat);
  auto exe = std::make_unique<Executable>();
  if (std::string err = decodeModule(image, size, exe->module); !err.empty())
    return kiln_driver_error(KILN_ERROR_CORRUPT, "%s", err.c_str());
  for (uint32_t i = 0; i < entryCount; ++i) {
    const Program *found = nullptr;
    for (const Program &p : exe->module.kernels)
      if (p.name == entries[i].name)
        found = &p;
    if (!found)
      return kiln_driver_error(KILN_ERROR_NOT_FOUND,
                               "executable has no kernel '%s'", entries[i].name);
    // Every engine's stream is already spread over the 128 partitions; a
    // program has no thread index to split further.
    const uint32_t *ws = entries[i].workgroup_size;
    if (ws[0] * uint64_t(ws[1]) * ws[2] != 1)
      return kiln_driver_error(KILN_ERROR_INVALID_ARGUMENT,
                               "npu kernel '%s' has workgroup size %u x %u x "
                               "%u; npu programs run as one workgroup of one",
                               entries[i].name, ws[0], ws[1], ws[2]);
    exe->entries.push_back(found);
  }
  *executable = exe.release();
  return KILN_OK;
}

void executableUnload(void *, void *executable) {
  delete static_cast<Executable *>(executable);
}

kiln_status dispatch(void *device, void *executable, uint32_t entry,
                     const uint32_t workgroups[3],
                     const kiln_driver_binding *bindings, uint32_t count) {
  auto *dev = static_cast<Device *>(device);
  auto *exe = static_cast<Executable *>(executable);
  bool launch = false;
  if (kiln_status st = kiln::driver::checkDispatch(
          entry, exe->entries.size(), workgroups, launch);
      st != KILN_OK || !launch)
    return st;
  // A program covers the whole kernel; it has no workgroup id to split on.
  if (workgroups[0] * uint64_t(workgroups[1]) * workgroups[2] != 1)
    return kiln_driver_error(KILN_ERROR_INVALID_ARGUMENT,
                             "npu kernels run as one program; grid %u x %u x "
                             "%u must be 1 x 1 x 1",
                             workgroups[0], workgroups[1], workgroups[2]);
  std::vector<HbmTensor> hbm(count);
  for (uint32_t i = 0; i < count; ++i) {
    auto *b = static_cast<Buffer *>(bindings[i].buffer);
    hbm[i] = {b->data + bindings[i].offset, b->size - bindings[i].offset};
  }
  SimOptions opts;
  opts.trace = !dev->tracePath.empty();
  SimResult r;
  if (std::string err = dev->sim.run(*exe->entries[entry], hbm.data(), count,
                                     opts, r);
      !err.empty())
    return kiln_driver_error(KILN_ERROR_INVALID_ARGUMENT, "%s", err.c_str());
  dev->window.append(r, exe->entries[entry]->name);
  return KILN_OK;
}

kiln_status writeFile(const std::string &path, const std::string &text) {
  return kiln_driver_write_file(path.c_str(), text.data(), text.size());
}

kiln_status synchronize(void *device) {
  auto *dev = static_cast<Device *>(device);
  SimResult window = std::move(dev->window);
  dev->window = SimResult();
  dev->lastTimes.clear();
  for (const Span &d : window.spans)
    dev->lastTimes.push_back({d.startNs, d.totalNs});
  if (!dev->tracePath.empty())
    if (kiln_status s = writeFile(dev->tracePath, traceJson(window)); s != KILN_OK)
      return s;
  if (!dev->statsPath.empty())
    return writeFile(dev->statsPath, statsJson(window));
  return KILN_OK;
}

uint32_t dispatchTimes(void *device, kiln_driver_dispatch_time *times, uint32_t count) {
  auto *dev = static_cast<Device *>(device);
  if (dev->tracePath.empty() && dev->statsPath.empty())
    return 0;
  for (uint32_t i = 0; i < count && i < dev->lastTimes.size(); ++i)
    times[i] = dev->lastTimes[i];
  return static_cast<uint32_t>(dev->lastTimes.size());
}

const kiln_driver npuDriver = KILN_DRIVER_VTABLE("npu", dispatchTimes, nullptr);

} // namespace

extern "C" const kiln_driver *kiln_driver_npu_entry(void) { return &npuDriver; }
