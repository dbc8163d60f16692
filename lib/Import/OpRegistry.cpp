//===- OpRegistry.cpp - ONNX op handlers by domain, name and opset --------===//
//
// See OpRegistry.h.
//
//===----------------------------------------------------------------------===//
#include "OpRegistry.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/ErrorHandling.h"

#include <tuple>

using namespace kiln::detail;

StringRef OpRegistry::canonicalDomain(StringRef domain) {
  return domain == "ai.onnx" ? StringRef() : domain;
}

std::string OpRegistry::key(StringRef domain, StringRef name) {
  return (llvm::Twine(canonicalDomain(domain)) + "::" + name).str();
}

void OpRegistry::onOp(StringRef domain, StringRef name, int64_t sinceVersion,
                      Handler handler) {
  auto &entries = ops[key(domain, name)];
  auto *it = llvm::partition_point(entries, [&](const Entry &e) { return e.since < sinceVersion; });
  if (it != entries.end() && it->since == sinceVersion)
    llvm::report_fatal_error(llvm::Twine("ONNX op ") + domain + "." + name + " registered twice for opset " +
                             llvm::Twine(sinceVersion));
  entries.insert(it, {sinceVersion, handler});
}

Handler OpRegistry::lookup(StringRef domain, StringRef name, int64_t version) const {
  auto it = ops.find(key(domain, name));
  if (it == ops.end())
    return nullptr;
  Handler h = nullptr;
  for (const Entry &e : it->second)
    if (e.since <= version)
      h = e.handler;
  return h;
}

std::optional<int64_t> OpRegistry::firstVersion(StringRef domain, StringRef name) const {
  auto it = ops.find(key(domain, name));
  if (it == ops.end())
    return std::nullopt;
  return it->second.front().since;
}

std::vector<kiln::ImportedOp> OpRegistry::list() const {
  std::vector<ImportedOp> all;
  for (const auto &kv : ops) {
    auto [domain, name] = kv.first().split("::");
    for (const Entry &e : kv.second)
      all.push_back({domain.empty() ? "ai.onnx" : domain.str(), name.str(), e.since});
  }
  llvm::sort(all, [](const ImportedOp &a, const ImportedOp &b) {
    return std::tie(a.domain, a.name, a.sinceVersion) < std::tie(b.domain, b.name, b.sinceVersion);
  });
  return all;
}

std::vector<kiln::ImportedOp> kiln::importedOps() { return opRegistry().list(); }

const OpRegistry &kiln::detail::opRegistry() {
  static const OpRegistry registry = [] {
    OpRegistry r;
    registerDefaultDomainAtoC(r);
    registerDefaultDomainDtoG(r);
    registerDefaultDomainHtoM(r);
    registerDefaultDomainNtoQ(r);
    registerDefaultDomainRtoS(r);
    registerDefaultDomainTtoZ(r);
    registerMlDomain(r);
    registerPreviewDomain(r);
    registerPreviewTrainingDomain(r);
    return r;
  }();
  return registry;
}
