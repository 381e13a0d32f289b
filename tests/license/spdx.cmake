# SPDX-License-Identifier: Apache-2.0
# ctest license/spdx: every source, build and script file in the tree names
# its licence in an SPDX-License-Identifier line near its top.
# -DSOURCE_DIR=the repository
file(GLOB_RECURSE files RELATIVE ${SOURCE_DIR}
  ${SOURCE_DIR}/*.c ${SOURCE_DIR}/*.h ${SOURCE_DIR}/*.def ${SOURCE_DIR}/*.proto
  ${SOURCE_DIR}/*.cmake ${SOURCE_DIR}/*.in ${SOURCE_DIR}/*.map ${SOURCE_DIR}/*.sh
  ${SOURCE_DIR}/*.py ${SOURCE_DIR}/*.js ${SOURCE_DIR}/*.service ${SOURCE_DIR}/*.conf
  ${SOURCE_DIR}/CMakeLists.txt)
set(missing "")
set(n 0)
foreach(f ${files})
  # Build trees, dependencies fetched by tools and generated files are not ours.
  if(f MATCHES "^(build[^/]*|b|debian/\\.debhelper|node_modules|.*/node_modules)/" OR f MATCHES "/node_modules/")
    continue()
  endif()
  math(EXPR n "${n} + 1")
  file(READ ${SOURCE_DIR}/${f} head LIMIT 400)
  if(NOT head MATCHES "SPDX-License-Identifier: ")
    list(APPEND missing ${f})
  endif()
endforeach()
if(missing)
  string(REPLACE ";" "\n  " lst "${missing}")
  message(FATAL_ERROR "no SPDX-License-Identifier in:\n  ${lst}")
endif()
message(STATUS "${n} files name their licence")
