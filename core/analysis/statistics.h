// Correlation with confidence intervals, for the dataset study's "does the receptive
// field adapt to the object?" as a number. Plain C++ (no LibTorch), any thread.
#pragma once

#include <cstdint>
#include <vector>

namespace deformscope::analysis {

// A correlation coefficient over n pairs and its two-sided 95 % interval. r, low
// and high are NaN when they are undefined: fewer than 2 pairs or a constant
// variable (r), fewer than 4 pairs (the interval).
struct Correlation {
    int64_t n = 0;
    double r = 0;
    double low = 0, high = 0;
};

// Pearson's r; the interval by Fisher's z (atanh r ± 1.959964 / sqrt(n - 3)).
// Pairs with a non-finite value are left out (n counts the rest).
Correlation pearson(const std::vector<double>& x, const std::vector<double>& y);

// Spearman's rho: Pearson's r of the ranks (ties get their mean rank); the interval
// by Fisher's z with Fieller, Hartley and Pearson's standard error sqrt(1.06 / (n - 3)).
Correlation spearman(const std::vector<double>& x, const std::vector<double>& y);

// The least-squares slope of y on x (NaN for fewer than 2 finite pairs or a constant x):
// how many units y grows per unit of x, which a correlation does not say.
double slope(const std::vector<double>& x, const std::vector<double>& y);

// 1-based ranks, ties sharing the mean of their ranks (scipy.stats.rankdata's "average").
std::vector<double> ranks(const std::vector<double>& v);

} // namespace deformscope::analysis
