// Command-line option parsing shared by the CLI's commands.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

namespace deformscope::cli {

struct Options {
    std::map<std::string, std::vector<std::string>> values;
    std::vector<std::string> positional;
    std::set<std::string> flags;
};

// Parses `args` given which options take how many values; returns an error text or "".
inline std::string parse(const std::vector<std::string>& args, const std::map<std::string, int>& arity, Options& out) {
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a.rfind("--", 0) != 0) {
            out.positional.push_back(a);
            continue;
        }
        auto it = arity.find(a);
        if (it == arity.end())
            return "unknown option '" + a + "'";
        if (it->second == 0) {
            out.flags.insert(a);
            continue;
        }
        if (i + static_cast<size_t>(it->second) >= args.size())
            return "option " + a + " needs " + std::to_string(it->second) + " value" + (it->second > 1 ? "s" : "");
        out.values[a].clear(); // a repeated option: the last one wins
        for (int k = 0; k < it->second; ++k)
            out.values[a].push_back(args[++i]);
    }
    return {};
}

inline bool positiveInt(const std::string& s, int64_t& v) {
    try {
        size_t used = 0;
        v = std::stoll(s, &used);
        return used == s.size() && v > 0;
    } catch (const std::exception&) {
        return false;
    }
}

} // namespace deformscope::cli
