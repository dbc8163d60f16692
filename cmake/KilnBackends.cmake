# Each backends/<name>/ folder contributes its halves through these; the core
# never names a backend. The runtime and the compiler each generate a small
# table from what was registered.
#   kiln_add_compiler_backend(<lib> <fn>)  <lib> defines `void <fn>()` that
#                                          registers its kiln::TargetBackend.
#   kiln_add_runtime_driver(<lib> <fn>)    <lib> defines
#                                          `const kiln_driver *<fn>(void)`.
#   kiln_add_conformance_test(<name> [TIMEOUT <s>] ARGS <args>...)
#                                          a ctest entry <name> running ONNX's
#                                          backend tests through
#                                          test/conformance/run.py <args>
#                                          (test/CMakeLists.txt adds them).
define_property(GLOBAL PROPERTY KILN_COMPILER_BACKENDS BRIEF_DOCS "libs" FULL_DOCS "libs")
define_property(GLOBAL PROPERTY KILN_COMPILER_BACKEND_FNS BRIEF_DOCS "fns" FULL_DOCS "fns")
define_property(GLOBAL PROPERTY KILN_RUNTIME_DRIVERS BRIEF_DOCS "libs" FULL_DOCS "libs")
define_property(GLOBAL PROPERTY KILN_RUNTIME_DRIVER_FNS BRIEF_DOCS "fns" FULL_DOCS "fns")

function(kiln_add_compiler_backend lib fn)
  set_property(GLOBAL APPEND PROPERTY KILN_COMPILER_BACKENDS ${lib})
  set_property(GLOBAL APPEND PROPERTY KILN_COMPILER_BACKEND_FNS ${fn})
endfunction()

function(kiln_add_runtime_driver lib fn)
  set_property(GLOBAL APPEND PROPERTY KILN_RUNTIME_DRIVERS ${lib})
  set_property(GLOBAL APPEND PROPERTY KILN_RUNTIME_DRIVER_FNS ${fn})
endfunction()

function(kiln_add_conformance_test name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "TIMEOUT" "ARGS")
  set_property(GLOBAL APPEND PROPERTY KILN_CONFORMANCE_TESTS ${name})
  set_property(GLOBAL PROPERTY KILN_CONFORMANCE_ARGS_${name} ${arg_ARGS})
  set_property(GLOBAL PROPERTY KILN_CONFORMANCE_TIMEOUT_${name} ${arg_TIMEOUT})
endfunction()
