# SPDX-License-Identifier: Apache-2.0
# ctest install/consumer: cmake --install the build tree into a fresh prefix,
# then build and run tests/install/consumer.c against that copy only, with
# pkg-config (shared and --static) and with find_package (both targets).
# -DBUILD_DIR=... -DSOURCE_DIR=... -DWORK_DIR=... -DCC=...
cmake_minimum_required(VERSION 3.22)

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(OUT "${out}" PARENT_SCOPE)
endfunction()

# A prefix with a space and depth, so nothing may assume the configured one.
set(prefix "${WORK_DIR}/pre fix/opt")
file(REMOVE_RECURSE "${WORK_DIR}")
run(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${prefix}")
foreach(f include/sealpost.h)
  if(NOT EXISTS "${prefix}/${f}")
    message(FATAL_ERROR "not installed: ${f}")
  endif()
endforeach()
file(GLOB_RECURSE pcs "${prefix}/*/sealpost.pc")
file(GLOB_RECURSE cfgs "${prefix}/*/sealpostConfig.cmake")
file(GLOB_RECURSE libs "${prefix}/*/libsealpost.so.0" "${prefix}/*/libsealpost.a")
list(LENGTH libs nlibs)
if(NOT pcs OR NOT cfgs OR NOT nlibs EQUAL 2)
  message(FATAL_ERROR "incomplete install: pc=${pcs} config=${cfgs} libs=${libs}")
endif()
get_filename_component(pcdir "${pcs}" DIRECTORY)
get_filename_component(libdir "${pcdir}" DIRECTORY)

# pkg-config, the way an app's Makefile does it.
set(ENV{PKG_CONFIG_PATH} "${pcdir}")
foreach(kind shared static)
  if(kind STREQUAL "static")
    run(pkg-config --cflags --libs --static sealpost)
  else()
    run(pkg-config --cflags --libs sealpost)
  endif()
  string(STRIP "${OUT}" flags)
  separate_arguments(flags UNIX_COMMAND "${flags}")
  if(kind STREQUAL "static")
    # -l prefers the .so; name the archive the .pc file's libdir holds.
    list(TRANSFORM flags REPLACE "^-lsealpost$" "${libdir}/libsealpost.a")
  endif()
  set(exe "${WORK_DIR}/pc_${kind}")
  run(${CC} -o "${exe}" "${SOURCE_DIR}/tests/install/consumer.c" ${flags})
  set(ENV{LD_LIBRARY_PATH} "${libdir}")
  run("${exe}")
  message(STATUS "pkg-config ${kind}: ${OUT}")
endforeach()

# find_package, the way an app's CMakeLists.txt does it.
run(${CMAKE_COMMAND} -S "${SOURCE_DIR}/tests/install" -B "${WORK_DIR}/app"
    "-DCMAKE_PREFIX_PATH=${prefix}" "-DCMAKE_C_COMPILER=${CC}")
run(${CMAKE_COMMAND} --build "${WORK_DIR}/app")
foreach(exe consumer_shared consumer_static)
  run("${WORK_DIR}/app/${exe}")
  message(STATUS "find_package ${exe}: ${OUT}")
endforeach()
