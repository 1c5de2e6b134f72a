// Runs deformscope-cli (DEFORMSCOPE_CLI) as a user does and keeps its exit code
// and output, for the CLI's tests.
#pragma once

#include <QtCore/QProcess>
#include <QtCore/QString>
#include <QtCore/QStringList>

namespace deformscope::test {

struct CliRun {
    int exitCode = -1; // -1: it crashed or did not finish within 10 minutes
    QString out, err;
};

inline CliRun cli(const QStringList& args) {
    QProcess p;
    p.start(QStringLiteral(DEFORMSCOPE_CLI), args);
    CliRun r;
    if (!p.waitForFinished(600000))
        return r;
    r.exitCode = p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1;
    r.out = QString::fromUtf8(p.readAllStandardOutput());
    r.err = QString::fromUtf8(p.readAllStandardError());
    return r;
}

} // namespace deformscope::test
