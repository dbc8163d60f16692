//===- OpRegistry.cpp - ONNX op handlers by domain, name and opset --------===//
//
// See OpRegistry.h.
//
//===----------------------------------------------------------------------===//
#include "OpRegistry.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/ErrorHandling.h"

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
