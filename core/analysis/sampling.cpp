// The sampling-location trace (DCNv1's figure, weighted as DCNv2's "effective
// sampling locations"). See analysis.h for the conventions.
#include "core/analysis/analysis_internal.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <set>

namespace deformscope::analysis::detail {

using model::Layer;
using model::LayerKind;
using namespace at::indexing;

bool spawns(const Layer& l, TraceThrough through) {
    if (l.kind == LayerKind::Dk || l.dataDependentReads()) // dataDependentReads: deformable convs, samplers
        return true;
    return through == TraceThrough::All && l.kind == LayerKind::Conv && (l.kernel[0] > 1 || l.kernel[1] > 1);
}

TraceThrough effectiveThrough(const std::vector<Layer>& layers, TraceThrough through) {
    if (through == TraceThrough::All)
        return through;
    for (const Layer& l : layers)
        if (spawns(l, TraceThrough::Deformable))
            return through;
    return TraceThrough::All;
}

namespace {

// A point waiting to be expanded: it lives on the output grid of layer `grid`
// (−1: the image) at (fy, fx).
struct Item {
    int grid = -1;
    double fy = 0, fx = 0;
    int level = 0;  // spawning levels above it
    int parent = -1; // the point it stands for (−1: the node itself)
};

// Image coordinate of position f on the output grid of `grid` (−1: the image).
std::array<double, 2> toImage(const std::vector<Layer>& layers, int grid, double fy, double fx) {
    if (grid < 0)
        return {fy, fx};
    const Layer& l = layers[size_t(grid)];
    return {l.start[0] + fy * l.jump[0], l.start[1] + fx * l.jump[1]};
}

std::array<double, 2> fromImage(const std::vector<Layer>& layers, int grid, double y, double x) {
    if (grid < 0)
        return {y, x};
    const Layer& l = layers[size_t(grid)];
    return {(y - l.start[0]) / l.jump[0], (x - l.start[1]) / l.jump[1]};
}

// The grids feeding a layer's data input (−1: the image).
std::vector<int> inputGrids(const Layer& l) {
    return l.inputs.empty() ? std::vector<int>{-1} : l.inputs;
}

// Moves an item through non-spawning layers (pooling, upsampling, 1×1 convs,
// transposed convs) until it sits on a spawning layer's output grid or on the
// image; branches (adds, concats) give one item per branch.
void settle(const std::vector<Layer>& layers, TraceThrough through, Item item, std::vector<Item>& out,
            std::set<std::string>& notes) {
    std::vector<Item> stack{item};
    while (!stack.empty()) {
        Item it = stack.back();
        stack.pop_back();
        if (it.grid < 0 || spawns(layers[size_t(it.grid)], through)) {
            out.push_back(it);
            continue;
        }
        const Layer& l = layers[size_t(it.grid)];
        if (l.kind == LayerKind::ConvTranspose)
            notes.insert("transposed convolutions pass points through by their stride (their taps are not spawned)");
        const auto img = toImage(layers, it.grid, it.fy, it.fx);
        for (int g : inputGrids(l)) {
            const auto f = fromImage(layers, g, img[0], img[1]);
            stack.push_back(Item{g, f[0], f[1], it.level, it.parent});
        }
    }
}

// The output positions around (fy, fx) on an h × w grid with their bilinear
// weights (one position, weight 1, when reading the nearest).
std::vector<std::pair<std::array<int64_t, 2>, double>> cornersOf(double fy, double fx, int64_t h, int64_t w,
                                                                 OffsetReading reading) {
    const double qy = std::clamp(fy, 0.0, double(h - 1)), qx = std::clamp(fx, 0.0, double(w - 1));
    if (reading == OffsetReading::Nearest)
        return {{{int64_t(std::lround(qy)), int64_t(std::lround(qx))}, 1.0}};
    const int64_t y0 = std::min<int64_t>(int64_t(std::floor(qy)), h - 1), x0 = std::min<int64_t>(int64_t(std::floor(qx)), w - 1);
    const int64_t y1 = std::min(y0 + 1, h - 1), x1 = std::min(x0 + 1, w - 1);
    const double ay = qy - double(y0), ax = qx - double(x0);
    std::vector<std::pair<std::array<int64_t, 2>, double>> c{{{y0, x0}, (1 - ay) * (1 - ax)}};
    for (const auto& [pos, cw] : {std::pair<std::array<int64_t, 2>, double>{{y0, x1}, (1 - ay) * ax},
                                  {{y1, x0}, ay * (1 - ax)},
                                  {{y1, x1}, ay * ax}})
        if (cw > 0)
            c.push_back({pos, cw});
    return c;
}

// A grid_sample layer's reads for the items on its output grid: every grid row
// (head, group) and point at the item's output position (a query's position on
// its query map), where it reads the value map (align_corners and padding_mode
// as grid_sample) and Σ_c |∂r/∂sampled value| as the weight.
template <typename Emit>
void samplerReads(const Layer& l, const model::LayerTensors& t, const at::Tensor& gradOutput,
                  const std::vector<Item>& frontier, const std::vector<size_t>& members, const SamplingOptions& options,
                  Emit& emit) {
    if (!t.grid.defined())
        return;
    const model::SamplerInfo& si = l.sampler;
    const auto cpuDouble = at::TensorOptions().dtype(at::kDouble).device(at::kCPU);
    const bool queries = si.layout == model::SamplerInfo::Layout::Queries;
    const int64_t Hf = l.feature_size[0], Wf = l.feature_size[1];
    const int64_t B = std::min<int64_t>(t.grid.size(0), si.rows); // the first image's rows
    const int64_t points = queries ? t.grid.size(2) : 1;
    // Only the grid entries the items read: rows (dim 1) and columns (dim 2) of the
    // grid, compacted — a 256² map's full grid would cost more than the trace.
    std::vector<std::vector<std::pair<std::array<int64_t, 2>, double>>> corners;
    std::map<int64_t, int64_t> rowOf, colOf;
    for (size_t m : members) {
        corners.push_back(cornersOf(frontier[m].fy, frontier[m].fx, Hf, Wf, options.reading));
        for (const auto& [pos, cw] : corners.back())
            for (int64_t p = 0; p < points; ++p) {
                const auto [a, c] = si.gridEntry(pos[0], pos[1], p, Wf);
                rowOf.emplace(a, 0);
                colOf.emplace(c, 0);
            }
    }
    std::vector<int64_t> rows, cols;
    for (auto& [a, i] : rowOf) {
        i = int64_t(rows.size());
        rows.push_back(std::min(a, t.grid.size(1) - 1));
    }
    for (auto& [c, i] : colOf) {
        i = int64_t(cols.size());
        cols.push_back(std::min(c, t.grid.size(2) - 1));
    }
    const auto dev = t.grid.device();
    const at::Tensor ri = at::tensor(rows, at::kLong).to(dev), ci = at::tensor(cols, at::kLong).to(dev);
    const at::Tensor grid = t.grid.detach().narrow(0, 0, B).index_select(1, ri).index_select(2, ci).to(cpuDouble).contiguous();
    at::Tensor weights = at::zeros({B, int64_t(rows.size()), int64_t(cols.size())}, cpuDouble);
    if (options.weights && gradOutput.defined() && gradOutput.dim() == 4)
        weights = gradOutput.detach().narrow(0, 0, B).index_select(2, ri.to(gradOutput.device()))
                      .index_select(3, ci.to(gradOutput.device())).abs().sum(1).to(cpuDouble).contiguous();
    // The attention/mask weight of each read, where the capture found one.
    at::Tensor mask = at::ones({B, int64_t(rows.size()), int64_t(cols.size())}, cpuDouble);
    const bool weighted = queries && t.mask.defined() && t.mask.dim() == 3;
    if (weighted)
        mask = t.mask.detach().narrow(0, 0, B).index_select(1, ri.to(t.mask.device()))
                   .index_select(2, ci.to(t.mask.device())).to(cpuDouble).contiguous();
    const auto g = grid.accessor<double, 4>();
    const auto wt = weights.accessor<double, 3>();
    const auto mk = mask.accessor<double, 3>();
    for (size_t mi = 0; mi < members.size(); ++mi) {
        const Item& it = frontier[members[mi]];
        for (int64_t b = 0; b < B; ++b)
            for (int64_t p = 0; p < points; ++p) {
                SamplingPoint s;
                s.fy = s.fx = s.weight = s.modulation = 0;
                for (const auto& [pos, cw] : corners[mi]) {
                    // Spatial: output (y, x) reads grid[b, y, x]; queries: query y·Wf + x reads grid[b, q, p].
                    const auto entry = si.gridEntry(pos[0], pos[1], p, Wf);
                    const int64_t a = rowOf.at(entry[0]), c = colOf.at(entry[1]);
                    s.fx += cw * si.pixelOf(g[b][a][c][0], si.valueSize[1]);
                    s.fy += cw * si.pixelOf(g[b][a][c][1], si.valueSize[0]);
                    s.weight += cw * wt[b][a][c];
                    s.modulation += cw * mk[b][a][c];
                }
                s.group = int(b);
                s.tap = int(p);
                s.featureLevel = si.level;
                if (!emit(l, it, s))
                    return;
            }
    }
}

// A RoI pooling layer's reads for the items on its output grid (its bins, of the
// first image's first RoI): every bilinear read of the bin, where mmcv's (or
// torchvision's roi_align's) arithmetic puts it, moved by the bin's offset for a
// deformable RoI pooling; weight Σ_c |∂r/∂ the read value| = Σ_c |∂r/∂ bin| · m / reads.
template <typename Emit>
void roiReads(const Layer& l, const model::LayerTensors& t, const at::Tensor& gradOutput,
              const std::vector<Item>& frontier, const std::vector<size_t>& members, const SamplingOptions& options,
              Emit& emit) {
    const int64_t ph = l.feature_size[0], pw = l.feature_size[1];
    const auto ys = model::roiStartAndBin(l.roi, l.feature_size, 0), xs = model::roiStartAndBin(l.roi, l.feature_size, 1);
    const double roiH = ys[1] * double(ph), roiW = xs[1] * double(pw);
    // Reads per bin and axis: the given ratio, else ceil(RoI size / bins) (mmcv rounds the quotient to float first).
    const auto reads = [&](double size, int64_t bins) {
        return l.roi.samplingRatio > 0 ? l.roi.samplingRatio
                                       : int64_t(std::ceil(double(float(size / double(bins)))));
    };
    const int64_t gh = std::max<int64_t>(reads(roiH, ph), 0), gw = std::max<int64_t>(reads(roiW, pw), 0);
    const double count = double(std::max<int64_t>(gh * gw, 1));
    const auto cpuDouble = at::TensorOptions().dtype(at::kDouble).device(at::kCPU);
    const at::Tensor offset = l.kind == LayerKind::DeformRoiPool && t.offset.defined() && t.offset.numel() > 0
                                  ? t.offset.detach()[0].to(cpuDouble).contiguous() : at::zeros({2, ph, pw}, cpuDouble);
    const at::Tensor mask = l.use_mask && t.mask.defined() && t.mask.numel() > 0 ? t.mask.detach()[0][0].to(cpuDouble).contiguous()
                                                                                 : at::ones({ph, pw}, cpuDouble);
    at::Tensor binGrad = at::zeros({ph, pw}, cpuDouble);
    if (options.weights && gradOutput.defined() && gradOutput.dim() == 4)
        binGrad = gradOutput.detach()[0].abs().sum(0).to(cpuDouble).contiguous();
    const auto off = offset.accessor<double, 3>();
    const auto msk = mask.accessor<double, 2>();
    const auto grd = binGrad.accessor<double, 2>();
    for (size_t m : members) {
        const Item& it = frontier[m];
        const int64_t i = std::clamp<int64_t>(std::llround(it.fy), 0, ph - 1);
        const int64_t j = std::clamp<int64_t>(std::llround(it.fx), 0, pw - 1);
        const double y0 = ys[0] + l.roi.gamma * roiH * off[1][i][j] + double(i) * ys[1];
        const double x0 = xs[0] + l.roi.gamma * roiW * off[0][i][j] + double(j) * xs[1];
        const double modulation = l.use_mask ? msk[i][j] : 1.0;
        int tap = 0;
        for (int64_t iy = 0; iy < gh; ++iy)
            for (int64_t ix = 0; ix < gw; ++ix) {
                SamplingPoint s;
                s.fy = y0 + (double(iy) + 0.5) * ys[1] / double(gh);
                s.fx = x0 + (double(ix) + 0.5) * xs[1] / double(gw);
                s.weight = grd[i][j] * modulation / count;
                s.modulation = modulation;
                s.tap = tap++;
                s.group = int(i * pw + j); // the bin, row-major
                if (!emit(l, it, s))
                    return;
            }
    }
}

// An unrecognised sampler's reads, approximated by its gradient footprint: every
// position of the map it reads with a non-zero gradient of the response.
template <typename Emit>
void footprintReads(const Layer& l, const at::Tensor& footprint, const Item& it, Emit& emit) {
    const at::Tensor f = footprint.detach().to(at::kCPU, at::kDouble).contiguous();
    const auto a = f.accessor<double, 2>();
    int tap = 0;
    for (int64_t y = 0; y < f.size(0); ++y)
        for (int64_t x = 0; x < f.size(1); ++x)
            if (a[y][x] > 0) {
                SamplingPoint s;
                s.fy = double(y);
                s.fx = double(x);
                s.weight = a[y][x];
                s.tap = tap++;
                if (!emit(l, it, s))
                    return;
            }
}

} // namespace

std::set<int> tracedLayers(const std::vector<Layer>& layers, int start, int levels, TraceThrough through) {
    std::set<int> result;
    std::set<std::pair<int, int>> seen; // (grid, level)
    std::vector<std::pair<int, int>> stack{{start, 0}};
    while (!stack.empty()) {
        auto [grid, level] = stack.back();
        stack.pop_back();
        if (grid < 0 || !seen.insert({grid, level}).second)
            continue;
        const Layer& l = layers[size_t(grid)];
        int next = level;
        if (spawns(l, through)) {
            if (level >= levels)
                continue;
            result.insert(grid);
            next = level + 1;
        }
        for (int g : inputGrids(l))
            stack.push_back({g, next});
    }
    return result;
}

at::Tensor dkKernelOffsets(const Layer& l, const model::LayerTensors& t, const at::Tensor& iy, const at::Tensor& ix,
                           const at::TensorOptions& options) {
    const int64_t K = l.kernel[0] * l.kernel[1], P = iy.size(0);
    if (!t.kernelOffset.defined())
        return at::zeros({P, K, 2}, options);
    const at::Tensor ko = t.kernelOffset.detach()[0].to(options); // [2K, h, w]
    if (l.global_kernel_offsets) // one kernel per image: the same for every position
        return ko.reshape({1, K, 2}).expand({P, K, 2});
    return ko.index({Slice(), iy.to(ko.device()), ix.to(ko.device())}).t().reshape({P, K, 2});
}

at::Tensor dkEffectiveKernel(const Layer& l, const model::LayerTensors& t, const at::Tensor& iy, const at::Tensor& ix) {
    const at::Tensor w = t.weight.detach().to(at::kDouble);  // [C, 1, Sh, Sw]
    const int64_t C = w.size(0), Sh = w.size(2), Sw = w.size(3);
    const int64_t kh = l.kernel[0], kw = l.kernel[1], K = kh * kw;
    const int64_t P = iy.size(0);
    const auto dopts = w.options();
    const at::Tensor koff = dkKernelOffsets(l, t, iy, ix, dopts); // [P, K, 2] (Δy, Δx)
    const at::Tensor baseY = at::arange(kh, dopts).repeat_interleave(kw) + double(Sh - kh) / 2;
    const at::Tensor baseX = at::arange(kw, dopts).repeat({kh}) + double(Sw - kw) / 2;
    const at::Tensor qy = baseY.view({1, K}) + koff.select(2, 0), qx = baseX.view({1, K}) + koff.select(2, 1); // [P, K]
    // Bilinear with the operators' rule: 0 outside (−1, S); corners outside the scope read 0.
    const at::Tensor y0 = qy.floor(), x0 = qx.floor(), ly = qy - y0, lx = qx - x0;
    const at::Tensor flat = w.view({C, Sh * Sw});
    auto corner = [&](const at::Tensor& cy, const at::Tensor& cx) {
        const at::Tensor valid = ((cy >= 0) & (cy < double(Sh)) & (cx >= 0) & (cx < double(Sw))).to(at::kDouble);
        const at::Tensor idx = (cy.clamp(0, Sh - 1) * double(Sw) + cx.clamp(0, Sw - 1)).to(at::kLong).reshape({1, P * K});
        return flat.gather(1, idx.expand({C, P * K})).view({C, P, K}) * valid.unsqueeze(0);
    };
    at::Tensor weff = corner(y0, x0) * ((1 - ly) * (1 - lx)).unsqueeze(0) + corner(y0, x0 + 1) * ((1 - ly) * lx).unsqueeze(0) +
                      corner(y0 + 1, x0) * (ly * (1 - lx)).unsqueeze(0) + corner(y0 + 1, x0 + 1) * (ly * lx).unsqueeze(0);
    const at::Tensor inside = ((qy > -1) & (qy < double(Sh)) & (qx > -1) & (qx < double(Sw))).to(at::kDouble);
    return (weff * inside.unsqueeze(0)).permute({1, 0, 2}).contiguous(); // [P, C, K]
}

at::Tensor locationGrads(const Layer& l, const model::LayerTensors& t, const at::Tensor& gradOutput,
                         const at::Tensor& iy, const at::Tensor& ix) {
    // [Cin, H, W]; contiguous: a first layer reads its frame, a view of the side-by-side input.
    const at::Tensor in = t.input.detach()[0].contiguous();
    const at::Tensor w = t.weight.detach();         // [Cout, Cin/groups, kh, kw]
    const int64_t cin = in.size(0), H = in.size(1), W = in.size(2);
    const int64_t cout = w.size(0), kh = l.kernel[0], kw = l.kernel[1], K = kh * kw;
    const int64_t G = l.deformable() ? std::max<int64_t>(l.offset_groups, 1) : 1;
    const int64_t groups = std::max<int64_t>(l.groups, 1);
    const int64_t P = iy.size(0);
    const auto fopts = in.options();
    const at::Tensor yi = iy.to(in.device()), xi = ix.to(in.device());

    // v[p, c, k] = Σ_o ∂r/∂out[o, p] · w[o, c, k] (within each conv group).
    const at::Tensor gq = gradOutput.detach()[0].index({Slice(), yi, xi}).t().to(fopts.dtype()); // [P, Cout]
    at::Tensor v;
    if (l.kind == LayerKind::Dk) {
        // Depthwise, with the kernel resampled per position: v[p, c, k] = ∂r/∂out[c, p] · W_c(q_k + Δk(p)).
        v = (gq.unsqueeze(2) * dkEffectiveKernel(l, t, yi, xi).to(fopts.dtype())).view({P, 1, cin, K});
    } else {
        const int64_t coutG = cout / groups, cinG = cin / groups;
        std::vector<at::Tensor> parts;
        for (int64_t g = 0; g < groups; ++g)
            parts.push_back(gq.narrow(1, g * coutG, coutG).matmul(w.narrow(0, g * coutG, coutG).reshape({coutG, cinG * K}))
                                .view({P, cinG, K}));
        v = at::cat(parts, 1).view({P, G, cin / G, K});
    }

    // Sampling positions [P, G, K] on the input grid.
    const at::Tensor ky = at::arange(kh, fopts).repeat_interleave(kw);
    const at::Tensor kx = at::arange(kw, fopts).repeat({kh});
    at::Tensor py = (yi.to(fopts.dtype()) * double(l.stride[0]) - double(l.padding[0])).view({P, 1, 1}) +
                    (ky * double(l.dilation[0])).view({1, 1, K});
    at::Tensor px = (xi.to(fopts.dtype()) * double(l.stride[1]) - double(l.padding[1])).view({P, 1, 1}) +
                    (kx * double(l.dilation[1])).view({1, 1, K});
    py = py.expand({P, G, K});
    px = px.expand({P, G, K});
    at::Tensor mask = at::ones({P, G, K}, fopts);
    if (l.movesSamples() && t.offset.defined()) {
        const at::Tensor off = t.offset.detach()[0].index({Slice(), yi, xi}).t().reshape({P, G, K, 2}).to(fopts.dtype());
        py = py + off.select(3, 0);
        px = px + off.select(3, 1);
        if (l.use_mask && t.mask.defined())
            mask = t.mask.detach()[0].index({Slice(), yi, xi}).t().reshape({P, G, K}).to(fopts.dtype());
    }

    // The operators' coordinate weights (torchvision's): the bilinear sample's
    // derivative with respect to y and x, corners outside the map read as zero.
    const at::Tensor y0 = py.floor(), x0 = px.floor();
    const at::Tensor ly = py - y0, lx = px - x0;
    const at::Tensor y0i = y0.to(at::kLong), x0i = x0.to(at::kLong);
    const at::Tensor flat = in.view({G, cin / G, H * W});
    auto corner = [&](const at::Tensor& cy, const at::Tensor& cx) {
        const at::Tensor valid = (cy >= 0) & (cy < H) & (cx >= 0) & (cx < W);                  // [P, G, K]
        const at::Tensor idx = (cy.clamp(0, H - 1) * W + cx.clamp(0, W - 1)).permute({1, 0, 2}).reshape({G, 1, P * K});
        const at::Tensor vals = flat.gather(2, idx.expand({G, cin / G, P * K}))               // [G, Cg, P*K]
                                    .view({G, cin / G, P, K})
                                    .permute({2, 0, 1, 3});                                    // [P, G, Cg, K]
        return vals * valid.unsqueeze(2).to(fopts.dtype());
    };
    const at::Tensor vyx = corner(y0i, x0i), vyX = corner(y0i, x0i + 1), vYx = corner(y0i + 1, x0i),
                     vYX = corner(y0i + 1, x0i + 1);
    const at::Tensor lyc = ly.unsqueeze(2), lxc = lx.unsqueeze(2);
    const at::Tensor dY = (1 - lxc) * (vYx - vyx) + lxc * (vYX - vyX);
    const at::Tensor dX = (1 - lyc) * (vyX - vyx) + lyc * (vYX - vYx);
    // A sample at y ≤ −1, y ≥ H, x ≤ −1 or x ≥ W reads zero and has no gradient (the operators' rule).
    const at::Tensor support = ((py > -1) & (py < double(H)) & (px > -1) & (px < double(W))).to(fopts.dtype());
    const at::Tensor gy = (v * dY).sum(2) * mask * support;
    const at::Tensor gx = (v * dX).sum(2) * mask * support;
    return at::stack({gy, gx}, 3); // [P, G, K, 2]
}

SamplingTrace traceSampling(const model::Capture& capture, const Node& node, const SamplingOptions& options,
                            const std::map<int, at::Tensor>& gradOutputs, const std::map<int, at::Tensor>& footprints) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<Layer>& layers = capture.graph.layers();
    const Layer* target = capture.graph.find(node.layer);
    const auto imageSize = capture.graph.inputSize();
    SamplingTrace trace;
    std::set<std::string> notes;
    std::vector<std::set<std::string>> levelLayers;

    const TraceThrough through = effectiveThrough(layers, options.through);
    if (through != options.through)
        notes.insert("the model has no deformable layer or sampler: traced through every k×k convolution");
    else if (through == TraceThrough::Deformable)
        notes.insert("traced through the deformable layers and samplers only: regular convolutions pass points "
                     "straight through (--through all spawns at them too)");
    std::vector<Item> frontier;
    if (target->isRoiPool() && (node.allBins || node.response.kind == Response::Kind::ClassScore)) {
        // The whole RoI (or the head's output, which reads every bin): all bins are the first level.
        for (int64_t i = 0; i < target->feature_size[0]; ++i)
            for (int64_t j = 0; j < target->feature_size[1]; ++j)
                frontier.push_back(Item{target->index, double(i), double(j), 0, -1});
        notes.insert("the node is the whole RoI of " + target->name + ": the first level holds every bin's reads");
    } else {
        settle(layers, through, Item{target->index, double(node.fy), double(node.fx), 0, -1}, frontier, notes);
    }
    bool capped = false;
    std::vector<Item> next;
    // Adds point p (p.fy, p.fx on the layer's input map, weights filled) spawned
    // by item `it`, and queues it for the levels below while it reads inside the map.
    auto emit = [&](const Layer& l, const Item& it, SamplingPoint p) {
        if (int64_t(trace.points.size()) >= options.maxPoints) {
            capped = true;
            return false;
        }
        // The input grid is the output grid of the first feeding layer (or the image).
        const std::vector<int> feeds = inputGrids(l);
        const auto img = toImage(layers, feeds[0], p.fy, p.fx);
        p.y = img[0];
        p.x = img[1];
        p.level = it.level + 1;
        p.inside = p.x >= -0.5 && p.x < double(imageSize[1]) - 0.5 && p.y >= -0.5 && p.y < double(imageSize[0]) - 0.5;
        // On the canvas of several frames: on the frame whose features the layer reads.
        p.input = l.frames.empty() ? 0 : l.frames.front();
        p.x += double(p.input * imageSize[1]);
        if (l.frames.size() > 1)
            notes.insert(l.name + " reads several inputs (" + capture.graph.frameNames(l) +
                         ") at the same positions: its points are drawn on the first");
        p.layer = l.index;
        p.parent = it.parent;
        const int index = int(trace.points.size());
        trace.points.push_back(p);
        if (size_t(p.level) > levelLayers.size())
            levelLayers.resize(size_t(p.level));
        levelLayers[size_t(p.level - 1)].insert(l.name);
        trace.levels = std::max(trace.levels, p.level);
        // Samples beyond the bilinear support read zeros: nothing further to trace.
        if (p.fy <= -1 || p.fy >= double(l.input_size[0]) || p.fx <= -1 || p.fx >= double(l.input_size[1]))
            return true;
        for (int fg : feeds) {
            const auto f = fromImage(layers, fg, img[0], img[1]);
            settle(layers, through, Item{fg, f[0], f[1], p.level, index}, next, notes);
        }
        return true;
    };
    std::set<int> footprintDone; // an unrecognised sampler's footprint is the node's: added once
    while (!frontier.empty()) {
        // Group the frontier's expandable items by layer and read every layer's
        // offsets, masks and location gradients at the positions needed, at once.
        std::map<int, std::vector<size_t>> byLayer;
        for (size_t i = 0; i < frontier.size(); ++i)
            if (frontier[i].grid >= 0 && frontier[i].level < options.levels)
                byLayer[frontier[i].grid].push_back(i);
        next.clear();
        for (const auto& [li, members] : byLayer) {
            const Layer& l = layers[size_t(li)];
            if (l.isSampler()) {
                const auto g = gradOutputs.find(li);
                samplerReads(l, capture.tensors[size_t(li)], g == gradOutputs.end() ? at::Tensor() : g->second, frontier,
                             members, options, emit);
                continue;
            }
            if (l.isRoiPool()) {
                const auto g = gradOutputs.find(li);
                roiReads(l, capture.tensors[size_t(li)], g == gradOutputs.end() ? at::Tensor() : g->second, frontier,
                         members, options, emit);
                continue;
            }
            if (l.kind == LayerKind::UnrecognisedSampler) {
                notes.insert(l.name + " is a sampler DeformScope does not understand (" + l.reason +
                             "): its sampling points are approximated by its gradient footprint (every position of "
                             "the map it reads with a non-zero gradient of the response)");
                const auto f = footprints.find(li);
                if (f != footprints.end() && footprintDone.insert(li).second)
                    footprintReads(l, f->second, frontier[members.front()], emit);
                continue;
            }
            const model::LayerTensors& t = capture.tensors[size_t(li)];
            const int64_t Ho = l.feature_size[0], Wo = l.feature_size[1];
            const int64_t K = l.kernel[0] * l.kernel[1];
            const int64_t G = l.deformable() ? std::max<int64_t>(l.offset_groups, 1) : 1;
            if (!t.weight.defined() && options.weights)
                notes.insert(l.name + ": its weight was not captured; its points have weight 0");

            // Integer positions to read, with bilinear (or nearest) weights per item.
            struct Read {
                std::array<int64_t, 4> pos{};
                std::array<double, 4> w{};
                int n = 0;
            };
            std::map<int64_t, int64_t> slot; // flat position -> row
            std::vector<int64_t> ys, xs;
            auto rowOf = [&](int64_t y, int64_t x) {
                const int64_t key = y * Wo + x;
                auto [it, fresh] = slot.emplace(key, int64_t(ys.size()));
                if (fresh) {
                    ys.push_back(y);
                    xs.push_back(x);
                }
                return it->second;
            };
            std::vector<Read> reads(members.size());
            for (size_t m = 0; m < members.size(); ++m) {
                const Item& it = frontier[members[m]];
                Read& r = reads[m];
                for (const auto& [pos, cw] : cornersOf(it.fy, it.fx, Ho, Wo, options.reading)) {
                    r.pos[size_t(r.n)] = rowOf(pos[0], pos[1]);
                    r.w[size_t(r.n)] = cw;
                    ++r.n;
                }
            }
            const auto cpuDouble = at::TensorOptions().dtype(at::kDouble).device(at::kCPU); // .to() keeps the device unless named
            const at::Tensor iy = at::tensor(ys, at::kLong), ix = at::tensor(xs, at::kLong);
            const int64_t R = int64_t(ys.size());
            at::Tensor offsets = at::zeros({R, G, K, 2}, cpuDouble);
            at::Tensor masks = at::ones({R, G, K}, cpuDouble);
            if (l.movesSamples() && t.offset.defined()) {
                const at::Tensor dev = t.offset.detach()[0];
                offsets = dev.index({Slice(), iy.to(dev.device()), ix.to(dev.device())}).t().reshape({R, G, K, 2}).to(cpuDouble);
                if (l.use_mask && t.mask.defined()) {
                    const at::Tensor mdev = t.mask.detach()[0];
                    masks = mdev.index({Slice(), iy.to(mdev.device()), ix.to(mdev.device())}).t().reshape({R, G, K}).to(cpuDouble);
                }
            }
            at::Tensor grads = at::zeros({R, G, K, 2}, cpuDouble);
            const auto g = gradOutputs.find(li);
            if (options.weights && t.weight.defined() && g != gradOutputs.end() && g->second.defined())
                grads = locationGrads(l, t, g->second, iy, ix).to(cpuDouble);
            // Deformable Kernels: the resampled kernel's magnitude per tap, mean over channels.
            at::Tensor kernelWeights = at::full({R, K}, std::numeric_limits<double>::quiet_NaN(), cpuDouble);
            if (l.kind == LayerKind::Dk && t.weight.defined())
                kernelWeights = dkEffectiveKernel(l, t, iy, ix).abs().mean(1).to(cpuDouble);
            const auto kwa = kernelWeights.accessor<double, 2>();
            const auto off = offsets.accessor<double, 4>();
            const auto msk = masks.accessor<double, 3>();
            const auto grd = grads.accessor<double, 4>();

            for (size_t m = 0; m < members.size(); ++m) {
                const Item& it = frontier[members[m]];
                const Read& r = reads[m];
                for (int64_t gi = 0; gi < G; ++gi) {
                    for (int64_t k = 0; k < K; ++k) {
                        double oy = 0, ox = 0, mod = 0, gy = 0, gx = 0, kwt = 0;
                        for (int c = 0; c < r.n; ++c) {
                            const int64_t row = r.pos[size_t(c)];
                            const double cw = r.w[size_t(c)];
                            oy += cw * off[row][gi][k][0];
                            ox += cw * off[row][gi][k][1];
                            mod += cw * msk[row][gi][k];
                            gy += cw * grd[row][gi][k][0];
                            gx += cw * grd[row][gi][k][1];
                            kwt += cw * kwa[row][k];
                        }
                        const double ky = double(k / l.kernel[1]), kx = double(k % l.kernel[1]);
                        SamplingPoint p;
                        p.fy = it.fy * double(l.stride[0]) - double(l.padding[0]) + ky * double(l.dilation[0]) + oy;
                        p.fx = it.fx * double(l.stride[1]) - double(l.padding[1]) + kx * double(l.dilation[1]) + ox;
                        p.weight = std::hypot(gy, gx);
                        p.modulation = l.use_mask ? mod : 1.0;
                        p.kernelWeight = kwt;
                        p.tap = int(k);
                        p.group = int(gi);
                        if (!emit(l, it, p))
                            break;
                    }
                }
            }
        }
        frontier = std::move(next);
        if (capped)
            break;
    }
    if (capped)
        notes.insert("stopped at " + std::to_string(options.maxPoints) + " points (maxPoints)");
    // Level order: level 1 first (points were appended level by level already).
    for (const auto& names : levelLayers) {
        std::string joined;
        for (const auto& n : names)
            joined += (joined.empty() ? "" : ",") + n;
        trace.levelLayers.push_back(joined);
    }
    trace.notes.assign(notes.begin(), notes.end());
    trace.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return trace;
}

} // namespace deformscope::analysis::detail
