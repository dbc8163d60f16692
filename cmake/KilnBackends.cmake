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
#   kiln_add_unit_tests(<binary> <sources>... [LIBS <libs>...])
#                                          GoogleTest sources of the backend's
#                                          own (and what they link) for one of
#                                          test/unit's binaries:
#                                          kiln-runtime-tests,
#                                          kiln-gpu-driver-tests or
#                                          kiln-driver-conformance-tests.
#   kiln_add_mock_gpu(<lib> <sources>...)  builds <lib>, a stand-in for the
#                                          vendor library the backend's driver
#                                          dlopens (test/unit/MockGpu.h), that
#                                          test/unit's GPU suites run it with.
# The test functions only record: test/ is added after the backends.
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

function(kiln_add_unit_tests binary)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "LIBS")
  # Absolute: the sources join a target in another directory.
  set(sources "")
  foreach(source IN LISTS arg_UNPARSED_ARGUMENTS)
    get_filename_component(source ${source} ABSOLUTE)
    list(APPEND sources ${source})
  endforeach()
  set_property(GLOBAL APPEND PROPERTY KILN_UNIT_TESTS_${binary} ${sources})
  set_property(GLOBAL APPEND PROPERTY KILN_UNIT_LIBS_${binary} ${arg_LIBS})
endfunction()

function(kiln_add_mock_gpu lib)
  add_library(${lib} SHARED ${ARGN})
  target_include_directories(${lib} PRIVATE ${PROJECT_SOURCE_DIR}/test/unit
                                            ${PROJECT_SOURCE_DIR}/runtime/driver)
  # Only the vendor's entry points and the kiln_mock_* record are exported,
  # as from the real library. Kept out of lib/, where the runtime is.
  set_target_properties(${lib} PROPERTIES
    CXX_VISIBILITY_PRESET hidden
    LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/test/unit)
  set_property(GLOBAL APPEND PROPERTY KILN_MOCK_GPUS ${lib})
endfunction()
