# Fails when any C source or header differs from clang-format's output.
file(GLOB_RECURSE files ${ROOT}/src/*.c ${ROOT}/src/*.h ${ROOT}/include/*.h
     ${ROOT}/tests/unit/*.c ${ROOT}/tests/unit/*.h ${ROOT}/tests/fuzz/*.c ${ROOT}/tests/bench/*.c)
set(bad "")
foreach(f IN LISTS files)
  execute_process(COMMAND ${CLANG_FORMAT} --style=file --dry-run --Werror ${f}
                  RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
  if(NOT rc EQUAL 0)
    list(APPEND bad ${f})
  endif()
endforeach()
if(bad)
  string(REPLACE ";" "\n  " lst "${bad}")
  message(FATAL_ERROR "not clang-formatted (run clang-format -i on them):\n  ${lst}")
endif()
list(LENGTH files n)
message(STATUS "${n} files formatted")
