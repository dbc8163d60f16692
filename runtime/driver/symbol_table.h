//===- symbol_table.h - Vendor entry points from one list -------*- C++ -*-===//
//
// A GPU driver dlopens its vendor library and takes the entry points it uses
// from it; the test mocks define the same entry points. Each vendor lists them
// once, as a macro KILN_<VENDOR>_SYMBOLS(X) calling
//
//   X(name, suffix, result, (parameter types...))
//
// per entry point: `name` as the code calls it, `name##suffix` the symbol the
// library exports (CUDA's `_v2` versions of calls whose ABI changed). The
// macros below turn that list into the function-pointer table, its loader
// and the mock's prototypes, so the three cannot drift apart. The model is
// IREE's cuda_dynamic_symbol_table.h.
//
// No dependencies: the mocks include this too.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_RUNTIME_DRIVER_SYMBOL_TABLE_H
#define KILN_RUNTIME_DRIVER_SYMBOL_TABLE_H

#define KILN_SYMBOL_FIELD(name, suffix, result, params)                       \
  result(*name) params = nullptr;
#define KILN_SYMBOL_BIND(name, suffix, result, params)                        \
  binder.bind(#name #suffix, name);
/// For the mocks: a definition that disagrees with the list is a conflicting
/// declaration of a C function, a compile error.
#define KILN_SYMBOL_EXPORT(name, suffix, result, params)                      \
  __attribute__((visibility("default"))) result name##suffix params;

/// `struct Table` with one function pointer per entry of `LIST` and
/// `bind(binder)`, which calls `binder.bind(symbol, pointer)` for each.
#define KILN_DEFINE_SYMBOL_TABLE(Table, LIST)                                 \
  struct Table {                                                              \
    LIST(KILN_SYMBOL_FIELD)                                                   \
    template <typename Binder> void bind(Binder &binder) {                    \
      LIST(KILN_SYMBOL_BIND)                                                  \
    }                                                                         \
  }

#endif // KILN_RUNTIME_DRIVER_SYMBOL_TABLE_H
