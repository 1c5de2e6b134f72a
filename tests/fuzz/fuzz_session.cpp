// libFuzzer target: a GUI session file (ui/app/session.h: Qt's JSON reader, then ours and
// the request's). A damaged file must be refused with a problem, never crash; a file that
// is read must be restored exactly when written and read again (what File ▸ Save Session
// and Open Session promise), or the harness traps.
#include "ui/app/session.h"

#include <QJsonDocument>

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace deformscope::ui;
    QString problem;
    const auto first = parseSession(QByteArray(reinterpret_cast<const char*>(data), qsizetype(size)), &problem);
    if (!first) {
        if (problem.isEmpty())
            __builtin_trap(); // refused without saying why
        return 0;
    }
    const QByteArray written = QJsonDocument(first->toJson()).toJson(QJsonDocument::Indented);
    const auto second = parseSession(written, &problem);
    if (!second || !(*second == *first))
        __builtin_trap(); // a session that does not come back as it was saved
    return 0;
}
