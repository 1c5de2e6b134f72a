// The dataflow of the recorded operators: which events produced each event's
// tensors (resolveProducers), and which model inputs (frames) each recorded
// tensor derives from: the frames are
// seeded with one bit each, every operator's outputs get the union of its inputs'
// bits, except where a model splits its stacked frames again (x[:, :3], x[:, 0],
// chunk, unbind ... of the tensor the frames were stacked into): those pieces get
// the bits of the frames they hold.
#include "core/model/capture_internal.h"

#include <ATen/core/Tensor.h>

#include <algorithm>
#include <functional>
#include <unordered_map>

namespace deformscope::model::detail {
namespace {

// Where a tensor's data comes from: the frames (bits), and, for the tensor the
// frames were stacked into, the axis they lie along and the entries per frame.
struct Origin {
    uint32_t mask = 0;
    int64_t dim = -1;
    int64_t per = 0;
};

std::vector<at::Tensor> tensorsIn(const c10::IValue& v) {
    std::vector<at::Tensor> out;
    if (v.isTensor() && v.toTensor().defined()) {
        out.push_back(v.toTensor());
    } else if (v.isTensorList()) {
        for (const at::Tensor& t : v.toTensorVector())
            if (t.defined())
                out.push_back(t);
    } else if (v.isList()) {
        for (const c10::IValue& x : v.toListRef())
            if (x.isTensor() && x.toTensor().defined())
                out.push_back(x.toTensor());
    }
    return out;
}

std::vector<at::Tensor> outputsOf(const OpEvent& e) {
    std::vector<at::Tensor> out;
    for (const c10::IValue& v : e.outputs) {
        if (v.isTuple()) {
            for (const c10::IValue& x : v.toTupleRef().elements())
                for (const at::Tensor& t : tensorsIn(x))
                    out.push_back(t);
        } else {
            for (const at::Tensor& t : tensorsIn(v))
                out.push_back(t);
        }
    }
    return out;
}

int64_t optionalInt(const c10::IValue& v, int64_t otherwise) {
    return v.isNone() ? otherwise : intOf(v);
}

// The frames the entries [start, end) along the stacking axis hold.
uint32_t framesOf(const Origin& o, int64_t start, int64_t end, int64_t step = 1) {
    uint32_t m = 0;
    for (int64_t i = std::max<int64_t>(start, 0); i < end; i += std::max<int64_t>(step, 1))
        m |= uint32_t(1) << std::min<int64_t>(i / o.per, 31);
    return m;
}

// Argument `i` of `e` as an axis of a tensor of `rank` axes (negative ones wrapped);
// −100 when it is not an int.
int64_t axisArgument(const OpEvent& e, size_t i, int64_t rank) {
    if (i >= e.inputs.size() || !(e.inputs[i].isInt() || e.inputs[i].isSymInt()))
        return -100;
    const int64_t d = intOf(e.inputs[i]);
    return d < 0 ? d + rank : d;
}

// For an operator taking pieces of the stacked tensor along its stacking axis:
// each output's frames (empty when the operator is not such a split).
std::vector<uint32_t> splitPieces(const OpEvent& e, const Origin& o, const at::Tensor& self) {
    const auto& a = e.inputs;
    auto dimArg = [&](size_t i) { return axisArgument(e, i, self.dim()); };
    const int64_t size = self.size(o.dim);
    auto wrap = [&](int64_t v) { return std::clamp<int64_t>(v < 0 ? v + size : v, 0, size); };
    const std::string& op = e.op;
    if (op == "aten::slice" && dimArg(1) == o.dim) {
        const int64_t start = wrap(a.size() > 2 ? optionalInt(a[2], 0) : 0);
        const int64_t end = wrap(a.size() > 3 ? optionalInt(a[3], size) : size);
        const int64_t step = a.size() > 4 ? optionalInt(a[4], 1) : 1;
        return {framesOf(o, start, end, step)};
    }
    if (op == "aten::narrow" && dimArg(1) == o.dim) {
        const int64_t start = wrap(intOf(a[2]));
        return {framesOf(o, start, std::min(size, start + intOf(a[3])))};
    }
    if (op == "aten::select" && dimArg(1) == o.dim) {
        const int64_t i = wrap(intOf(a[2]));
        return {framesOf(o, i, i + 1)};
    }
    if (op == "aten::unbind" && dimArg(1) == o.dim) {
        std::vector<uint32_t> pieces;
        for (int64_t i = 0; i < size; ++i)
            pieces.push_back(framesOf(o, i, i + 1));
        return pieces;
    }
    // chunk(self, chunks, dim), split(self, split_size, dim), split_with_sizes(self, sizes, dim)
    if ((op == "aten::chunk" || op == "aten::split" || op == "aten::split_with_sizes" || op == "aten::tensor_split") &&
        dimArg(2) == o.dim) {
        std::vector<int64_t> lengths;
        if (a[1].isIntList()) {
            lengths = a[1].toIntVector();
        } else {
            const int64_t n = intOf(a[1]);
            const int64_t each = op == "aten::chunk" ? (size + n - 1) / std::max<int64_t>(n, 1) : n;
            for (int64_t at = 0; at < size; at += std::max<int64_t>(each, 1))
                lengths.push_back(std::min(each, size - at));
        }
        std::vector<uint32_t> pieces;
        int64_t at = 0;
        for (int64_t len : lengths) {
            pieces.push_back(framesOf(o, at, std::min(size, at + len)));
            at += len;
        }
        return pieces;
    }
    return {};
}

// Where the stacking axis lies in the output of an operator that indexes or
// copies along other axes only; −1 for any other operator.
int64_t keptAxis(const OpEvent& e, const Origin& o, const at::Tensor& self) {
    auto dimArg = [&](size_t i) { return axisArgument(e, i, self.dim()); };
    const std::string& op = e.op;
    if (op == "aten::contiguous" || op == "aten::clone" || op == "aten::to" || op == "aten::detach" ||
        op == "aten::alias" || op == "aten::type_as")
        return o.dim;
    if ((op == "aten::slice" || op == "aten::narrow") && dimArg(1) >= 0 && dimArg(1) != o.dim)
        return o.dim;
    if (op == "aten::select" && dimArg(1) >= 0 && dimArg(1) != o.dim)
        return dimArg(1) < o.dim ? o.dim - 1 : o.dim;
    return -1;
}

} // namespace

// For every event, the producers (event indices) of each tensor in each input.
Producers resolveProducers(const std::vector<OpEvent>& events) {
    std::unordered_map<const c10::TensorImpl*, int> producer;
    std::vector<std::vector<std::vector<int>>> result(events.size());
    auto lookup = [&](const at::Tensor& t) {
        auto it = producer.find(t.unsafeGetTensorImpl());
        return it == producer.end() ? kNoProducer : it->second;
    };
    for (size_t i = 0; i < events.size(); ++i) {
        // Inputs are resolved before this event's outputs are registered, so an
        // in-place op (output is its input) still points at the earlier producer.
        for (const c10::IValue& v : events[i].inputs) {
            std::vector<int> ps;
            if (v.isTensor() && v.toTensor().defined()) {
                ps.push_back(lookup(v.toTensor()));
            } else if (v.isTensorList()) {
                for (const at::Tensor& t : v.toTensorVector())
                    if (t.defined())
                        ps.push_back(lookup(t));
            } else if (v.isList()) {
                for (const c10::IValue& x : v.toListRef())
                    if (x.isTensor() && x.toTensor().defined())
                        ps.push_back(lookup(x.toTensor()));
            }
            result[i].push_back(std::move(ps));
        }
        std::function<void(const c10::IValue&)> registerOutput = [&](const c10::IValue& v) {
            if (v.isTensor() && v.toTensor().defined())
                producer[v.toTensor().unsafeGetTensorImpl()] = static_cast<int>(i);
            else if (v.isTuple())
                for (const c10::IValue& x : v.toTupleRef().elements())
                    registerOutput(x);
            else if (v.isList())
                for (const c10::IValue& x : v.toListRef())
                    registerOutput(x);
        };
        for (const c10::IValue& v : events[i].outputs)
            registerOutput(v);
    }
    return result;
}

void assignFrames(Layer& l, uint32_t dataMask, const std::vector<uint32_t>& argumentMasks) {
    l.frames.clear();
    for (int f = 0; f < 32; ++f)
        if (dataMask & (uint32_t(1) << f))
            l.frames.push_back(f);
    if (l.frames.empty()) // a constant (or a frame the capture lost): drawn on the first
        l.frames = {0};
    uint32_t all = 0;
    for (uint32_t m : argumentMasks)
        all |= m;
    l.home = 0;
    while (all && !(all & (uint32_t(1) << l.home)))
        ++l.home;
}

std::vector<std::vector<uint32_t>> frameMasks(const std::vector<OpEvent>& events, const std::vector<at::Tensor>& frames) {
    std::unordered_map<const c10::TensorImpl*, Origin> origin;
    for (size_t i = 0; i < frames.size(); ++i)
        origin[frames[i].unsafeGetTensorImpl()].mask |= uint32_t(1) << std::min<size_t>(i, 31);
    auto originOf = [&](const at::Tensor& t) {
        const auto it = origin.find(t.unsafeGetTensorImpl());
        return it == origin.end() ? Origin{} : it->second;
    };
    std::vector<std::vector<uint32_t>> result(events.size());
    for (size_t i = 0; i < events.size(); ++i) {
        const OpEvent& e = events[i];
        uint32_t all = 0;
        for (const c10::IValue& v : e.inputs) {
            uint32_t m = 0;
            for (const at::Tensor& t : tensorsIn(v))
                m |= originOf(t).mask;
            result[i].push_back(m);
            all |= m;
        }
        const auto outputs = outputsOf(e);
        // The frames stacked (cat on channels, stack on a new axis) in their order.
        if ((e.op == "aten::cat" || e.op == "aten::stack") && !e.inputs.empty() && frames.size() > 1 &&
            outputs.size() == 1) {
            const auto parts = tensorsIn(e.inputs[0]);
            bool theFrames = parts.size() == frames.size();
            for (size_t k = 0; theFrames && k < parts.size(); ++k)
                theFrames = parts[k].unsafeGetTensorImpl() == frames[k].unsafeGetTensorImpl();
            if (theFrames) {
                const int64_t rank = outputs[0].dim();
                int64_t dim = e.inputs.size() > 1 && (e.inputs[1].isInt() || e.inputs[1].isSymInt()) ? intOf(e.inputs[1]) : 0;
                if (dim < 0)
                    dim += rank;
                const int64_t per = e.op == "aten::cat" ? frames[0].size(dim) : 1;
                origin[outputs[0].unsafeGetTensorImpl()] = Origin{all, dim, per};
                continue;
            }
        }
        if (!e.inputs.empty() && e.inputs[0].isTensor() && e.inputs[0].toTensor().defined()) {
            const at::Tensor& self = e.inputs[0].toTensor();
            const Origin o = originOf(self);
            if (o.dim >= 0 && o.dim < self.dim()) {
                const auto pieces = splitPieces(e, o, self);
                if (!pieces.empty() && pieces.size() == outputs.size()) {
                    for (size_t k = 0; k < outputs.size(); ++k)
                        origin[outputs[k].unsafeGetTensorImpl()] = Origin{pieces[k]};
                    continue;
                }
                // Indexing along another axis (x[:, :3] is a full slice of the batch first)
                // keeps the frames' axis: the layout goes on, one axis lower below a select.
                const int64_t moved = keptAxis(e, o, self);
                if (moved >= 0 && outputs.size() == 1) {
                    origin[outputs[0].unsafeGetTensorImpl()] = Origin{o.mask, moved, o.per};
                    continue;
                }
            }
        }
        for (const at::Tensor& t : outputs)
            origin[t.unsafeGetTensorImpl()] = Origin{all};
    }
    return result;
}

} // namespace deformscope::model::detail
