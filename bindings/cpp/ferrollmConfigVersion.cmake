# Version check for find_package(ferrollm <version>): before 1.0, a minor version change may break
# the API, so the major and minor versions must match and the patch may be newer.
set(PACKAGE_VERSION "0.1.0")
if(PACKAGE_FIND_VERSION)
  if(PACKAGE_FIND_VERSION_MAJOR EQUAL 0 AND PACKAGE_FIND_VERSION_MINOR EQUAL 1
      AND NOT PACKAGE_FIND_VERSION VERSION_GREATER PACKAGE_VERSION)
    set(PACKAGE_VERSION_COMPATIBLE TRUE)
    if(PACKAGE_FIND_VERSION VERSION_EQUAL PACKAGE_VERSION)
      set(PACKAGE_VERSION_EXACT TRUE)
    endif()
  else()
    set(PACKAGE_VERSION_COMPATIBLE FALSE)
  endif()
else()
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
endif()
