//===- TargetRegistry.cpp -------------------------------------------------===//
#include "kiln/Target/TargetBackend.h"

#include "llvm/ADT/StringMap.h"

using namespace kiln;

static llvm::StringMap<std::unique_ptr<TargetBackend>> &registry() {
  static llvm::StringMap<std::unique_ptr<TargetBackend>> r;
  return r;
}

llvm::cl::OptionCategory &kiln::targetOptionCategory() {
  static llvm::cl::OptionCategory category("Target-specific options");
  return category;
}

void kiln::registerTargetBackend(std::unique_ptr<TargetBackend> backend) {
  std::string name = backend->name().str();
  registry()[name] = std::move(backend);
}

const TargetBackend *kiln::lookupTargetBackend(llvm::StringRef name) {
  auto it = registry().find(name);
  return it == registry().end() ? nullptr : it->second.get();
}

std::vector<std::string> kiln::registeredTargetNames() {
  std::vector<std::string> names;
  for (const auto &kv : registry())
    names.push_back(kv.first().str());
  std::sort(names.begin(), names.end());
  return names;
}
