// RUN: kiln-opt %s --pass-pipeline='builtin.module(func.func(kiln-cpu-vectorize-contractions{vector-bits=256 rows=6 vectors=2},canonicalize,cse))' | FileCheck %s

#a = affine_map<(m, n, k) -> (m, k)>
#b = affine_map<(m, n, k) -> (k, n)>
#c = affine_map<(m, n, k) -> (m, n)>

// 13 x 37 does not divide 6 x 16: two whole row tiles and one of a single row;
// columns 32..36 are masked vectors. The accumulators are the reduction
// loop's iter_args; the body runs on vectors with `contract` (FMAs).
// CHECK-LABEL: func.func @matmul
// CHECK: scf.for %[[N0:.+]] = %c0 to %c32 step %c16
// CHECK:   scf.for %[[M0:.+]] = %c0 to %c12 step %c6
// CHECK-COUNT-12: vector.load %arg2
// CHECK:     scf.for %{{.+}} = %c0 to %c5 step %c1 iter_args({{.+}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK-COUNT-2: vector.load %arg1
// CHECK:       %[[S:.+]] = memref.load %arg0
// CHECK:       %[[V:.+]] = vector.broadcast %[[S]] : f32 to vector<8xf32>
// CHECK:       %[[P:.+]] = arith.mulf %[[V]], %{{.+}} fastmath<contract> : vector<8xf32>
// CHECK:       arith.addf %{{.+}}, %[[P]] fastmath<contract> : vector<8xf32>
// CHECK-COUNT-12: vector.store
// The last row of these columns:
// CHECK:   scf.for {{.+}} -> (vector<8xf32>, vector<8xf32>)
// The masked columns:
// CHECK: scf.for %{{.+}} = %c0 to %c12 step %c6
// CHECK:   %[[MASK:.+]] = vector.constant_mask [5] : vector<8xi1>
// CHECK:   vector.maskedload %arg2[{{.+}}], %[[MASK]]
// CHECK:   vector.maskedload %arg1[{{.+}}], %[[MASK]]
// CHECK:   vector.maskedstore %arg2[{{.+}}], %[[MASK]]
// CHECK-NOT: linalg.generic
func.func @matmul(%A: memref<13x5xf32>, %B: memref<5x37xf32>, %C: memref<13x37xf32>) {
  linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%A, %B : memref<13x5xf32>, memref<5x37xf32>) outs(%C : memref<13x37xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %p = arith.mulf %x, %y : f32
    %s = arith.addf %o, %p : f32
    linalg.yield %s : f32
  }
  return
}

// A workgroup's partial tile has dynamic extents: whole tiles, then one-row
// tiles, and the masked last columns under an scf.if, in one vector when
// they fit in one (6 accumulators), else in two (12).
// CHECK-LABEL: func.func @dynamic
// CHECK: arith.divui
// CHECK: scf.for
// CHECK: %[[REST:.+]] = arith.subi
// CHECK: scf.if
// CHECK: %[[ONE:.+]] = arith.cmpi sle, %[[REST]], %c8
// CHECK: scf.if %[[ONE]]
// CHECK: vector.create_mask
// CHECK: scf.for {{.+}} -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK: } else {
// CHECK: scf.for {{.+}} -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK-NOT: linalg.generic
func.func @dynamic(%A: memref<?x5xf32>, %B: memref<5x?xf32>, %C: memref<?x?xf32>) {
  linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%A, %B : memref<?x5xf32>, memref<5x?xf32>) outs(%C : memref<?x?xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %p = arith.mulf %x, %y : f32
    %s = arith.addf %o, %p : f32
    linalg.yield %s : f32
  }
  return
}

// A convolution (n, f, c, kh, kw, oh, ow): f is broadcast across rows, ow
// runs along the vectors, and rhs reads x[c, oh + kh, ow + kw].
// CHECK-LABEL: func.func @conv
// CHECK: scf.for {{.+}} iter_args
// CHECK: scf.for {{.+}} iter_args
// CHECK: scf.for {{.+}} iter_args
// CHECK: vector.load %arg0
// CHECK: memref.load %arg1
// CHECK-NOT: linalg.generic
func.func @conv(%x: memref<4x10x10xf32>, %w: memref<8x4x3x3xf32>, %y: memref<8x8x8xf32>) {
  linalg.generic {indexing_maps = [affine_map<(f, c, kh, kw, oh, ow) -> (c, oh + kh, ow + kw)>,
                                   affine_map<(f, c, kh, kw, oh, ow) -> (f, c, kh, kw)>,
                                   affine_map<(f, c, kh, kw, oh, ow) -> (f, oh, ow)>],
                  iterator_types = ["parallel", "reduction", "reduction", "reduction", "parallel", "parallel"]}
      ins(%x, %w : memref<4x10x10xf32>, memref<8x4x3x3xf32>) outs(%y : memref<8x8x8xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %o, %p : f32
    linalg.yield %s : f32
  }
  return
}

// A depthwise convolution (c, kh, kw, oh, ow): the tile's rows are output
// rows, and x row oh + kh serves every output row it overlaps. kh is unrolled
// inside the kw loop, each of the tile's 6 + 3 - 1 x rows is loaded once (not
// 3 x 6 times), and the 3 weights of a kw step are loaded before them.
// CHECK-LABEL: func.func @depthwise
// CHECK: scf.for %[[KW:.+]] = %c0 to %c3 step %c1 iter_args
// CHECK-COUNT-3: memref.load %arg1[%{{.+}}, %{{.+}}, %[[KW]]]
// CHECK-COUNT-8: vector.load %arg0[%{{.+}}, %{{.+}}, %[[KW]]]
// CHECK-NOT: vector.load %arg0
// CHECK: scf.yield
func.func @depthwise(%x: memref<2x8x10xf32>, %w: memref<2x3x3xf32>, %y: memref<2x6x8xf32>) {
  linalg.generic {indexing_maps = [affine_map<(c, kh, kw, oh, ow) -> (c, oh + kh, ow + kw)>,
                                   affine_map<(c, kh, kw, oh, ow) -> (c, kh, kw)>,
                                   affine_map<(c, kh, kw, oh, ow) -> (c, oh, ow)>],
                  iterator_types = ["parallel", "reduction", "reduction", "parallel", "parallel"]}
      ins(%x, %w : memref<2x8x10xf32>, memref<2x3x3xf32>) outs(%y : memref<2x6x8xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %o, %p : f32
    linalg.yield %s : f32
  }
  return
}

// Stride 2 along the rows: x row 2 * oh + kh; rows 0..12 each loaded once
// (18 loads before), the last output row's accumulator gets x row 12.
// CHECK-LABEL: func.func @depthwise_stride2
// CHECK: scf.for %[[KW:.+]] = %c0 to %c3 step %c1 iter_args
// CHECK-COUNT-13: vector.load %arg0[%{{.+}}, %{{.+}}, %[[KW]]]
// CHECK-NOT: vector.load %arg0
// CHECK: scf.yield
func.func @depthwise_stride2(%x: memref<2x13x10xf32>, %w: memref<2x3x3xf32>, %y: memref<2x6x8xf32>) {
  linalg.generic {indexing_maps = [affine_map<(c, kh, kw, oh, ow) -> (c, 2 * oh + kh, ow + kw)>,
                                   affine_map<(c, kh, kw, oh, ow) -> (c, kh, kw)>,
                                   affine_map<(c, kh, kw, oh, ow) -> (c, oh, ow)>],
                  iterator_types = ["parallel", "reduction", "reduction", "parallel", "parallel"]}
      ins(%x, %w : memref<2x13x10xf32>, memref<2x3x3xf32>) outs(%y : memref<2x6x8xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %o, %p : f32
    linalg.yield %s : f32
  }
  return
}

// Stride 2 along the vector dim: two masked loads (the second stops one
// element short, so the row's last element is never passed) and the even lanes.
// CHECK-LABEL: func.func @stride2
// CHECK: scf.for {{.+}} iter_args
// CHECK:   %[[A:.+]] = vector.load %arg0[%{{.+}}, %c0]
// CHECK:   %[[HI:.+]] = vector.constant_mask [7] : vector<8xi1>
// CHECK:   %[[B:.+]] = vector.maskedload %arg0[%{{.+}}, %c8], %[[HI]]
// CHECK:   vector.shuffle %[[A]], %[[B]] [0, 2, 4, 6, 8, 10, 12, 14]
// CHECK-NOT: linalg.generic
func.func @stride2(%x: memref<4x17xf32>, %w: memref<8x4xf32>, %y: memref<8x8xf32>) {
  linalg.generic {indexing_maps = [affine_map<(f, c, o) -> (c, 2 * o)>,
                                   affine_map<(f, c, o) -> (f, c)>,
                                   affine_map<(f, c, o) -> (f, o)>],
                  iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%x, %w : memref<4x17xf32>, memref<8x4xf32>) outs(%y : memref<8x8xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %o, %p : f32
    linalg.yield %s : f32
  }
  return
}

// Stride 3 along the vector dim: left to loops.
// CHECK-LABEL: func.func @stride3
// CHECK: linalg.generic
func.func @stride3(%x: memref<4x25xf32>, %w: memref<8x4xf32>, %y: memref<8x8xf32>) {
  linalg.generic {indexing_maps = [affine_map<(f, c, o) -> (c, 3 * o)>,
                                   affine_map<(f, c, o) -> (f, c)>,
                                   affine_map<(f, c, o) -> (f, o)>],
                  iterator_types = ["parallel", "reduction", "parallel"]}
      ins(%x, %w : memref<4x25xf32>, memref<8x4xf32>) outs(%y : memref<8x8xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %o, %p : f32
    linalg.yield %s : f32
  }
  return
}

// An elementwise epilogue (bias + Relu) that reads the contraction's result
// runs on the accumulators before the only store: the intermediate buffer is
// never read back, the bias (one per row) is broadcast, the residual loaded
// along the vectors.
// CHECK-LABEL: func.func @epilogue
// CHECK: scf.for {{.+}} iter_args
// CHECK: }
// CHECK: %[[B:.+]] = memref.load %arg3
// CHECK: %[[BV:.+]] = vector.broadcast %[[B]]
// CHECK: %[[R:.+]] = vector.load %arg4
// CHECK: %[[S:.+]] = arith.addf %{{.+}}, %[[BV]]
// CHECK: %[[T:.+]] = arith.addf %[[S]], %[[R]]
// CHECK: %[[U:.+]] = arith.maximumf %[[T]]
// CHECK: vector.store %[[U]], %arg5
// CHECK-NOT: linalg.generic
func.func @epilogue(%A: memref<16x8xf32>, %B: memref<8x32xf32>, %tmp: memref<16x32xf32>,
                    %bias: memref<16xf32>, %res: memref<16x32xf32>, %out: memref<16x32xf32>) {
  linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%A, %B : memref<16x8xf32>, memref<8x32xf32>) outs(%tmp : memref<16x32xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %p = arith.mulf %x, %y : f32
    %s = arith.addf %o, %p : f32
    linalg.yield %s : f32
  }
  linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i)>,
                                   affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i, j)>],
                  iterator_types = ["parallel", "parallel"]}
      ins(%tmp, %bias, %res : memref<16x32xf32>, memref<16xf32>, memref<16x32xf32>)
      outs(%out : memref<16x32xf32>) {
  ^bb0(%v: f32, %c: f32, %r: f32, %o: f32):
    %zero = arith.constant 0.0 : f32
    %s = arith.addf %v, %c : f32
    %t = arith.addf %s, %r : f32
    %u = arith.maximumf %t, %zero : f32
    linalg.yield %u : f32
  }
  return
}

// B's rows are 1200 bytes apart and 48 rows (eight tiles) share it: each 16-column tile of
// B is first copied into a contiguous panel (one row of two vectors per k,
// zeros past column 300), which the row tiles then stream.
// CHECK-LABEL: func.func @packed
// CHECK: %[[P:.+]] = memref.alloca() {alignment = 64 : i64} : memref<8x16xf32>
// CHECK: scf.for %[[N0:.+]] = %c0 to %c288 step %c16
// CHECK:   scf.for %[[K:.+]] =
// CHECK:     %[[V:.+]] = vector.load %arg1[%[[K]], %[[N0]]]
// CHECK:     vector.store %[[V]], %[[P]][%[[K]], %c0]
// CHECK:   scf.for {{.+}} step %c6
// CHECK:     scf.for %[[K2:.+]] = {{.+}} iter_args
// CHECK:       vector.load %[[P]][%[[K2]], %c0]
// CHECK:       vector.load %[[P]][%[[K2]], %c8]
// CHECK: vector.maskedload %arg1
// CHECK-NOT: linalg.generic
func.func @packed(%A: memref<48x8xf32>, %B: memref<8x300xf32>, %C: memref<48x300xf32>) {
  linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%A, %B : memref<48x8xf32>, memref<8x300xf32>) outs(%C : memref<48x300xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %p = arith.mulf %x, %y : f32
    %s = arith.addf %o, %p : f32
    linalg.yield %s : f32
  }
  return
}

// The result's zero fill is not run: the accumulators start as a broadcast
// zero instead of loads of what it stored.
// CHECK-LABEL: func.func @fill_init
// CHECK-NOT: linalg.fill
// CHECK: %[[Z:.+]] = arith.constant dense<0.000000e+00> : vector<8xf32>
// CHECK: scf.for {{.+}} iter_args(%{{.+}} = %[[Z]], %{{.+}} = %[[Z]]
// CHECK-NOT: vector.load %arg2
// CHECK: vector.store
// CHECK-NOT: linalg.fill
func.func @fill_init(%A: memref<12x8xf32>, %B: memref<8x16xf32>, %C: memref<12x16xf32>) {
  %zero = arith.constant 0.0 : f32
  linalg.fill ins(%zero : f32) outs(%C : memref<12x16xf32>)
  linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%A, %B : memref<12x8xf32>, memref<8x16xf32>) outs(%C : memref<12x16xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %p = arith.mulf %x, %y : f32
    %s = arith.addf %o, %p : f32
    linalg.yield %s : f32
  }
  return
}

// A convolution's bias broadcast into its result (one value per filter, the
// tile's rows) becomes the accumulators' first value: one scalar load and
// broadcast per row, the broadcast loop itself gone. A row vector along n
// (`%along`) is loaded as a vector.
// CHECK-LABEL: func.func @bias_init
// CHECK-NOT: linalg.generic
// CHECK: %[[B:.+]] = memref.load %arg3
// CHECK: %[[BV:.+]] = vector.broadcast %[[B]] : f32 to vector<8xf32>
// CHECK: %[[R:.+]] = vector.load %arg4
// CHECK: %[[I:.+]] = arith.addf %[[BV]], %[[R]]
// CHECK: scf.for {{.+}} iter_args(%{{.+}} = %[[I]]
// CHECK-NOT: linalg.generic
func.func @bias_init(%A: memref<6x8xf32>, %B: memref<8x16xf32>, %C: memref<6x16xf32>,
                     %bias: memref<6xf32>, %along: memref<16xf32>) {
  linalg.generic {indexing_maps = [affine_map<(i, j) -> (i)>, affine_map<(i, j) -> (j)>,
                                   affine_map<(i, j) -> (i, j)>],
                  iterator_types = ["parallel", "parallel"]}
      ins(%bias, %along : memref<6xf32>, memref<16xf32>) outs(%C : memref<6x16xf32>) {
  ^bb0(%b: f32, %r: f32, %o: f32):
    %s = arith.addf %b, %r : f32
    linalg.yield %s : f32
  }
  linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%A, %B : memref<6x8xf32>, memref<8x16xf32>) outs(%C : memref<6x16xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %p = arith.mulf %x, %y : f32
    %s = arith.addf %o, %p : f32
    linalg.yield %s : f32
  }
  return
}

// An init that reads the result itself (an accumulation into what is there)
// is not a fill: it runs, and the tile loads what it stored.
// CHECK-LABEL: func.func @accumulating_init
// CHECK: linalg.generic
// CHECK: vector.load %arg2
// CHECK: scf.for {{.+}} iter_args
func.func @accumulating_init(%A: memref<6x8xf32>, %B: memref<8x16xf32>, %C: memref<6x16xf32>) {
  linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>], iterator_types = ["parallel", "parallel"]}
      outs(%C : memref<6x16xf32>) {
  ^bb0(%o: f32):
    %s = arith.addf %o, %o : f32
    linalg.yield %s : f32
  }
  linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%A, %B : memref<6x8xf32>, memref<8x16xf32>) outs(%C : memref<6x16xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %p = arith.mulf %x, %y : f32
    %s = arith.addf %o, %p : f32
    linalg.yield %s : f32
  }
  return
}

// rhs stored as column panels (kiln-pack-constant-operands): a tile's
// vectors are loads from panel n floordiv 32 at n mod 32; 48 rows (eight tiles)
// share it, but the panel is already contiguous, so there is no copy.
// CHECK-LABEL: func.func @column_panels
// CHECK-NOT: memref.alloca
// CHECK: scf.for {{.+}} iter_args
// CHECK: vector.load %arg1[%{{.+}}, %{{.+}}, %{{.+}}] : memref<3x8x32xf32>, vector<8xf32>
// CHECK-NOT: linalg.generic
func.func @column_panels(%A: memref<48x8xf32>, %B: memref<3x8x32xf32>, %C: memref<48x90xf32>) {
  linalg.generic {indexing_maps = [#a, affine_map<(m, n, k) -> (n floordiv 32, k, n mod 32)>, #c],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%A, %B : memref<48x8xf32>, memref<3x8x32xf32>) outs(%C : memref<48x90xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %p = arith.mulf %x, %y : f32
    %s = arith.addf %o, %p : f32
    linalg.yield %s : f32
  }
  return
}

// 1600 reduction steps: the row tiles of a column strip run steps 0..511
// (accumulators from the fill), then each middle block (loading and storing
// the partial sums), then 1536..1599 (through the epilogue), so a block's
// strip stays in cache for every row tile.
// CHECK-LABEL: func.func @reduction_blocks
// CHECK: %[[Z:.+]] = arith.constant dense<0.000000e+00> : vector<8xf32>
// CHECK: scf.for %{{.+}} = %c0 to %c12 step %c6
// CHECK:   scf.for %{{.+}} = %c0 to %c512 step %c1 iter_args(%{{.+}} = %[[Z]]
// CHECK:   vector.store %{{.+}}, %arg2
// CHECK: scf.for %[[LO:.+]] = %c512 to %c1536 step %c512
// CHECK:   %[[HI:.+]] = arith.addi %[[LO]], %c512
// CHECK:   scf.for %{{.+}} = %c0 to %c12 step %c6
// CHECK:     vector.load %arg2
// CHECK:     scf.for %{{.+}} = %[[LO]] to %[[HI]] step %c1 iter_args
// CHECK:     vector.store %{{.+}}, %arg2
// CHECK: scf.for %{{.+}} = %c0 to %c12 step %c6
// CHECK:   vector.load %arg2
// CHECK:   scf.for %{{.+}} = %c1536 to %c1600 step %c1 iter_args
// CHECK:   arith.maximumf
// CHECK:   vector.store %{{.+}}, %arg3
func.func @reduction_blocks(%A: memref<12x1600xf32>, %B: memref<1600x16xf32>, %C: memref<12x16xf32>,
                            %D: memref<12x16xf32>) {
  %zero = arith.constant 0.0 : f32
  linalg.fill ins(%zero : f32) outs(%C : memref<12x16xf32>)
  linalg.generic {indexing_maps = [#a, #b, #c], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%A, %B : memref<12x1600xf32>, memref<1600x16xf32>) outs(%C : memref<12x16xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %p = arith.mulf %x, %y : f32
    %s = arith.addf %o, %p : f32
    linalg.yield %s : f32
  }
  linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i, j)>],
                  iterator_types = ["parallel", "parallel"]}
      ins(%C : memref<12x16xf32>) outs(%D : memref<12x16xf32>) {
  ^bb0(%v: f32, %o: f32):
    %z = arith.constant 0.0 : f32
    %r = arith.maximumf %v, %z : f32
    linalg.yield %r : f32
  }
  return
}
