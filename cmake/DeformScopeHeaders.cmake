# The header-only libraries the build needs, as imported targets:
#   deformscope::json   nlohmann-json (JSON everywhere)
#   deformscope::cli11  CLI11 (the command line)
#
# Looked for, in order: the installed packages (Debian's nlohmann-json3-dev and
# libcli11-dev, which tools/bootstrap installs); a folder of headers named by
# DEFORMSCOPE_HEADERS (it holds nlohmann/json.hpp and CLI/CLI.hpp: tools/gpu_check
# fills one from this machine and carries it to GPU machines that have neither
# the packages nor internet); for nlohmann-json also PyPI's nlohmann-json package
# in DEFORMSCOPE_PYTHON's environment. Nothing third-party is kept in the tree.

set(DEFORMSCOPE_HEADERS "$ENV{DEFORMSCOPE_HEADERS}" CACHE PATH
    "A folder with nlohmann/json.hpp and CLI/CLI.hpp, for machines without the Debian packages")

add_library(deformscope_json INTERFACE)
add_library(deformscope::json ALIAS deformscope_json)
find_package(nlohmann_json 3.10 CONFIG QUIET)
if(TARGET nlohmann_json::nlohmann_json)
    target_link_libraries(deformscope_json INTERFACE nlohmann_json::nlohmann_json)
else()
    set(_json_hints "${DEFORMSCOPE_HEADERS}")
    if(DEFORMSCOPE_PYTHON)
        execute_process(
            COMMAND "${DEFORMSCOPE_PYTHON}" -c
                "import nlohmann_json, os; print(os.path.join(os.path.dirname(nlohmann_json.__file__), 'include'))"
            OUTPUT_VARIABLE _json_python_include OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
        list(APPEND _json_hints "${_json_python_include}")
    endif()
    find_path(DEFORMSCOPE_JSON_INCLUDE nlohmann/json.hpp HINTS ${_json_hints})
    if(NOT DEFORMSCOPE_JSON_INCLUDE)
        message(FATAL_ERROR "DeformScope: nlohmann-json not found. Install Debian's nlohmann-json3-dev (tools/bootstrap "
                            "does), `pip install nlohmann-json` into DEFORMSCOPE_PYTHON's environment, or set "
                            "DEFORMSCOPE_HEADERS to a folder holding nlohmann/json.hpp.")
    endif()
    target_include_directories(deformscope_json SYSTEM INTERFACE "${DEFORMSCOPE_JSON_INCLUDE}")
endif()

add_library(deformscope_cli11 INTERFACE)
add_library(deformscope::cli11 ALIAS deformscope_cli11)
find_package(CLI11 2.1 CONFIG QUIET)
if(TARGET CLI11::CLI11)
    target_link_libraries(deformscope_cli11 INTERFACE CLI11::CLI11)
else()
    find_path(DEFORMSCOPE_CLI11_INCLUDE CLI/CLI.hpp HINTS ${DEFORMSCOPE_HEADERS})
    if(NOT DEFORMSCOPE_CLI11_INCLUDE)
        message(FATAL_ERROR "DeformScope: CLI11 not found. Install Debian's libcli11-dev (tools/bootstrap does), "
                            "or set DEFORMSCOPE_HEADERS to a folder holding CLI/CLI.hpp.")
    endif()
    target_include_directories(deformscope_cli11 SYSTEM INTERFACE "${DEFORMSCOPE_CLI11_INCLUDE}")
endif()
