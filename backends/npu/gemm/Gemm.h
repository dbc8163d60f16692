//===- Gemm.h - Hand-scheduled GEMM programs for the npu ------------------===//
//
// C[M,N] (f32) = A[M,K] x B[K,N] as one npu Program with the schedule of
// tools/kiln-npu-gemm (docs/npu.md): stationary A^T tiles with K on the
// partitions, B resident per block of NB output columns, PSUM evacuated by
// the Scalar and Vector engines in turn, every hand-off a semaphore and the
// DMAs round robin over the 16 queues. Shared by the tool and by the
// compiler, which uses it for kernels that are exactly one plain matmul.
//
// The operands' HBM layouts are element strides, so A may be K-major
// (AT[K,M], the tool) or row-major (A[M,K], read K-major with a strided
// pattern: DMA costs per byte plus start-up, not per contiguous run).
//
//===----------------------------------------------------------------------===//
#ifndef KILN_NPU_GEMM_GEMM_H
#define KILN_NPU_GEMM_GEMM_H

#include "isa/Isa.h"
#include "model/MachineModel.h"

#include <cstdint>
#include <string>

namespace kiln::npu {

struct GemmSpec {
  int64_t M = 0, N = 0, K = 0;
  /// Tensor Engine operand type.
  DType dtype = DType::BF16;
  /// Type of A and B in HBM. F32 inputs with a BF16 dtype are staged in
  /// SBUF and rounded to bf16 on GpSimd (the compiler's autocast).
  DType inType = DType::BF16;
  bool noOverlap = false;
  /// HBM tensors (binding indices) and element strides of A along m and k,
  /// B along k and n, C along m and n. Zero strides take the tool's
  /// layouts: AT[K,M], B[K,N], C[M,N].
  unsigned aTensor = 0, bTensor = 1, cTensor = 2;
  int64_t aM = 0, aK = 0, bK = 0, bN = 0, cM = 0, cN = 0;
};

struct GemmPlan {
  int64_t KT = 0, MT = 0, NB = 0, NC = 0, NCH = 0, NBLK = 0;
  bool bResident = false;
  bool cast = false; // Operands rounded on chip (inType != dtype).
  int psumBuffers = 0;
  int64_t bStage = 0; // f32 staging slots for B when rounding on chip.
  std::string why; // Empty when the GEMM fits.
};

/// Chooses the blocking; `why` says why a GEMM cannot be scheduled.
GemmPlan planGemm(const GemmSpec &s, const MachineModel &m);
/// The program for a plan from planGemm with an empty `why`.
Program buildGemm(const GemmSpec &s, const GemmPlan &p, const MachineModel &m,
                  const std::string &name = "gemm");

} // namespace kiln::npu

#endif
