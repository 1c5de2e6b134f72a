# The header-only libraries the build needs, as imported targets:
#   deformscope::json   nlohmann-json (JSON everywhere)
#   deformscope::cli11  CLI11 (the command line)
#
# Looked for, in order: the installed packages (Debian's nlohmann-json3-dev and
# libcli11-dev, which tools/bootstrap installs); a folder of headers named by
# DEFORMSCOPE_HEADERS (it holds nlohmann/json.hpp and CLI/CLI.hpp: tools/headers
# fills one from this machine, and tools/gpu_check uses it on GPU machines that
# have neither the packages nor internet); for nlohmann-json also PyPI's
# nlohmann-json package in DEFORMSCOPE_PYTHON's environment. Nothing
# third-party is kept in the tree.

set(DEFORMSCOPE_HEADERS "$ENV{DEFORMSCOPE_HEADERS}" CACHE PATH
    "A folder with nlohmann/json.hpp and CLI/CLI.hpp, for machines without the Debian packages")

# deformscope_header_library(NAME PACKAGE VERSION IMPORTED HEADER INSTALL [HINTS...])
# defines deformscope::NAME from find_package(PACKAGE) when it gives IMPORTED,
# else from the folder holding HEADER among HINTS; INSTALL says how to get it.
function(deformscope_header_library name package version imported header install)
    add_library(deformscope_${name} INTERFACE)
    add_library(deformscope::${name} ALIAS deformscope_${name})
    find_package(${package} ${version} CONFIG QUIET)
    if(TARGET ${imported})
        target_link_libraries(deformscope_${name} INTERFACE ${imported})
        return()
    endif()
    find_path(DEFORMSCOPE_${name}_INCLUDE ${header} HINTS ${ARGN})
    if(NOT DEFORMSCOPE_${name}_INCLUDE)
        message(FATAL_ERROR "DeformScope: ${header} not found. ${install}, or set DEFORMSCOPE_HEADERS to a folder "
                            "holding it (tools/headers makes one).")
    endif()
    target_include_directories(deformscope_${name} SYSTEM INTERFACE "${DEFORMSCOPE_${name}_INCLUDE}")
endfunction()

set(_json_hints "${DEFORMSCOPE_HEADERS}")
if(DEFORMSCOPE_PYTHON)
    execute_process(
        COMMAND "${DEFORMSCOPE_PYTHON}" -c
            "import nlohmann_json, os; print(os.path.join(os.path.dirname(nlohmann_json.__file__), 'include'))"
        OUTPUT_VARIABLE _json_python_include OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    list(APPEND _json_hints "${_json_python_include}")
endif()
deformscope_header_library(json nlohmann_json 3.10 nlohmann_json::nlohmann_json nlohmann/json.hpp
    "Install Debian's nlohmann-json3-dev (tools/bootstrap does) or `pip install nlohmann-json` into DEFORMSCOPE_PYTHON's environment"
    ${_json_hints})
deformscope_header_library(cli11 CLI11 2.1 CLI11::CLI11 CLI/CLI.hpp
    "Install Debian's libcli11-dev (tools/bootstrap does)"
    "${DEFORMSCOPE_HEADERS}")
