# check_layering.cmake: fails when the source tree under ROOT breaks the layering of
# docs/design.md ("Layout"), from two sides:
# - includes: the launch path (runtime/*.cpp|hpp, not runtime/harness/) includes neither the
#   harness (runtime/harness/) nor the oracle (compiler/reference/); the compiler
#   (compiler/*.cpp|hpp) includes neither the oracle nor the runtime; the oracle includes only
#   itself and the spec library's headers (spec, activation table, hash).
# - links: LINK_CLOSURE_<target> (comma-separated lists computed at configure time, when given) holds
#   no forbidden library for that target.
# Usage: cmake -DROOT=<tree> [-DLINK_CLOSURE_tttc_runtime=...] -P check_layering.cmake
cmake_minimum_required(VERSION 3.21)
if(NOT ROOT)
  message(FATAL_ERROR "check_layering: pass -DROOT=<source tree>")
endif()
set(_violations "")

# _forbid(GLOB... REGEX r WHY text): every #include line of the globbed files matching r is a
# violation.
function(_forbid)
  cmake_parse_arguments(F "" "REGEX;WHY" "GLOBS" ${ARGN})
  file(GLOB _files LIST_DIRECTORIES false ${F_GLOBS})
  foreach(f ${_files})
    file(STRINGS ${f} _lines REGEX "^[ \t]*#[ \t]*include[ \t]*\"")
    foreach(line ${_lines})
      string(REGEX MATCH "\"([^\"]+)\"" _ "${line}")
      set(inc "${CMAKE_MATCH_1}")
      if(inc MATCHES "${F_REGEX}")
        file(RELATIVE_PATH rel ${ROOT} ${f})
        list(APPEND _violations "${rel} includes \"${inc}\": ${F_WHY}")
      endif()
    endforeach()
  endforeach()
  set(_violations "${_violations}" PARENT_SCOPE)
endfunction()

_forbid(GLOBS ${ROOT}/runtime/*.cpp ${ROOT}/runtime/*.hpp
        REGEX "^(runtime/harness/|compiler/reference/)"
        WHY "the launch path must not depend on the checking harness or the CPU reference")
_forbid(GLOBS ${ROOT}/compiler/*.cpp ${ROOT}/compiler/*.hpp
        REGEX "^(compiler/reference/|runtime/)"
        WHY "the compiler must not depend on the CPU reference or the runtime")
_forbid(GLOBS ${ROOT}/compiler/reference/*.cpp ${ROOT}/compiler/reference/*.hpp
        REGEX "^(compiler/[^/]+|runtime/.*|cache/.*|autotune/.*|templates/.*)$"
        WHY "the CPU reference may include only itself and the spec library's headers")
# The exception to the last rule: the spec library's own headers.
list(FILTER _violations EXCLUDE REGEX
     "^compiler/reference/[^ ]+ includes \"compiler/(spec|activation|hash)\\.hpp\"")

# Link closures: target -> libraries it must never reach.
set(_forbidden_tttc_runtime tttc_reference tttc_harness)
set(_forbidden_tttc_compiler tttc_reference tttc_harness tttc_runtime)
set(_forbidden_tttc_reference tttc_compiler tttc_runtime tttc_harness)
foreach(t tttc_runtime tttc_compiler tttc_reference)
  if(DEFINED LINK_CLOSURE_${t})
    string(REPLACE "," ";" LINK_CLOSURE_${t} "${LINK_CLOSURE_${t}}")
    foreach(bad ${_forbidden_${t}})
      if(bad IN_LIST LINK_CLOSURE_${t})
        list(APPEND _violations "${t} links ${bad} (its link closure: ${LINK_CLOSURE_${t}})")
      endif()
    endforeach()
  endif()
endforeach()

if(_violations)
  list(JOIN _violations "\n  " _text)
  message(FATAL_ERROR "layering violations:\n  ${_text}")
endif()
message(STATUS "layering: no violations under ${ROOT}")
