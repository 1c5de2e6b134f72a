# Finds LibTorch — the official LibTorch or the one inside a PyTorch wheel,
# located through Torch_DIR or CMAKE_PREFIX_PATH — and defines:
#   deformscope::torch      INTERFACE target to link against
#   DEFORMSCOPE_WITH_CUDA   ON when the CUDA kernels are built
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

add_library(deformscope_torch INTERFACE)
add_library(deformscope::torch ALIAS deformscope_torch)

if(_deformscope_cuda)
    if(NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
        # TorchConfig turns this into -gencode flags; its default (every arch) is slow to compile.
        set(ENV{TORCH_CUDA_ARCH_LIST} "${DEFORMSCOPE_CUDA_ARCHS}")
    endif()
    enable_language(CUDA)
    find_package(Torch REQUIRED)
    target_link_libraries(deformscope_torch INTERFACE ${TORCH_LIBRARIES})
    set(DEFORMSCOPE_WITH_CUDA ON)
else()
    if(Torch_DIR AND EXISTS "${Torch_DIR}/TorchConfig.cmake")
        set(_torch_config "${Torch_DIR}/TorchConfig.cmake")
    else()
        find_file(_torch_config TorchConfig.cmake PATH_SUFFIXES share/cmake/Torch Torch NO_CACHE)
    endif()
    if(NOT _torch_config)
        message(FATAL_ERROR "DeformScope: LibTorch not found. Run tools/bootstrap, or set Torch_DIR to "
                            "<libtorch>/share/cmake/Torch (or CMAKE_PREFIX_PATH to <libtorch>).")
    endif()
    get_filename_component(_torch_root "${_torch_config}/../../../.." ABSOLUTE)
    find_library(DEFORMSCOPE_TORCH_CPU_LIB torch_cpu PATHS "${_torch_root}/lib" NO_DEFAULT_PATH REQUIRED)
    find_library(DEFORMSCOPE_C10_LIB c10 PATHS "${_torch_root}/lib" NO_DEFAULT_PATH REQUIRED)
    target_include_directories(deformscope_torch SYSTEM INTERFACE
        "${_torch_root}/include" "${_torch_root}/include/torch/csrc/api/include")
    target_link_libraries(deformscope_torch INTERFACE "${DEFORMSCOPE_TORCH_CPU_LIB}" "${DEFORMSCOPE_C10_LIB}")
    set(DEFORMSCOPE_WITH_CUDA OFF)
    message(STATUS "DeformScope: CPU-only LibTorch at ${_torch_root}")
endif()
target_compile_features(deformscope_torch INTERFACE cxx_std_17)
