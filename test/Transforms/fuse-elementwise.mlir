// RUN: kiln-opt %s --kiln-fuse-elementwise --split-input-file | FileCheck %s

// A 1x1 convolution computed over the flattened image ([N, G, F, H*W]) and
// viewed back as [N, G*F, H, W] (no single reshape does that): the residual Add + Relu moves into the
// matmul's shape, reads its result directly and views the residual and its
// own result instead.
#mm_x = affine_map<(n, g, f, p, c) -> (c, p)>
#mm_w = affine_map<(n, g, f, p, c) -> (f, c)>
#mm_o = affine_map<(n, g, f, p, c) -> (n, g, f, p)>
#id = affine_map<(n, f, h, w) -> (n, f, h, w)>
// CHECK-LABEL: func.func @residual_through_reshape
// CHECK-SAME: (%[[X:.*]]: tensor<8x6xf32>, %[[W:.*]]: tensor<4x8xf32>, %[[R:.*]]: tensor<1x4x2x3xf32>)
// CHECK: %[[MM:.*]] = linalg.generic {{.*}}"reduction"
// CHECK: %[[RF:.*]] = tensor.collapse_shape %[[R]] {{\[\[}}0, 1, 2, 3]] : tensor<1x4x2x3xf32> into tensor<24xf32>
// CHECK: %[[RV:.*]] = tensor.expand_shape %[[RF]] {{\[\[}}0, 1, 2, 3]] output_shape [1, 1, 4, 6]
// CHECK: %[[EPI:.*]] = linalg.generic {{.*}} ins(%[[MM]], %[[RV]] : tensor<1x1x4x6xf32>, tensor<1x1x4x6xf32>)
// CHECK: arith.addf
// CHECK: arith.maximumf
// CHECK: %[[FLAT:.*]] = tensor.collapse_shape %[[EPI]]
// CHECK: %[[Y:.*]] = tensor.expand_shape %[[FLAT]] {{\[\[}}0, 1, 2, 3]] output_shape [1, 4, 2, 3]
// CHECK: return %[[Y]]
func.func @residual_through_reshape(%x: tensor<8x6xf32>, %w: tensor<4x8xf32>,
                                    %r: tensor<1x4x2x3xf32>) -> tensor<1x4x2x3xf32> {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<1x1x4x6xf32>
  %init = linalg.fill ins(%zero : f32) outs(%e : tensor<1x1x4x6xf32>) -> tensor<1x1x4x6xf32>
  %mm = linalg.generic {indexing_maps = [#mm_x, #mm_w, #mm_o],
                        iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %w : tensor<8x6xf32>, tensor<4x8xf32>) outs(%init : tensor<1x1x4x6xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %s = arith.addf %acc, %m : f32
    linalg.yield %s : f32
  } -> tensor<1x1x4x6xf32>
  %flat = tensor.collapse_shape %mm [[0, 1, 2, 3]] : tensor<1x1x4x6xf32> into tensor<24xf32>
  %img = tensor.expand_shape %flat [[0, 1, 2, 3]] output_shape [1, 4, 2, 3]
      : tensor<24xf32> into tensor<1x4x2x3xf32>
  %e2 = tensor.empty() : tensor<1x4x2x3xf32>
  %y = linalg.generic {indexing_maps = [#id, #id, #id],
                       iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%img, %r : tensor<1x4x2x3xf32>, tensor<1x4x2x3xf32>) outs(%e2 : tensor<1x4x2x3xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %s = arith.addf %a, %b : f32
    %m = arith.maximumf %s, %zero : f32
    linalg.yield %m : f32
  } -> tensor<1x4x2x3xf32>
  return %y : tensor<1x4x2x3xf32>
}

// -----

// Two contractions feed the Add, one directly and one through reshapes:
// it stays where it reads one directly (only one can take it as its
// epilogue), and the expansion patterns leave it there.
#mm_x = affine_map<(n, g, f, p, c) -> (c, p)>
#mm_w = affine_map<(n, g, f, p, c) -> (f, c)>
#mm_o = affine_map<(n, g, f, p, c) -> (n, g, f, p)>
#cv_x = affine_map<(n, f, h, w, c) -> (c, h, w)>
#cv_w = affine_map<(n, f, h, w, c) -> (f, c)>
#cv_o = affine_map<(n, f, h, w, c) -> (n, f, h, w)>
#id = affine_map<(n, f, h, w) -> (n, f, h, w)>
// CHECK-LABEL: func.func @two_contractions
// CHECK: %[[A:.*]] = linalg.generic {{.*}}"reduction"
// CHECK: %[[B:.*]] = linalg.generic {{.*}}"reduction"
// CHECK: %[[AF:.*]] = tensor.collapse_shape %[[A]]
// CHECK: %[[AV:.*]] = tensor.expand_shape %[[AF]] {{\[\[}}0, 1, 2, 3]] output_shape [1, 4, 2, 3]
// CHECK: linalg.generic {{.*}} ins(%[[AV]], %[[B]] : tensor<1x4x2x3xf32>, tensor<1x4x2x3xf32>)
func.func @two_contractions(%x: tensor<8x6xf32>, %w: tensor<4x8xf32>,
                            %x3: tensor<8x2x3xf32>) -> tensor<1x4x2x3xf32> {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<1x1x4x6xf32>
  %init = linalg.fill ins(%zero : f32) outs(%e : tensor<1x1x4x6xf32>) -> tensor<1x1x4x6xf32>
  %a = linalg.generic {indexing_maps = [#mm_x, #mm_w, #mm_o],
                       iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %w : tensor<8x6xf32>, tensor<4x8xf32>) outs(%init : tensor<1x1x4x6xf32>) {
  ^bb0(%p: f32, %q: f32, %acc: f32):
    %m = arith.mulf %p, %q : f32
    %s = arith.addf %acc, %m : f32
    linalg.yield %s : f32
  } -> tensor<1x1x4x6xf32>
  %e4 = tensor.empty() : tensor<1x4x2x3xf32>
  %init4 = linalg.fill ins(%zero : f32) outs(%e4 : tensor<1x4x2x3xf32>) -> tensor<1x4x2x3xf32>
  %b = linalg.generic {indexing_maps = [#cv_x, #cv_w, #cv_o],
                       iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%x3, %w : tensor<8x2x3xf32>, tensor<4x8xf32>) outs(%init4 : tensor<1x4x2x3xf32>) {
  ^bb0(%p: f32, %q: f32, %acc: f32):
    %m = arith.mulf %p, %q : f32
    %s = arith.addf %acc, %m : f32
    linalg.yield %s : f32
  } -> tensor<1x4x2x3xf32>
  %flat = tensor.collapse_shape %a [[0, 1, 2, 3]] : tensor<1x1x4x6xf32> into tensor<24xf32>
  %av = tensor.expand_shape %flat [[0, 1, 2, 3]] output_shape [1, 4, 2, 3]
      : tensor<24xf32> into tensor<1x4x2x3xf32>
  %y = linalg.generic {indexing_maps = [#id, #id, #id],
                       iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
      ins(%av, %b : tensor<1x4x2x3xf32>, tensor<1x4x2x3xf32>) outs(%e4 : tensor<1x4x2x3xf32>) {
  ^bb0(%p: f32, %q: f32, %o: f32):
    %s = arith.addf %p, %q : f32
    linalg.yield %s : f32
  } -> tensor<1x4x2x3xf32>
  return %y : tensor<1x4x2x3xf32>
}
