#include "core/common/npy_header.h"

#include <cstddef>
#include <limits>
#include <stdexcept>

namespace deformscope::common {
namespace {

// Parses the Python dict literal NumPy writes.
class HeaderParser {
public:
    explicit HeaderParser(std::string_view text) : text_(text) {}

    NpyHeader parse() {
        NpyHeader h;
        bool haveDescr = false, haveOrder = false, haveShape = false;
        expect('{');
        for (;;) {
            skipSpace();
            if (consume('}'))
                break;
            const std::string key = parseQuoted();
            expect(':');
            if (key == "descr") {
                h.descr = parseQuoted();
                haveDescr = true;
            } else if (key == "fortran_order") {
                h.fortranOrder = parseBool();
                haveOrder = true;
            } else if (key == "shape") {
                h.shape = parseShape();
                haveShape = true;
            } else {
                throw std::invalid_argument("unexpected key '" + key + "'");
            }
            skipSpace();
            if (consume('}'))
                break;
            expect(',');
        }
        skipSpace();
        if (pos_ != text_.size())
            throw std::invalid_argument("unexpected text after '}'");
        if (!haveDescr || !haveOrder || !haveShape)
            throw std::invalid_argument(std::string("missing key '") +
                                        (!haveDescr ? "descr" : !haveOrder ? "fortran_order" : "shape") + "'");
        return h;
    }

private:
    void skipSpace() {
        while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n'))
            ++pos_;
    }
    bool consume(char c) {
        if (pos_ < text_.size() && text_[pos_] == c) {
            ++pos_;
            return true;
        }
        return false;
    }
    void expect(char c) {
        skipSpace();
        if (!consume(c))
            throw std::invalid_argument(std::string("expected '") + c + "' at offset " + std::to_string(pos_));
    }
    std::string parseQuoted() {
        skipSpace();
        const char quote = pos_ < text_.size() ? text_[pos_] : '\0';
        if (quote != '\'' && quote != '"')
            throw std::invalid_argument("expected a quoted string at offset " + std::to_string(pos_));
        const std::size_t end = text_.find(quote, pos_ + 1);
        if (end == std::string_view::npos)
            throw std::invalid_argument("unterminated string at offset " + std::to_string(pos_));
        std::string s(text_.substr(pos_ + 1, end - pos_ - 1));
        pos_ = end + 1;
        return s;
    }
    bool parseBool() {
        skipSpace();
        if (text_.substr(pos_, 4) == "True") {
            pos_ += 4;
            return true;
        }
        if (text_.substr(pos_, 5) == "False") {
            pos_ += 5;
            return false;
        }
        throw std::invalid_argument("expected True or False for 'fortran_order'");
    }
    // "()", "(5,)", "(2, 3)"; Python 2's "3L" too.
    std::vector<int64_t> parseShape() {
        expect('(');
        std::vector<int64_t> shape;
        for (;;) {
            skipSpace();
            if (consume(')'))
                return shape;
            const std::size_t start = pos_;
            int64_t value = 0;
            while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
                const int digit = text_[pos_++] - '0';
                if (value > (std::numeric_limits<int64_t>::max() - digit) / 10)
                    throw std::invalid_argument("dimension too large in 'shape'");
                value = value * 10 + digit;
            }
            if (pos_ == start)
                throw std::invalid_argument("expected a non-negative integer in 'shape' at offset " +
                                            std::to_string(pos_));
            consume('L');
            shape.push_back(value);
            skipSpace();
            if (consume(')'))
                return shape;
            expect(',');
        }
    }

    std::string_view text_;
    std::size_t pos_ = 0;
};

} // namespace

NpyHeader parseNpyHeader(std::string_view text) { return HeaderParser(text).parse(); }

} // namespace deformscope::common
