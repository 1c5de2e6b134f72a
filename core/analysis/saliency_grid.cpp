// The nested cell grids the saliency search works on: the coarse cell side, the
// levels of halved segments along each axis, and per level the map from pixels
// to cells with each cell's area and importance. A grid's cells cover the search
// box exactly; pixels outside it belong to the extra cell `cells`, never kept.
#include "core/analysis/saliency_internal.h"
#include "core/analysis/saliency_search.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <stdexcept>

namespace deformscope::analysis::saliency_detail {

int64_t coarseCellSide(int64_t h, int64_t w, int64_t coarseCells) {
    const int64_t longer = std::max<int64_t>(1, std::max(h, w));
    const int64_t n = std::max<int64_t>(1, coarseCells);
    return std::max<int64_t>(1, (longer + n - 1) / n);
}

std::vector<std::vector<int64_t>> axisLevels(int64_t begin, int64_t end, int64_t cell, int64_t minCell) {
    const int64_t len = end - begin;
    if (len <= 0)
        throw std::invalid_argument("axisLevels: empty range");
    cell = std::max<int64_t>(1, cell);
    minCell = std::max<int64_t>(1, minCell);
    const int64_t n = std::max<int64_t>(1, (len + cell - 1) / cell);
    std::vector<std::vector<int64_t>> levels(1);
    for (int64_t i = 0; i <= n; ++i)
        levels[0].push_back(begin + i * len / n);
    while (true) {
        const std::vector<int64_t>& cur = levels.back();
        std::vector<int64_t> next{cur.front()};
        bool split = false;
        for (size_t i = 0; i + 1 < cur.size(); ++i) {
            const int64_t a = cur[i], b = cur[i + 1];
            if (b - a >= 2 * minCell) {
                next.push_back(a + (b - a + 1) / 2);
                split = true;
            }
            next.push_back(b);
        }
        if (!split)
            break;
        levels.push_back(std::move(next));
    }
    return levels;
}

Grid makeGrid(const std::vector<int64_t>& yb, const std::vector<int64_t>& xb, int64_t H, int64_t W, c10::Device device,
              const ImportanceSums& importance) {
    Grid g;
    g.yb = yb;
    g.xb = xb;
    g.H = H;
    g.W = W;
    g.ny = static_cast<int64_t>(yb.size()) - 1;
    g.nx = static_cast<int64_t>(xb.size()) - 1;
    g.cells = g.ny * g.nx;
    // Per pixel along one axis: its segment, −1 outside the box.
    auto segments = [&g](const std::vector<int64_t>& bounds, int64_t len) {
        std::vector<int64_t> seg(len, -1);
        for (int64_t i = 0; i + 1 < static_cast<int64_t>(bounds.size()); ++i) {
            g.side = std::max(g.side, bounds[i + 1] - bounds[i]);
            for (int64_t p = bounds[i]; p < bounds[i + 1]; ++p)
                seg[p] = i;
        }
        return seg;
    };
    const std::vector<int64_t> rowSeg = segments(yb, H), colSeg = segments(xb, W);
    const at::Tensor r = at::tensor(rowSeg, at::kLong).view({H, 1});
    const at::Tensor c = at::tensor(colSeg, at::kLong).view({1, W});
    const at::Tensor valid = r.ge(0).logical_and(c.ge(0));
    g.cellOfPixelCpu = at::where(valid, r * g.nx + c, at::full({}, g.cells, at::kLong)).reshape({-1}).contiguous();
    g.cellOfPixel = g.cellOfPixelCpu.to(device);

    const at::Tensor Y = at::tensor(yb, at::kLong), X = at::tensor(xb, at::kLong);
    const at::Tensor area =
        ((Y.slice(0, 1) - Y.slice(0, 0, -1)).view({-1, 1}) * (X.slice(0, 1) - X.slice(0, 0, -1)).view({1, -1})).reshape({-1}).contiguous();
    g.area.assign(area.data_ptr<int64_t>(), area.data_ptr<int64_t>() + g.cells);
    const at::Tensor areaD = area.to(at::kDouble);
    at::Tensor rank, share;
    if (importance.integral.defined()) {
        const at::Tensor S = importance.integral.index_select(0, Y).index_select(1, X); // [ny+1, nx+1]
        const at::Tensor sums =
            (S.slice(0, 1).slice(1, 1) - S.slice(0, 0, -1).slice(1, 1) - S.slice(0, 1).slice(1, 0, -1) + S.slice(0, 0, -1).slice(1, 0, -1))
                .reshape({-1})
                .contiguous();
        rank = sums;
        const double tiny = 1e-6 * (importance.meanAbs > 0 ? importance.meanAbs : 1.0);
        share = (sums.clamp_min(0) + areaD * tiny).contiguous();
    } else {
        rank = areaD.contiguous();
        share = areaD.contiguous();
    }
    g.rankWeight.assign(rank.data_ptr<double>(), rank.data_ptr<double>() + g.cells);
    g.shareWeight.assign(share.data_ptr<double>(), share.data_ptr<double>() + g.cells);
    return g;
}

int64_t Grid::areaOf(const std::vector<uint8_t>& flags) const {
    int64_t a = 0;
    for (int64_t c = 0; c < cells; ++c)
        if (flags[c])
            a += area[c];
    return a;
}

at::Tensor Grid::pixelMask(const std::vector<uint8_t>& flags) const {
    const at::Tensor ext = at::cat({flagsTensor(flags), at::zeros({1}, at::kBool)}).to(at::kByte);
    return ext.index_select(0, cellOfPixelCpu).view({H, W}).contiguous();
}

void Grid::sortByImportance(std::vector<int64_t>& list) const {
    std::stable_sort(list.begin(), list.end(), [&](int64_t a, int64_t b) { return rankWeight[a] > rankWeight[b]; });
}

at::Tensor flagsTensor(const std::vector<uint8_t>& flags) {
    return at::from_blob(const_cast<uint8_t*>(flags.data()), {static_cast<int64_t>(flags.size())}, at::kByte).to(at::kBool);
}

at::Tensor wholeMask(int64_t H, int64_t W) {
    return at::ones({H, W}, at::kByte);
}

} // namespace deformscope::analysis::saliency_detail
