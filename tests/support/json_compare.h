// Comparing result files in tests: two JSON documents hold the same data.
// Header-only, for any test program.
#pragma once

#include <nlohmann/json.hpp>

#include <set>
#include <string>

namespace deformscope::tests {

// Whether `expected` and `actual` are equal, members of objects in any order,
// numbers by value (an integer equals the same double), keys named in `ignore`
// skipped at every level. With `extraKeysAllowed`, `actual` may have members
// `expected` lacks (a newer file with more in it). On a difference, `why` names
// its path ("result.saliency.forwards: 60 != 61").
inline bool sameJson(const nlohmann::ordered_json& expected, const nlohmann::ordered_json& actual,
                     const std::set<std::string>& ignore, std::string& why, const std::string& where = "",
                     bool extraKeysAllowed = false) {
    if (expected.is_number() && actual.is_number()) {
        if (expected.get<double>() == actual.get<double>())
            return true;
        why = where + ": " + expected.dump() + " != " + actual.dump();
        return false;
    }
    if (expected.type() != actual.type()) {
        why = where + ": types differ (" + expected.type_name() + " vs " + actual.type_name() + ")";
        return false;
    }
    if (expected.is_object()) {
        for (const auto& [k, v] : expected.items()) {
            if (ignore.count(k))
                continue;
            if (!actual.contains(k)) {
                why = where + "." + k + ": missing";
                return false;
            }
            if (!sameJson(v, actual.at(k), ignore, why, where + "." + k, extraKeysAllowed))
                return false;
        }
        if (!extraKeysAllowed)
            for (const auto& [k, v] : actual.items())
                if (!ignore.count(k) && !expected.contains(k)) {
                    why = where + "." + k + ": not expected";
                    return false;
                }
        return true;
    }
    if (expected.is_array()) {
        if (expected.size() != actual.size()) {
            why = where + ": lengths differ (" + std::to_string(expected.size()) + " vs " +
                  std::to_string(actual.size()) + ")";
            return false;
        }
        for (size_t i = 0; i < expected.size(); ++i)
            if (!sameJson(expected.at(i), actual.at(i), ignore, why, where + "[" + std::to_string(i) + "]",
                          extraKeysAllowed))
                return false;
        return true;
    }
    if (expected != actual) {
        why = where + ": " + expected.dump() + " != " + actual.dump();
        return false;
    }
    return true;
}

} // namespace deformscope::tests
