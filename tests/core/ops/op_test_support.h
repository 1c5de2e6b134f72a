// What the Qt tests of deform_conv2d and deform_kernel2d share: the properties
// both operators are held to are checks in core/ops/checks/op_checks.h, which
// return "" or what is wrong; these turn them into Qt Test verdicts and rows.
#pragma once

#include "core/ops/checks/selftest.h"

#include <QtTest/QtTest>

#include <string>
#include <vector>

// Passes when `problem` (a std::string) is empty; otherwise fails with it.
#define VERIFY_NO_PROBLEM(problem)                                                                                \
    do {                                                                                                          \
        const std::string problem_ = (problem);                                                                   \
        QVERIFY2(problem_.empty(), problem_.c_str());                                                             \
    } while (false)

// Skips the test function when the machine has no CUDA device.
#define SKIP_WITHOUT_CUDA()                                                                                       \
    do {                                                                                                          \
        if (deformscope::ops::checks::cudaDevices().empty())                                                      \
            QSKIP("no CUDA device");                                                                              \
    } while (false)

namespace deformscope::ops::testing {

// One row per bad-input case, by index into `cases`.
inline void addBadInputRows(const std::vector<checks::BadInputCase>& cases) {
    QTest::addColumn<int>("index");
    for (size_t i = 0; i < cases.size(); ++i)
        QTest::newRow(cases[i].name.c_str()) << int(i);
}

// Every bad-input case on the first CUDA device raises its message.
inline std::string cudaBadInputProblems(const std::vector<checks::BadInputCase>& cases) {
    std::string problems;
    for (const checks::BadInputCase& bad : cases) {
        const std::string problem = checks::badInputProblem(bad);
        if (!problem.empty())
            problems += bad.name + ": " + problem + "; ";
    }
    return problems;
}

} // namespace deformscope::ops::testing
