# Finds LibTorch — the official LibTorch or the one inside a PyTorch wheel,
# located through Torch_DIR or CMAKE_PREFIX_PATH — and defines:
#   deformscope::torch        INTERFACE target: the only way any target gets LibTorch
#   DEFORMSCOPE_WITH_CUDA     ON when the CUDA kernels are built
#   DEFORMSCOPE_TORCH_LIBDIR  the chosen LibTorch's lib folder (tests check that
#                             every binary loads its libc10 from there)
#
# Only the chosen LibTorch may be linked. A second one is common on researchers'
# machines (Debian's python3-torch puts libc10.so in /usr/lib), and TorchConfig
# looks some of its libraries up with find_library(... PATHS <its lib>), which
# searches the system folders first: a build would then link the system libc10
# next to the chosen libtorch_cpu and abort at start. So every library is found
# here in the chosen lib folder only (NO_DEFAULT_PATH) before TorchConfig runs,
# which then reuses those cache entries.
#
# With CUDA we use TorchConfig.cmake as PyTorch intends. Without it we must not:
# a CUDA-enabled LibTorch (the PyPI wheel is one) aborts configuration when no
# CUDA toolkit is installed. The CPU-only path therefore links the CPU libraries
# (torch_cpu, c10) straight from the LibTorch layout, which also keeps the CUDA
# runtime out of CPU-only binaries.

set(_deformscope_cuda "${DEFORMSCOPE_CUDA}")
if(_deformscope_cuda STREQUAL "AUTO")
    include(CheckLanguage)
    check_language(CUDA)
    if(CMAKE_CUDA_COMPILER)
        set(_deformscope_cuda ON)
    else()
        set(_deformscope_cuda OFF)
        message(STATUS "DeformScope: nvcc not found, building the CPU-only kernels")
    endif()
endif()

# The chosen LibTorch: Torch_DIR, else the first TorchConfig.cmake on CMAKE_PREFIX_PATH.
if(Torch_DIR AND EXISTS "${Torch_DIR}/TorchConfig.cmake")
    set(_torch_config "${Torch_DIR}/TorchConfig.cmake")
else()
    find_file(_torch_config TorchConfig.cmake PATHS ${CMAKE_PREFIX_PATH} PATH_SUFFIXES share/cmake/Torch Torch
              NO_DEFAULT_PATH NO_CACHE)
    if(NOT _torch_config)
        find_file(_torch_config TorchConfig.cmake PATH_SUFFIXES share/cmake/Torch Torch NO_CACHE)
    endif()
endif()
if(NOT _torch_config)
    message(FATAL_ERROR "DeformScope: LibTorch not found. Run tools/bootstrap, or set Torch_DIR to "
                        "<libtorch>/share/cmake/Torch (or CMAKE_PREFIX_PATH to <libtorch>).")
endif()
get_filename_component(_torch_root "${_torch_config}/../../../.." ABSOLUTE)
set(DEFORMSCOPE_TORCH_LIBDIR "${_torch_root}/lib")

# Every LibTorch library any of our code or TorchConfig links, from the chosen lib folder only.
# (An entry cached by an earlier configure from another folder is looked up again.)
macro(_deformscope_torch_library var name)
    if(${var})
        string(FIND "${${var}}" "${DEFORMSCOPE_TORCH_LIBDIR}/" _at)
        if(NOT _at EQUAL 0)
            unset(${var} CACHE)
        endif()
    endif()
    find_library(${var} ${name} PATHS "${DEFORMSCOPE_TORCH_LIBDIR}" NO_DEFAULT_PATH ${ARGN})
endmacro()

add_library(deformscope_torch INTERFACE)
add_library(deformscope::torch ALIAS deformscope_torch)

if(_deformscope_cuda)
    if(NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
        # TorchConfig turns this into -gencode flags; its default (every arch) is slow to compile.
        set(ENV{TORCH_CUDA_ARCH_LIST} "${DEFORMSCOPE_CUDA_ARCHS}")
    endif()
    enable_language(CUDA)
    # The cache entries TorchConfig's own find_library calls would otherwise fill from /usr/lib.
    _deformscope_torch_library(c10_LIBRARY c10 REQUIRED)
    _deformscope_torch_library(TORCH_LIBRARY torch REQUIRED)
    _deformscope_torch_library(C10_CUDA_LIBRARY c10_cuda)
    _deformscope_torch_library(CAFFE2_NVRTC_LIBRARY caffe2_nvrtc)
    find_package(Torch REQUIRED CONFIG PATHS "${_torch_root}/share/cmake/Torch" NO_DEFAULT_PATH)
    target_link_libraries(deformscope_torch INTERFACE ${TORCH_LIBRARIES})
    set(DEFORMSCOPE_WITH_CUDA ON)
else()
    _deformscope_torch_library(DEFORMSCOPE_TORCH_CPU_LIB torch_cpu REQUIRED)
    _deformscope_torch_library(DEFORMSCOPE_C10_LIB c10 REQUIRED)
    target_include_directories(deformscope_torch SYSTEM INTERFACE
        "${_torch_root}/include" "${_torch_root}/include/torch/csrc/api/include")
    target_link_libraries(deformscope_torch INTERFACE "${DEFORMSCOPE_TORCH_CPU_LIB}" "${DEFORMSCOPE_C10_LIB}")
    set(DEFORMSCOPE_WITH_CUDA OFF)
    message(STATUS "DeformScope: CPU-only LibTorch at ${_torch_root}")
endif()
target_compile_features(deformscope_torch INTERFACE cxx_std_17)
