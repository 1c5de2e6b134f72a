// Tests of deformscope-cli as a user runs it: exit codes and what it prints.
#include <QtCore/QProcess>
#include <QtTest/QtTest>

namespace {

struct Run {
    int exitCode = -1;
    QString out, err;
};

Run cli(const QStringList& args) {
    QProcess p;
    p.start(QStringLiteral(DEFORMSCOPE_CLI), args);
    Run r;
    if (!p.waitForFinished(600000))
        return r;
    r.exitCode = p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1;
    r.out = QString::fromUtf8(p.readAllStandardOutput());
    r.err = QString::fromUtf8(p.readAllStandardError());
    return r;
}

} // namespace

class TestCli : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void selftestPassesAndPrintsTable() {
        const Run r = cli({"selftest", "--device", "cpu"});
        QCOMPARE(r.exitCode, 0);
        QVERIFY(r.out.contains("PASS   cpu"));
        QVERIFY(!r.out.contains("FAIL"));
        QVERIFY(r.out.contains(QRegularExpression("\\n\\d+ passed, 0 failed\\n")));
        QVERIFY(r.out.contains("finite differences"));
        QVERIFY(r.out.contains("zero offsets, unit mask == conv2d"));
    }

    void benchPrintsTimesForNamedShapes() {
        const Run r = cli({"bench", "--shapes", "tiny", "--repeat", "1"});
        QCOMPARE(r.exitCode, 0);
        QVERIFY(r.out.contains(QRegularExpression("\\| tiny \\| 2,8,8,16x16,3x3 \\| fwd \\| [0-9.]+ \\| [0-9.]+ \\|")));
        QVERIFY(r.out.contains("| fwd+bwd |"));
    }

    void badUsageExitsWithTwo_data() {
        QTest::addColumn<QStringList>("args");
        QTest::addColumn<QString>("message");
        QTest::newRow("no command") << QStringList{} << "usage: deformscope-cli";
        QTest::newRow("unknown command") << QStringList{"frobnicate"} << "unknown command 'frobnicate'";
        QTest::newRow("selftest bad device") << QStringList{"selftest", "--device", "tpu"} << "--device must be cpu, cuda or all";
        QTest::newRow("bench unknown shape") << QStringList{"bench", "--shapes", "huge"} << "unknown shape 'huge'";
        QTest::newRow("bench bad repeat") << QStringList{"bench", "--repeat", "zero"} << "--repeat must be a positive integer";
        QTest::newRow("bench unknown option") << QStringList{"bench", "--fast"} << "unexpected argument '--fast'";
    }
    void badUsageExitsWithTwo() {
        QFETCH(QStringList, args);
        QFETCH(QString, message);
        const Run r = cli(args);
        QCOMPARE(r.exitCode, 2);
        QVERIFY2(r.err.contains(message), qPrintable(r.err));
    }
};

QTEST_GUILESS_MAIN(TestCli)
#include "tst_cli.moc"
