//===- HostCodegen.h - LLVM-dialect kernels to a host shared object -*- C++ -*-===//
//
// The tail every backend that runs kernels on the host CPU shares: an
// executable module of LLVM-dialect functions in the cpu ABI
// `void k(void *const *bindings, i64 wg_x, i64 wg_y, i64 wg_z)` becomes
// optimized LLVM IR (O3, host CPU features), an object and, through
// `ld.lld -shared`, the ELF shared object the cpu driver dlopens from memory.
// Used by the cpu backend and by levelzero-cpu (levelzero's SPIR-V kernels
// lowered back to LLVM).
//
//===----------------------------------------------------------------------===//
#ifndef KILN_TARGET_HOSTCODEGEN_H
#define KILN_TARGET_HOSTCODEGEN_H

#include "kiln/Target/TargetBackend.h"

namespace kiln::host {

/// "llvm" (optimized LLVM IR) or "asm" (target assembly) of `executable`.
llvm::Expected<std::string> emitText(mlir::ModuleOp executable, llvm::StringRef stage,
                                     const TargetOptions &options);

/// A cpu executable (target "cpu", format "elf-<arch>-so") holding the linked
/// shared object; its entries are left for the caller to fill.
llvm::Expected<artifact::Executable> buildSharedObject(mlir::ModuleOp executable,
                                                       const TargetOptions &options);

/// Width in bits of the widest vector registers of the CPU `options` compile
/// for (x86: 512 with AVX-512F, 256 with AVX, else 128; 128 elsewhere).
llvm::Expected<unsigned> vectorRegisterBits(const TargetOptions &options);

} // namespace kiln::host

#endif // KILN_TARGET_HOSTCODEGEN_H
