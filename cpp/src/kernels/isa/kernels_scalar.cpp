// The scalar kernel table: kernels_impl.inc compiled with this file's flags (see CMakeLists.txt).
#define PYCNN_ISA_NS scalar
#define PYCNN_ISA_NAME "scalar"
#include "kernels/isa/kernels_impl.inc"
