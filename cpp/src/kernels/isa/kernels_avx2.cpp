// The avx2 kernel table: kernels_impl.inc compiled with this file's flags (see CMakeLists.txt).
#define PYCNN_ISA_NS avx2
#define PYCNN_ISA_NAME "avx2"
#include "kernels/isa/kernels_impl.inc"
