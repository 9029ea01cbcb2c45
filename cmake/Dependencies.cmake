# Finds the engines (ggml, llama, mtmd, whisper) and the Debian -dev libraries.
#
# Default: scripts/deps.sh builds llama.cpp and whisper.cpp from pinned sources into a versioned
# cache (a no-op when the cache is warm) and prints its prefix, which is searched first.
# With -DMMSERVE_SYSTEM_DEPS=ON, an installed llama.cpp/whisper.cpp is used instead: point
# CMAKE_PREFIX_PATH at it. libmtmd installs no CMake package, so it is imported by hand here.

if(NOT MMSERVE_SYSTEM_DEPS)
  set(_deps_env "")
  if(MMSERVE_PORTABLE)
    list(APPEND _deps_env MMSERVE_PORTABLE=1)
  endif()
  if(MMSERVE_CUDA)
    list(APPEND _deps_env MMSERVE_CUDA=1)
  endif()
  execute_process(
    COMMAND ${CMAKE_COMMAND} -E env ${_deps_env} MMSERVE_NO_APT=1 ${CMAKE_CURRENT_SOURCE_DIR}/scripts/deps.sh
    OUTPUT_VARIABLE _deps_out
    RESULT_VARIABLE _deps_rc
    OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT _deps_rc EQUAL 0)
    message(FATAL_ERROR "scripts/deps.sh failed (exit ${_deps_rc}); see its output above")
  endif()
  string(REGEX REPLACE ".*\n" "" MMSERVE_DEPS_PREFIX "${_deps_out}")
  message(STATUS "mmserve: engines from ${MMSERVE_DEPS_PREFIX}")
  # A new prefix (other versions or flags) invalidates every path found in the old one.
  if(DEFINED CACHE{MMSERVE_LAST_DEPS_PREFIX} AND NOT MMSERVE_LAST_DEPS_PREFIX STREQUAL MMSERVE_DEPS_PREFIX)
    get_cmake_property(_cache_vars CACHE_VARIABLES)
    foreach(_var IN LISTS _cache_vars)
      if("${${_var}}" MATCHES "^${MMSERVE_LAST_DEPS_PREFIX}")
        unset(${_var} CACHE)
      endif()
    endforeach()
  endif()
  set(MMSERVE_LAST_DEPS_PREFIX "${MMSERVE_DEPS_PREFIX}" CACHE INTERNAL "")
  list(PREPEND CMAKE_PREFIX_PATH "${MMSERVE_DEPS_PREFIX}")
  set(MMSERVE_ENGINE_SOURCES "${MMSERVE_DEPS_PREFIX}/src" CACHE INTERNAL "pinned engine sources")
endif()

find_package(ggml REQUIRED)
find_package(llama REQUIRED)
find_package(whisper REQUIRED)

find_library(MTMD_LIBRARY mtmd HINTS ${CMAKE_PREFIX_PATH} PATH_SUFFIXES lib REQUIRED)
find_path(MTMD_INCLUDE_DIR mtmd.h HINTS ${CMAKE_PREFIX_PATH} PATH_SUFFIXES include REQUIRED)
add_library(mtmd SHARED IMPORTED)
set_target_properties(mtmd PROPERTIES
  IMPORTED_LOCATION "${MTMD_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${MTMD_INCLUDE_DIR}"
  INTERFACE_LINK_LIBRARIES "llama;ggml::ggml")

# llama.cpp's common library (scripts/deps.sh installs it by hand: llama.cpp exports no package
# for it): Jinja chat templates, JSON-schema-to-grammar, tool-call and reasoning parsers. Only
# engine/chat_format.cpp includes its headers (their JSON type is a pimpl: no nlohmann inside).
find_library(LLAMA_COMMON_LIBRARY llama-common HINTS ${CMAKE_PREFIX_PATH} PATH_SUFFIXES lib REQUIRED)
find_library(LLAMA_COMMON_BASE_LIBRARY NAMES libllama-common-base.a HINTS ${CMAKE_PREFIX_PATH}
             PATH_SUFFIXES lib REQUIRED)
find_path(LLAMA_COMMON_INCLUDE_DIR chat.h HINTS ${CMAKE_PREFIX_PATH}
          PATH_SUFFIXES include/llama-common REQUIRED)
add_library(llama_common SHARED IMPORTED)
set_target_properties(llama_common PROPERTIES
  IMPORTED_LOCATION "${LLAMA_COMMON_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${LLAMA_COMMON_INCLUDE_DIR}"
  INTERFACE_LINK_LIBRARIES "${LLAMA_COMMON_BASE_LIBRARY};llama;ggml::ggml")

find_package(Threads REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(PkgConfig REQUIRED)
# cpp-httplib 0.57.1, the copy the pinned llama.cpp tree vendors (llama-server's own HTTP
# library), built by src/CMakeLists.txt as mmserve_httplib. Debian's 0.11.4 cannot tell a
# handler that its client closed the connection (Request::is_connection_closed), which a
# non-streamed request needs to be cancelled when its client leaves, and lacks four years of
# fixes. With MMSERVE_SYSTEM_DEPS, point MMSERVE_HTTPLIB_DIR at a cpp-httplib >= 0.20 tree in
# its split form (httplib.h + httplib.cpp).
if(NOT MMSERVE_SYSTEM_DEPS)
  set(MMSERVE_HTTPLIB_DIR "${MMSERVE_ENGINE_SOURCES}/llama.cpp/vendor/cpp-httplib" CACHE PATH
      "cpp-httplib source (httplib.h, httplib.cpp)" FORCE)
endif()
if(NOT EXISTS "${MMSERVE_HTTPLIB_DIR}/httplib.cpp")
  message(FATAL_ERROR "cpp-httplib not found at MMSERVE_HTTPLIB_DIR='${MMSERVE_HTTPLIB_DIR}': "
                      "set it to a cpp-httplib >= 0.20 tree holding httplib.h and httplib.cpp")
endif()
find_package(OpenSSL 3 REQUIRED)  # https image fetches; TLS
find_package(ZLIB REQUIRED)
