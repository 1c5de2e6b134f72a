#include "app/cli/commands.h"

#include "core/analysis/analysis.h"
#include "core/model/model.h"
#include "core/ops/checks/selftest.h"
#include "core/report/inputs.h"

#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>

#include <charconv>
#include <ostream>
#include <sstream>

namespace deformscope::cli {

int guarded(const std::string& command, std::ostream& err, const std::function<int()>& body) {
    auto lines = [&](const std::string& message) {
        std::istringstream in(message);
        for (std::string line; std::getline(in, line);)
            err << "deformscope-cli " << command << ": " << line << "\n";
        err << "(see deformscope-cli " << command << " --help)\n";
    };
    try {
        return body();
    } catch (const report::UsageError& e) {
        lines(e.what());
        return 2;
    } catch (const std::exception& e) {
        // A model that cannot be loaded or run and a node that does not exist are the user's to fix.
        const bool users = dynamic_cast<const model::ModelError*>(&e) || dynamic_cast<const analysis::AnalysisError*>(&e);
        const auto* c10error = dynamic_cast<const c10::Error*>(&e);
        std::string message = c10error ? c10error->what_without_backtrace() : e.what();
        // Running out of memory is the input's size, not a bug: one line and what to do.
        if (message.find("can't allocate memory") != std::string::npos ||
            message.find("out of memory") != std::string::npos) {
            message = message.substr(0, message.find('\n'));
            if (message.rfind("[enforce fail", 0) == 0 && message.find("] ") != std::string::npos)
                message = message.substr(message.find("] ") + 2);
            err << "deformscope-cli " << command << ": out of memory (" << message
                << "): give a smaller --input-size (or --batch)\n";
            return 2;
        }
        err << "deformscope-cli " << command << ": " << message << "\n";
        return users ? 2 : 1;
    }
}

std::unique_ptr<common::OutputFolder> outputFolder(const std::string& out, const Io& io) {
    std::vector<std::string> command{"deformscope-cli"};
    command.insert(command.end(), io.words.begin(), io.words.end());
    try {
        return std::make_unique<common::OutputFolder>(out, command, DEFORMSCOPE_VERSION);
    } catch (const std::exception& e) {
        throw report::UsageError(e.what());
    }
}

std::function<std::string(const std::string&)> wholeAtLeast(int64_t least, const std::string& option) {
    return [least, option](const std::string& v) {
        int64_t n = 0;
        return CLI::detail::lexical_cast(v, n) && n >= least
                   ? std::string()
                   : option + " must be a whole number ≥ " + std::to_string(least) + ", not '" + v + "'";
    };
}

CLI::Option* addRequired(CLI::App* sub, const std::string& option, std::string& target, const std::string& valueName,
                         const std::string& help) {
    return sub->add_option(option, target, help)->required()->type_name(valueName);
}

CLI::Option* addDevice(CLI::App* sub, std::string& target) {
    return sub->add_option("--device", target, "cpu, cuda or cuda:N")->type_name("D");
}

RequestOptions::RequestOptions(CLI::App& app, const std::vector<std::string>& only) {
    std::vector<CLI::Option*> objectOptions; // --object, --object-mask, --no-object: one of them
    for (const common::RequestField& f : common::requestFields()) {
        if (f.option.empty() || (!only.empty() && std::find(only.begin(), only.end(), f.option) == only.end()))
            continue;
        auto b = std::make_unique<Bound>();
        b->field = &f;
        if (f.values == 0) {
            b->option = app.add_flag(f.option, b->flag, f.help);
        } else {
            b->option = app.add_option(f.option, b->words, f.help)
                            ->type_name(f.valueName)
                            ->expected(f.values)
                            ->take_last();
        }
        if (f.option == "--object" || f.option == "--object-mask" || f.option == "--no-object")
            objectOptions.push_back(b->option);
        m_bound.push_back(std::move(b));
    }
    for (CLI::Option* a : objectOptions)
        for (CLI::Option* b : objectOptions)
            if (a != b)
                a->excludes(b);
}

common::AnalysisRequest RequestOptions::request(common::AnalysisRequest base) const {
    std::vector<std::string> problems;
    for (const auto& b : m_bound) {
        if (b->option->count() == 0)
            continue;
        const std::vector<std::string> words = b->flag ? std::vector<std::string>{} : b->words;
        if (std::string problem = common::readOption(base, b->field->option, words); !problem.empty())
            problems.push_back(std::move(problem));
    }
    for (const std::string& p : base.validate())
        problems.push_back(p);
    if (!problems.empty()) {
        std::string message;
        for (const std::string& p : problems)
            message += (message.empty() ? "" : "\n") + p;
        throw report::UsageError(message);
    }
    return base;
}

std::vector<int64_t> wholeNumbers(const std::string& option, const std::string& text, int64_t least) {
    std::vector<int64_t> values;
    std::istringstream in(text);
    for (std::string part; std::getline(in, part, ',');) {
        int64_t v = 0;
        const auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
        if (part.empty() || ec != std::errc() || end != part.data() + part.size() || v < least)
            throw report::UsageError(option + " '" + text + "': expected comma-separated whole numbers ≥ " +
                                     std::to_string(least));
        values.push_back(v);
    }
    if (values.empty())
        throw report::UsageError(option + " '" + text + "': expected comma-separated whole numbers ≥ " +
                                 std::to_string(least));
    return values;
}

std::pair<int64_t, int64_t> parseShard(const std::string& text) {
    if (text.empty())
        return {1, 1};
    const size_t slash = text.find('/');
    std::vector<int64_t> k, n;
    try {
        if (slash != std::string::npos) {
            k = wholeNumbers("--shard", text.substr(0, slash), 1);
            n = wholeNumbers("--shard", text.substr(slash + 1), 1);
        }
    } catch (const report::UsageError&) {
    }
    if (k.size() != 1 || n.size() != 1 || k[0] > n[0])
        throw report::UsageError("--shard '" + text + "': expected K/N with 1 ≤ K ≤ N (this run's part of N)");
    return {k[0], n[0]};
}

std::vector<c10::Device> workerDevices(const std::string& list, const common::DeviceSpec& device) {
    std::vector<c10::Device> out;
    if (!list.empty()) {
        std::istringstream in(list);
        for (std::string name; std::getline(in, name, ',');)
            out.push_back(report::resolveDevice(name));
        if (out.empty())
            throw report::UsageError("--devices '" + list + "': expected devices such as cuda:0,cuda:1 or cpu");
        return out;
    }
    if (device.kind == common::DeviceSpec::Kind::Cuda && device.index < 0) {
        for (const at::Device& d : ops::checks::availableDevices())
            if (d.is_cuda())
                out.push_back(d);
        if (!out.empty())
            return out; // every GPU of the machine, one worker each
    }
    return {report::resolveDevice(device)};
}

void ShardParts::add(const std::string& dir, const std::string& jsonPath, const nlohmann::ordered_json& doc,
                     const nlohmann::ordered_json& first, const std::string& firstDir,
                     const std::vector<const char*>& sameKeys, const std::string& what) {
    using Json = nlohmann::ordered_json;
    const int64_t count = doc.at("shard").at("count").get<int64_t>();
    if (m_count == 0) {
        m_count = count;
    } else {
        for (const char* key : sameKeys) {
            const Json mine = doc.value(key, Json()), theirs = first.value(key, Json());
            if (mine != theirs)
                throw report::UsageError(jsonPath + ": its " + key + " " + mine.dump() + " differs from " + firstDir +
                                         "'s " + theirs.dump() + ": not parts of one " + what);
        }
        if (count != m_count)
            throw report::UsageError(jsonPath + ": a part of " + std::to_string(count) + ", the first of " +
                                     std::to_string(m_count));
    }
    const int64_t index = doc.at("shard").at("index").get<int64_t>();
    if ((m_count > 1 || !m_wholeRunsAdd) && !m_parts.emplace(index, dir).second)
        throw report::UsageError(dir + ": part " + std::to_string(index) + "/" + std::to_string(m_count) +
                                 " is given twice (also " + m_parts.at(index) + ")");
}

void ShardParts::requireComplete() const {
    if (m_count <= 1 || int64_t(m_parts.size()) == m_count)
        return;
    std::string missing;
    for (int64_t k = 1; k <= m_count; ++k)
        if (!m_parts.count(k))
            missing += (missing.empty() ? "" : ", ") + std::to_string(k) + "/" + std::to_string(m_count);
    throw report::UsageError("parts missing: " + missing + " (give every --shard K/" + std::to_string(m_count) +
                             " output folder)");
}

} // namespace deformscope::cli
