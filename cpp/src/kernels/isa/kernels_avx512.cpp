// The avx512 kernel table: kernels_impl.inc compiled with this file's flags (see CMakeLists.txt).
#define PYCNN_ISA_NS avx512
#define PYCNN_ISA_NAME "avx512"
#include "kernels/isa/kernels_impl.inc"
