# SPDX-License-Identifier: Apache-2.0
# ctest build/client-only: configure and build the SEALPOST_CLIENT_ONLY tree
# (libsealpost shared and static, the CLI), check that none of the broker's
# dependencies was looked up, and that the CLI runs.
# -DSOURCE_DIR=... -DWORK_DIR=... -DCC=...
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(OUT "${out}" PARENT_SCOPE)
endfunction()

run(${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${WORK_DIR}" -DSEALPOST_CLIENT_ONLY=ON
    "-DCMAKE_C_COMPILER=${CC}")
file(READ "${WORK_DIR}/CMakeCache.txt" cache)
foreach(dep URING ROCKSDB CMOCKA JANSSON MHD INIH)
  if(cache MATCHES "(^|\n)${dep}_")
    message(FATAL_ERROR "the client-only build looked up ${dep}")
  endif()
endforeach()
run(${CMAKE_COMMAND} --build "${WORK_DIR}" -j2)
foreach(f lib/libsealpost.so lib/libsealpost.a bin/sealpost)
  if(NOT EXISTS "${WORK_DIR}/${f}")
    message(FATAL_ERROR "client-only build made no ${f}")
  endif()
endforeach()
if(EXISTS "${WORK_DIR}/bin/sealpostd")
  message(FATAL_ERROR "client-only build built the broker")
endif()
run("${WORK_DIR}/bin/sealpost" --help)
if(NOT OUT MATCHES "keygen")
  message(FATAL_ERROR "sealpost --help printed no command list:\n${OUT}")
endif()
# Its install: the library, the CLI and the CLI's manual page; no daemon.
run(${CMAKE_COMMAND} --install "${WORK_DIR}" --prefix "${WORK_DIR}/prefix")
foreach(f bin/sealpost include/sealpost.h share/man/man1/sealpost.1)
  if(NOT EXISTS "${WORK_DIR}/prefix/${f}")
    message(FATAL_ERROR "client-only install has no ${f}")
  endif()
endforeach()
if(EXISTS "${WORK_DIR}/prefix/bin/sealpostd" OR EXISTS "${WORK_DIR}/prefix/lib/systemd")
  message(FATAL_ERROR "client-only install installed the daemon or its unit")
endif()
