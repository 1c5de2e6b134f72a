// DEFORMSCOPE_HOST_DEVICE marks the sampling arithmetic that the CPU kernels and
// the CUDA kernels share (bilinear.h, sampling_grid.h): __host__ __device__ under
// nvcc, a plain inline function for the host compiler. One definition of that
// arithmetic serves both, so the CPU tests run exactly what the GPU runs.
#pragma once

// DEFORMSCOPE_UNROLL asks nvcc to unroll the loop that follows (the host
// compiler has no such pragma and would warn about it).
#if defined(__CUDACC__)
#define DEFORMSCOPE_HOST_DEVICE __host__ __device__ __forceinline__
#define DEFORMSCOPE_UNROLL _Pragma("unroll")
#else
#define DEFORMSCOPE_HOST_DEVICE inline
#define DEFORMSCOPE_UNROLL
#endif
