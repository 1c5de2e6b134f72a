#include "core/analysis/statistics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace deformscope::analysis {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kZ975 = 1.959963984540054; // the standard normal's 97.5 % quantile

void finitePairs(const std::vector<double>& x, const std::vector<double>& y, std::vector<double>& a,
                 std::vector<double>& b) {
    const size_t n = std::min(x.size(), y.size());
    for (size_t i = 0; i < n; ++i)
        if (std::isfinite(x[i]) && std::isfinite(y[i])) {
            a.push_back(x[i]);
            b.push_back(y[i]);
        }
}

double pearsonR(const std::vector<double>& x, const std::vector<double>& y) {
    const size_t n = x.size();
    if (n < 2)
        return kNaN;
    const double mx = std::accumulate(x.begin(), x.end(), 0.0) / double(n);
    const double my = std::accumulate(y.begin(), y.end(), 0.0) / double(n);
    double sxy = 0, sxx = 0, syy = 0;
    for (size_t i = 0; i < n; ++i) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) * (x[i] - mx);
        syy += (y[i] - my) * (y[i] - my);
    }
    if (sxx <= 0 || syy <= 0)
        return kNaN;
    return std::clamp(sxy / std::sqrt(sxx * syy), -1.0, 1.0);
}

Correlation withInterval(int64_t n, double r, double standardErrorFactor) {
    Correlation c{n, r, kNaN, kNaN};
    if (n < 4 || !std::isfinite(r))
        return c;
    if (std::fabs(r) >= 1.0) {
        c.low = c.high = r;
        return c;
    }
    const double z = std::atanh(r), se = std::sqrt(standardErrorFactor / double(n - 3));
    c.low = std::tanh(z - kZ975 * se);
    c.high = std::tanh(z + kZ975 * se);
    return c;
}

} // namespace

std::vector<double> ranks(const std::vector<double>& v) {
    std::vector<size_t> order(v.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
    std::vector<double> r(v.size());
    for (size_t i = 0; i < order.size();) {
        size_t j = i;
        while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]])
            ++j;
        const double mean = (double(i) + double(j)) / 2.0 + 1.0;
        for (size_t k = i; k <= j; ++k)
            r[order[k]] = mean;
        i = j + 1;
    }
    return r;
}

Correlation pearson(const std::vector<double>& x, const std::vector<double>& y) {
    std::vector<double> a, b;
    finitePairs(x, y, a, b);
    return withInterval(int64_t(a.size()), pearsonR(a, b), 1.0);
}

double slope(const std::vector<double>& x, const std::vector<double>& y) {
    std::vector<double> a, b;
    finitePairs(x, y, a, b);
    if (a.size() < 2)
        return kNaN;
    const double mx = std::accumulate(a.begin(), a.end(), 0.0) / double(a.size());
    const double my = std::accumulate(b.begin(), b.end(), 0.0) / double(b.size());
    double sxy = 0, sxx = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        sxy += (a[i] - mx) * (b[i] - my);
        sxx += (a[i] - mx) * (a[i] - mx);
    }
    return sxx > 0 ? sxy / sxx : kNaN;
}

Correlation spearman(const std::vector<double>& x, const std::vector<double>& y) {
    std::vector<double> a, b;
    finitePairs(x, y, a, b);
    return withInterval(int64_t(a.size()), pearsonR(ranks(a), ranks(b)), 1.06);
}

} // namespace deformscope::analysis
