# ferrollmConfig.cmake — find_package(ferrollm) for a ferrollm source checkout.
#
#   find_package(ferrollm CONFIG REQUIRED)   # with -Dferrollm_DIR=<repo>/bindings/cpp
#   target_link_libraries(app PRIVATE ferrollm::cpp)        # C++17: ferrollm.hpp
#   target_link_libraries(tool PRIVATE ferrollm::ferrollm)  # C: ferrollm.h
#
# Imported targets:
#   ferrollm::ferrollm  the shared library libferrollm and include/ferrollm.h
#   ferrollm::cpp       ferrollm::ferrollm plus bindings/cpp/ferrollm.hpp, requiring C++17
#
# The library is FERROLLM_LIBRARY if set, else libferrollm in target/release, then target/debug
# (build it first with `cargo build --release` or `cargo build`). The build tree gets an rpath to
# its folder.

get_filename_component(_ferrollm_root "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)

if(NOT FERROLLM_LIBRARY)
  find_library(FERROLLM_LIBRARY
    NAMES ferrollm
    PATHS "${_ferrollm_root}/target/release" "${_ferrollm_root}/target/debug"
    NO_DEFAULT_PATH)
endif()

if(NOT FERROLLM_LIBRARY OR NOT EXISTS "${FERROLLM_LIBRARY}")
  set(ferrollm_FOUND FALSE)
  set(ferrollm_NOT_FOUND_MESSAGE
    "libferrollm was not found in ${_ferrollm_root}/target/release or target/debug; run `cargo build` there or set FERROLLM_LIBRARY")
  return()
endif()

if(NOT TARGET ferrollm::ferrollm)
  add_library(ferrollm::ferrollm SHARED IMPORTED)
  set_target_properties(ferrollm::ferrollm PROPERTIES
    IMPORTED_LOCATION "${FERROLLM_LIBRARY}"
    # The cdylib has no SONAME: link it as -lferrollm so the executable records its name, not the path.
    IMPORTED_NO_SONAME TRUE
    INTERFACE_INCLUDE_DIRECTORIES "${_ferrollm_root}/include")
endif()

if(NOT TARGET ferrollm::cpp)
  add_library(ferrollm::cpp INTERFACE IMPORTED)
  set_target_properties(ferrollm::cpp PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${_ferrollm_root}/bindings/cpp"
    INTERFACE_LINK_LIBRARIES ferrollm::ferrollm
    INTERFACE_COMPILE_FEATURES cxx_std_17)
endif()

set(ferrollm_FOUND TRUE)
unset(_ferrollm_root)
