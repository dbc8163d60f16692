//===- cpu_driver.cpp - Kiln runtime driver for the host CPU --------------===//
//
// Executables are shared objects produced by the compiler; they are loaded
// from memory (memfd + dlopen) so no compiler or writable install dir is
// needed. Kernel ABI:
//   void entry(void *const *bindings, int64_t wg_x, int64_t wg_y, int64_t wg_z)
// with bindings[i] = buffer base + byte offset. A dispatch runs the whole
// workgroup grid on a persistent thread pool and returns when it is done.
// A device opened with a trace or stats path times every dispatch and its
// threads (cpu_profile.h); otherwise no clock is read.
//
//===----------------------------------------------------------------------===//
#include "driver_util.h"
#include "kiln/driver.h"

#include "cpu_profile.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <elf.h>
#include <mutex>
#include <string>
#include <sys/mman.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

using kiln::cpu::DispatchRecord;
using kiln::cpu::nowNs;
using kiln::cpu::WorkerSpan;
using KernelFn = void (*)(void *const *, int64_t, int64_t, int64_t);

#if defined(__x86_64__)
constexpr const char *kNativeFormat = "elf-x86_64-so";
constexpr uint16_t kNativeMachine = EM_X86_64;
#elif defined(__aarch64__)
constexpr const char *kNativeFormat = "elf-aarch64-so";
constexpr uint16_t kNativeMachine = EM_AARCH64;
#else
constexpr const char *kNativeFormat = "";
constexpr uint16_t kNativeMachine = 0;
#endif

/// Runs grids of workgroups. The caller participates, and workgroups are
/// claimed one at a time from an atomic counter so uneven workgroups balance
/// themselves. Between dispatches a worker spins for kSpinNs before it
/// sleeps, and the caller likewise before it sleeps on the workers: a
/// model's dispatches follow each other within microseconds, and a futex
/// wake-up costs more than that on each side (BERT's 296 dispatches at two
/// threads lost about 6 ms to them).
class ThreadPool {
public:
  explicit ThreadPool(unsigned threads) {
    for (unsigned i = 1; i < threads; ++i)
      workers.emplace_back([this, i] { workerLoop(i); });
  }
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stopping.store(true);
    }
    wake.notify_all();
    for (std::thread &t : workers)
      t.join();
  }

  unsigned threads() const { return static_cast<unsigned>(workers.size()) + 1; }

  /// Runs the grid. With `spans` (one per thread, zeroed), each thread
  /// records its part in spans[its index]; the caller is thread 0.
  void run(KernelFn fn, void *const *bindings, int64_t x, int64_t y,
           int64_t total, WorkerSpan *spans = nullptr) {
    if (total <= 0)
      return;
    job = {fn, bindings, x, y, total, spans};
    next.store(0, std::memory_order_relaxed);
    if (workers.empty() || total == 1) {
      work(0);
      return;
    }
    busy.store(workers.size(), std::memory_order_relaxed);
    {
      // Under the mutex, so a worker about to sleep sees it (no lost wake-up).
      std::lock_guard<std::mutex> lock(mutex);
      generation.fetch_add(1, std::memory_order_release);
    }
    wake.notify_all();
    work(0);
    if (spinUntil([this] { return busy.load(std::memory_order_acquire) == 0; }))
      return;
    std::unique_lock<std::mutex> lock(mutex);
    done.wait(lock, [this] { return busy.load(std::memory_order_acquire) == 0; });
  }

private:
  struct Job {
    KernelFn fn;
    void *const *bindings;
    int64_t x, y, total;
    WorkerSpan *spans;
  };

  static constexpr int64_t kSpinNs = 100000;

  /// Polls `ready` for up to kSpinNs; whether it became true.
  template <typename Ready> static bool spinUntil(Ready ready) {
    int64_t start = nowNs();
    for (unsigned i = 1;; ++i) {
      if (ready())
        return true;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
      if (i % 64 == 0 && nowNs() - start > kSpinNs)
        return ready();
    }
  }

  void work(unsigned self) {
    const Job j = job;
    if (j.spans)
      return workTimed(j, j.spans[self]);
    for (int64_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < j.total;) {
      int64_t plane = j.x * j.y;
      int64_t z = i / plane, rest = i % plane;
      j.fn(j.bindings, rest % j.x, rest / j.x, z);
    }
  }

  /// work() with two clock reads around each workgroup, kept apart so that
  /// the loop above stays free of them.
  void workTimed(const Job &j, WorkerSpan &span) {
    for (int64_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < j.total;) {
      int64_t plane = j.x * j.y;
      int64_t z = i / plane, rest = i % plane;
      int64_t start = nowNs();
      j.fn(j.bindings, rest % j.x, rest / j.x, z);
      int64_t end = nowNs();
      if (!span.workgroups++)
        span.firstNs = start;
      span.lastNs = end;
      span.busyNs += end - start;
    }
  }

  void workerLoop(unsigned self) {
    uint64_t seen = 0;
    auto posted = [&] {
      return stopping.load(std::memory_order_acquire) ||
             generation.load(std::memory_order_acquire) != seen;
    };
    for (;;) {
      if (!spinUntil(posted)) {
        std::unique_lock<std::mutex> lock(mutex);
        wake.wait(lock, posted);
      }
      if (stopping.load(std::memory_order_acquire))
        return;
      seen = generation.load(std::memory_order_acquire);
      work(self);
      if (busy.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        // Under the mutex, so a caller about to sleep sees it.
        std::lock_guard<std::mutex> lock(mutex);
        done.notify_one();
      }
    }
  }

  std::vector<std::thread> workers;
  std::mutex mutex;
  std::condition_variable wake, done;
  std::atomic<uint64_t> generation{0};
  std::atomic<size_t> busy{0};
  std::atomic<bool> stopping{false};
  Job job{};
  std::atomic<int64_t> next{0};
};

struct Device {
  ThreadPool pool;
  std::vector<void *> pointers; // Scratch for dispatch bindings.
  // Profiling: on when either path is set. `window` holds the dispatches
  // since the last synchronize(), `lastWindow` those before it.
  std::string tracePath, statsPath;
  bool profiling = false;
  std::vector<DispatchRecord> window, lastWindow;
  explicit Device(unsigned threads) : pool(threads) {}
};

struct Executable {
  void *handle = nullptr;
  int fd = -1; // Kept open: while loaded, "/proc/self/fd/N" must stay unique.
  std::vector<KernelFn> entries;
  std::vector<std::string> names, ops; // Per entry, for profiles.
};

uint32_t deviceCount() { return 1; }

kiln_status deviceDescribe(uint32_t index, kiln_driver_device_desc *desc) {
  if (index != 0)
    return kiln_driver_error(KILN_ERROR_NOT_FOUND, "cpu has one device");
  static const std::string text =
      "host CPU, " + std::to_string(std::thread::hardware_concurrency()) +
      " hardware threads";
  desc->description = text.c_str();
  desc->available = 1;
  return KILN_OK;
}

kiln_status deviceOpen(uint32_t index, const kiln_driver_device_options *opts,
                       void **device) {
  if (index != 0)
    return kiln_driver_error(KILN_ERROR_NOT_FOUND, "no cpu device %u", index);
  unsigned threads = opts && opts->num_threads ? opts->num_threads
                                               : std::thread::hardware_concurrency();
  Device *dev;
  try {
    dev = new Device(threads ? threads : 1);
  } catch (const std::exception &e) {
    return kiln_driver_error(KILN_ERROR_INTERNAL,
                             "cannot start %u threads: %s", threads, e.what());
  }
  if (opts && opts->trace_path)
    dev->tracePath = opts->trace_path;
  if (opts && opts->stats_path)
    dev->statsPath = opts->stats_path;
  dev->profiling = !dev->tracePath.empty() || !dev->statsPath.empty();
  *device = dev;
  return KILN_OK;
}

void deviceClose(void *device) { delete static_cast<Device *>(device); }

kiln_status bufferAlloc(void *, uint64_t size, void **buffer) {
  // Round up: aligned_alloc wants a multiple of the alignment, and a
  // zero-size buffer still needs a distinct address.
  uint64_t rounded = (size + 63) / 64 * 64;
  if (rounded == 0)
    rounded = 64;
  void *p = rounded < size ? nullptr : std::aligned_alloc(64, rounded);
  if (!p)
    return kiln_driver_error(KILN_ERROR_INTERNAL,
                             "out of memory allocating %llu bytes",
                             static_cast<unsigned long long>(size));
  std::memset(p, 0, rounded);
  *buffer = p;
  return KILN_OK;
}

void bufferFree(void *, void *buffer) { std::free(buffer); }

// A buffer handle is the host address itself. Kernels may rely on the
// alignment bufferAlloc gives.
kiln_status bufferImport(void *, void *host, uint64_t, void **buffer) {
  if (reinterpret_cast<uintptr_t>(host) % 64)
    return kiln_driver_error(KILN_ERROR_UNAVAILABLE, "%p is not 64-byte aligned", host);
  *buffer = host;
  return KILN_OK;
}

kiln_status bufferWrite(void *, void *buffer, uint64_t offset, const void *src,
                        uint64_t size) {
  std::memcpy(static_cast<char *>(buffer) + offset, src, size);
  return KILN_OK;
}

kiln_status bufferRead(void *, void *buffer, uint64_t offset, void *dst,
                       uint64_t size) {
  std::memcpy(dst, static_cast<const char *>(buffer) + offset, size);
  return KILN_OK;
}

bool writeAll(int fd, const void *data, uint64_t size) {
  auto *p = static_cast<const char *>(data);
  while (size) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    p += n;
    size -= static_cast<uint64_t>(n);
  }
  return true;
}

/// dlopen() matches already-loaded libraries by path, so a reused path would
/// silently return an old image; reject that instead.
bool alreadyLoaded(const std::string &path) {
  if (void *h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD)) {
    ::dlclose(h);
    return true;
  }
  return false;
}

/// Loads `image` as a shared object: memfd first, else an unlinked temp file.
kiln_status loadImage(const void *image, uint64_t size, Executable &exe) {
  std::string memfdError = "memfd_create unavailable";
#ifdef MFD_CLOEXEC
  int fd = ::memfd_create("kiln-executable", MFD_CLOEXEC);
  if (fd >= 0) {
    std::string path = "/proc/self/fd/" + std::to_string(fd);
    if (writeAll(fd, image, size) && !alreadyLoaded(path)) {
      ::dlerror();
      if ((exe.handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL))) {
        exe.fd = fd;
        return KILN_OK;
      }
      const char *err = ::dlerror();
      memfdError = err ? err : "dlopen failed";
    } else {
      memfdError = "cannot write memfd";
    }
    ::close(fd);
  } else {
    memfdError = std::string("memfd_create: ") + std::strerror(errno);
  }
#endif
  // No memfd (old kernel, sandbox, /proc missing): go through the file system.
  const char *dir = std::getenv("TMPDIR");
  std::string path;
  for (int attempt = 0; attempt < 8; ++attempt) {
    std::string tmpl = std::string(dir && *dir ? dir : "/tmp") + "/kiln-exec-XXXXXX";
    std::vector<char> name(tmpl.begin(), tmpl.end());
    name.push_back('\0');
    int tfd = ::mkstemp(name.data());
    if (tfd < 0)
      return kiln_driver_error(KILN_ERROR_IO,
                               "cannot load executable: %s; and mkstemp(%s): %s",
                               memfdError.c_str(), tmpl.c_str(),
                               std::strerror(errno));
    path = name.data();
    bool ok = writeAll(tfd, image, size);
    ::close(tfd);
    if (!ok) {
      ::unlink(path.c_str());
      return kiln_driver_error(KILN_ERROR_IO, "cannot write %s", path.c_str());
    }
    if (!alreadyLoaded(path))
      break;
    ::unlink(path.c_str());
    path.clear();
  }
  if (path.empty())
    return kiln_driver_error(KILN_ERROR_INTERNAL, "no unique temp file name");
  ::dlerror();
  exe.handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  // The mapping survives the unlink; nothing is left on disk either way.
  ::unlink(path.c_str());
  if (!exe.handle) {
    const char *err = ::dlerror();
    return kiln_driver_error(KILN_ERROR_INTERNAL, "dlopen failed: %s (memfd: %s)",
                             err ? err : "unknown error", memfdError.c_str());
  }
  return KILN_OK;
}

void executableUnload(void *, void *executable) {
  auto *exe = static_cast<Executable *>(executable);
  if (exe->handle)
    ::dlclose(exe->handle);
  if (exe->fd >= 0)
    ::close(exe->fd);
  delete exe;
}

/// The artifact's word for what an entry reaches through its bindings
/// against the code's own (`kiln_extents_<name>`, kiln-cpu-lower-abi). The
/// runtime checked the dispatches' bindings against the former, so a
/// changed entry name or extent must not reach a kernel that reaches
/// further. "" or why the entry is refused.
std::string checkExtents(void *handle, const kiln_driver_entry &entry) {
  std::string name = entry.name;
  std::string symbol = "kiln_extents_" + name;
  const auto *own = static_cast<const uint64_t *>(::dlsym(handle, symbol.c_str()));
  if (!own)
    return "entry '" + name + "' is not a kernel of this image (it has no " + symbol + ")";
  if (!entry.binding_extents)
    return "entry '" + name + "': the artifact does not say what the kernel's bindings "
           "reach (format 3.3 and later do)";
  auto list = [](uint64_t n, const uint64_t *e) {
    std::string s;
    for (uint64_t i = 0; i < n; ++i)
      s += (i ? ", " : "") + std::to_string(e[i]);
    return "[" + s + "]";
  };
  if (own[0] != entry.binding_count ||
      !std::equal(own + 1, own + 1 + own[0], entry.binding_extents))
    return "entry '" + name + "' reaches " + list(own[0], own + 1) +
           " bytes through its bindings, but the artifact says " +
           list(entry.binding_count, entry.binding_extents);
  return "";
}

kiln_status executableLoad(void *, const char *format, const void *image,
                           uint64_t size, const kiln_driver_entry *entries,
                           uint32_t entryCount, void **executable) {
  if (!*kNativeFormat || std::strcmp(format, kNativeFormat) != 0)
    return kiln_driver_error(KILN_ERROR_UNAVAILABLE,
                             "cpu driver cannot load format '%s' on this host "
                             "(it loads '%s')",
                             format, kNativeFormat);
  // Check the ELF header ourselves: dlopen's message for garbage is cryptic.
  const auto *eh = static_cast<const unsigned char *>(image);
  if (size < sizeof(Elf64_Ehdr) || std::memcmp(eh, ELFMAG, SELFMAG) != 0 ||
      eh[EI_CLASS] != ELFCLASS64)
    return kiln_driver_error(KILN_ERROR_CORRUPT,
                             "image (%llu bytes) is not a 64-bit ELF file",
                             static_cast<unsigned long long>(size));
  Elf64_Ehdr hdr;
  std::memcpy(&hdr, image, sizeof(hdr));
  if (hdr.e_type != ET_DYN || hdr.e_machine != kNativeMachine)
    return kiln_driver_error(KILN_ERROR_CORRUPT,
                             "image is not a shared object for this machine "
                             "(e_type %u, e_machine %u)",
                             hdr.e_type, hdr.e_machine);
  auto *exe = new Executable();
  if (kiln_status s = loadImage(image, size, *exe); s != KILN_OK) {
    delete exe;
    return s;
  }
  // Images kiln-compile writes describe their kernels; test kernels and
  // images from before the descriptions do not, and are run as they were.
  bool described = ::dlsym(exe->handle, "kiln_kernel_extents") != nullptr;
  for (uint32_t i = 0; i < entryCount; ++i) {
    void *sym = ::dlsym(exe->handle, entries[i].name);
    if (!sym) {
      executableUnload(nullptr, exe);
      return kiln_driver_error(KILN_ERROR_NOT_FOUND,
                               "executable has no entry point '%s'", entries[i].name);
    }
    if (std::string why = described ? checkExtents(exe->handle, entries[i]) : "";
        !why.empty()) {
      executableUnload(nullptr, exe);
      return kiln_driver_error(KILN_ERROR_CORRUPT, "%s", why.c_str());
    }
    exe->entries.push_back(reinterpret_cast<KernelFn>(sym));
    exe->names.push_back(entries[i].name);
    exe->ops.push_back(entries[i].ops ? entries[i].ops : "");
  }
  *executable = exe;
  return KILN_OK;
}

kiln_status dispatch(void *device, void *executable, uint32_t entry,
                     const uint32_t workgroups[3],
                     const kiln_driver_binding *bindings, uint32_t count) {
  auto *dev = static_cast<Device *>(device);
  auto *exe = static_cast<Executable *>(executable);
  if (entry >= exe->entries.size())
    return kiln_driver_error(KILN_ERROR_INVALID_ARGUMENT,
                             "entry %u out of range", entry);
  dev->pointers.resize(count);
  for (uint32_t i = 0; i < count; ++i)
    dev->pointers[i] = static_cast<char *>(bindings[i].buffer) + bindings[i].offset;
  int64_t x = workgroups[0], y = workgroups[1], z = workgroups[2];
  if (x && y && z && (x * y > INT64_MAX / z))
    return kiln_driver_error(KILN_ERROR_INVALID_ARGUMENT,
                             "workgroup grid %u x %u x %u is too large",
                             workgroups[0], workgroups[1], workgroups[2]);
  if (!dev->profiling) {
    dev->pool.run(exe->entries[entry], dev->pointers.data(), x, y, x * y * z);
    return KILN_OK;
  }
  DispatchRecord &r = dev->window.emplace_back();
  r.kernel = exe->names[entry];
  r.ops = exe->ops[entry];
  std::copy(workgroups, workgroups + 3, r.grid);
  r.workers.resize(dev->pool.threads());
  r.startNs = nowNs();
  dev->pool.run(exe->entries[entry], dev->pointers.data(), x, y, x * y * z,
                r.workers.data());
  r.endNs = nowNs();
  return KILN_OK;
}

kiln_status writeFile(const std::string &path, const std::string &text) {
  return kiln_driver_write_file(path.c_str(), text.data(), text.size());
}

/// Dispatches are synchronous, so there is nothing to wait for; when
/// profiling, this closes the window and writes its files.
kiln_status synchronize(void *device) {
  auto *dev = static_cast<Device *>(device);
  if (!dev->profiling)
    return KILN_OK;
  dev->lastWindow = std::move(dev->window);
  dev->window.clear();
  if (!dev->tracePath.empty())
    if (kiln_status s = writeFile(dev->tracePath, kiln::cpu::traceJson(dev->lastWindow));
        s != KILN_OK)
      return s;
  if (!dev->statsPath.empty())
    return writeFile(dev->statsPath, kiln::cpu::statsJson(dev->lastWindow));
  return KILN_OK;
}

uint32_t dispatchTimes(void *device, kiln_driver_dispatch_time *times, uint32_t count) {
  auto *dev = static_cast<Device *>(device);
  const std::vector<DispatchRecord> &w = dev->lastWindow;
  for (uint32_t i = 0; i < count && i < w.size(); ++i)
    times[i] = {double(w[i].startNs - w[0].startNs), double(w[i].endNs - w[i].startNs)};
  return static_cast<uint32_t>(w.size());
}

const kiln_driver cpuDriver = KILN_DRIVER_VTABLE("cpu", dispatchTimes, bufferImport);

} // namespace

extern "C" const kiln_driver *kiln_driver_cpu_entry(void) { return &cpuDriver; }
