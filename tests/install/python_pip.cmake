# SPDX-License-Identifier: Apache-2.0
# ctest python/pip-install: the binding installs with pip from the repository
# (no network: --no-build-isolation uses the system's setuptools) and the
# installed copy loads the built libsealpost.
# -DPYTHON=python3 -DSOURCE_DIR=the repository -DWORK_DIR=scratch -DLIB=libsealpost.so
file(REMOVE_RECURSE ${WORK_DIR})
execute_process(COMMAND ${PYTHON} -m pip install --no-build-isolation --no-deps --quiet
                        --target ${WORK_DIR} ${SOURCE_DIR}/bindings/python
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "pip install of bindings/python failed (${rc})")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -E env PYTHONPATH=${WORK_DIR} SEALPOST_LIB=${LIB}
                        PYTHONDONTWRITEBYTECODE=1
                        ${PYTHON} -c "import sealpost, sys; sys.stdout.write(sealpost.__file__ + ' ' + sealpost.version())"
                WORKING_DIRECTORY ${WORK_DIR}
                OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR NOT out MATCHES "^${WORK_DIR}/sealpost/__init__.py [0-9]+\\.[0-9]+\\.[0-9]+$")
  message(FATAL_ERROR "the installed binding did not load (${rc}): ${out}")
endif()
message(STATUS "installed and loaded: ${out}")
file(REMOVE_RECURSE ${WORK_DIR})
