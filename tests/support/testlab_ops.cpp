// A lab's own deformable convolution, as a custom TorchScript operator the way
// researchers ship them (mmcv, DCNv4): testlab::planar_dcn takes its offsets in
// the planar layout (all rows, then all columns) and stride/padding/dilation as
// int[2] arguments. The tests declare it to DeformScope with an adapter; here it
// forwards to deformscope::deform_conv2d (whose autograd it inherits).
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

namespace {

at::Tensor planarDcn(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& offset,
                     const at::Tensor& mask, c10::IntArrayRef stride, c10::IntArrayRef padding,
                     c10::IntArrayRef dilation) {
    static const auto op = c10::Dispatcher::singleton()
                               .findSchemaOrThrow("deformscope::deform_conv2d", "")
                               .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                 const at::Tensor&, const at::Tensor&, int64_t, int64_t, int64_t,
                                                 int64_t, int64_t, int64_t, int64_t, int64_t, bool)>();
    const int64_t half = offset.size(1) / 2;
    const at::Tensor interleaved = at::stack({offset.narrow(1, 0, half), offset.narrow(1, half, half)}, 2)
                                       .reshape(offset.sizes());
    const at::Tensor bias = at::zeros({weight.size(0)}, input.options());
    const int64_t groups = input.size(1) / weight.size(1);
    const int64_t offsetGroups = offset.size(1) / (2 * weight.size(2) * weight.size(3));
    return op.call(input, weight, interleaved, mask, bias, stride[0], stride[1], padding[0], padding[1], dilation[0],
                   dilation[1], groups, offsetGroups, true);
}

} // namespace

TORCH_LIBRARY(testlab, m) {
    m.def("planar_dcn(Tensor input, Tensor weight, Tensor offset, Tensor mask, int[2] stride, int[2] padding, "
          "int[2] dilation) -> Tensor");
}

TORCH_LIBRARY_IMPL(testlab, CompositeImplicitAutograd, m) { m.impl("planar_dcn", &planarDcn); }
