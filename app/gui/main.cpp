// deformscope: the desktop app.
//
//   deformscope [FILES...] [--image I] [--pixel x,y] [--layer L] [--session S]
//               [--out DIR] [--screenshot PNG] [--comparison|--single]
//
// FILES are models (.pt, .pth, .ts), an image (several: a video model's input
// frames, in order) and/or a session (.dsession), as if dropped on the window. With nothing given it opens the three sample models
// on a sample image with a node selected: the comparison a new user sees first.
// Without a display (no DISPLAY / WAYLAND_DISPLAY and no QT_QPA_PLATFORM) it
// says so, runs the same window offscreen and writes the comparison's figure and
// data to --out (default ./deformscope-comparison) instead.
#include "core/common/atomic_file.h"
#include "ui/app/main_window.h"

#include <QApplication>
#include <QBuffer>
#include <QCommandLineParser>
#include <QDir>
#include <QFileInfo>
#include <QScreen>
#include <QTimer>

#include <cstdio>
#include <optional>

namespace {

using deformscope::ui::MainWindow;

// The bundled samples: next to an installed binary (share/deformscope) or in the source tree.
QString samplesRoot() {
    const QString installed = QCoreApplication::applicationDirPath() + QStringLiteral("/../share/deformscope");
    if (QFileInfo::exists(installed + QStringLiteral("/sample_models/dcn_v2.pt")))
        return QDir(installed).absolutePath();
    return QStringLiteral(DEFORMSCOPE_SOURCE_DIR);
}

QString samplePath(const QString& root, const QString& kind, const QString& name) {
    if (kind == QLatin1String("models"))
        return root + QStringLiteral("/sample_models/") + name;
    // Installed: share/deformscope/samples; source tree: resources/samples.
    const QString installed = root + QStringLiteral("/samples/") + name;
    return QFileInfo::exists(installed) ? installed : root + QStringLiteral("/resources/samples/") + name;
}

void print(FILE* f, const QString& text) { std::fprintf(f, "%s\n", text.toLocal8Bit().constData()); }

} // namespace

int main(int argc, char** argv) {
    const bool headless = qEnvironmentVariableIsEmpty("DISPLAY") && qEnvironmentVariableIsEmpty("WAYLAND_DISPLAY") &&
                          qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM");
    if (headless)
        qputenv("QT_QPA_PLATFORM", "offscreen");
    QApplication app(argc, argv);
    QApplication::setApplicationName(QStringLiteral("DeformScope"));
    QApplication::setOrganizationName(QStringLiteral("DeformScope"));
    QApplication::setApplicationVersion(QStringLiteral("0.1.0"));
    QApplication::setDesktopFileName(QStringLiteral("deformscope"));

    QCommandLineParser parser;
    parser.setApplicationDescription(QStringLiteral("See where a deformable convolutional network looks."));
    parser.addHelpOption();
    parser.addVersionOption();
    parser.addPositionalArgument(QStringLiteral("files"), QStringLiteral("Models (.pt), an image and/or a session (.dsession)."));
    const QCommandLineOption imageOpt(QStringLiteral("image"), QStringLiteral("The image to open."), QStringLiteral("file"));
    const QCommandLineOption pixelOpt(QStringLiteral("pixel"), QStringLiteral("Select the node under this image pixel."),
                                      QStringLiteral("x,y"));
    const QCommandLineOption layerOpt(QStringLiteral("layer"), QStringLiteral("The layer to analyse."), QStringLiteral("name"));
    const QCommandLineOption sessionOpt(QStringLiteral("session"), QStringLiteral("Restore a saved session."), QStringLiteral("file"));
    const QCommandLineOption outOpt(QStringLiteral("out"),
                                    QStringLiteral("Without a display: where the comparison figure and data go."),
                                    QStringLiteral("dir"), QStringLiteral("deformscope-comparison"));
    const QCommandLineOption shotOpt(QStringLiteral("screenshot"),
                                     QStringLiteral("Grab the window into this PNG once the first result is shown, then quit."),
                                     QStringLiteral("png"));
    const QCommandLineOption labelOpt(QStringLiteral("label"),
                                      QStringLiteral("Video models: a label (mask image or keypoints JSON) of the "
                                                     "reference frame to propagate; given twice, the second is the "
                                                     "support frame's own, to score it."),
                                      QStringLiteral("file"));
    const QCommandLineOption motionOpt(QStringLiteral("motion"),
                                       QStringLiteral("Video models: show the alignment layer's offsets as motion "
                                                      "beside optical flow."));
    const QCommandLineOption singleOpt(QStringLiteral("single"), QStringLiteral("Start in the single-model view."));
    const QCommandLineOption sizeOpt(QStringLiteral("size"), QStringLiteral("Window size."), QStringLiteral("WxH"));
    parser.addOptions({imageOpt, pixelOpt, layerOpt, sessionOpt, outOpt, shotOpt, singleOpt, sizeOpt, labelOpt, motionOpt});
    parser.process(app);

    QStringList models, images;
    QString image = parser.value(imageOpt), session = parser.value(sessionOpt);
    for (const QString& f : parser.positionalArguments()) {
        const QString suffix = QFileInfo(f).suffix().toLower();
        if (suffix == QLatin1String("pt") || suffix == QLatin1String("pth") || suffix == QLatin1String("ts"))
            models.append(f);
        else if (suffix == QLatin1String("dsession"))
            session = f;
        else
            images.append(f);
    }
    // Several images: a video model's input frames, in the order given (side by side).
    if (images.size() == 1)
        image = images.front();
    else if (images.size() > 1)
        image = images.join(QLatin1Char('\n'));
    std::optional<QPointF> pixel;
    if (parser.isSet(pixelOpt)) {
        const QStringList xy = parser.value(pixelOpt).split(QLatin1Char(','));
        bool okX = false, okY = false;
        if (xy.size() == 2)
            pixel = QPointF(xy[0].toDouble(&okX), xy[1].toDouble(&okY));
        if (!okX || !okY) {
            print(stderr, QStringLiteral("deformscope: --pixel '%1': expected x,y").arg(parser.value(pixelOpt)));
            return 2;
        }
    }
    const bool firstRun = models.isEmpty() && session.isEmpty();
    if (firstRun) {
        const QString root = samplesRoot();
        for (const char* name : {"regular.pt", "dcn_v1.pt", "dcn_v2.pt"})
            models.append(samplePath(root, QStringLiteral("models"), QString::fromLatin1(name)));
        if (image.isEmpty()) {
            image = samplePath(root, QStringLiteral("samples"), QStringLiteral("sample_01.png"));
            if (!pixel)
                pixel = QPointF(58, 46); // on the disc's rim: where DCN's support bends to the object
        }
    }

    MainWindow window;
    {
        const QString root = samplesRoot();
        window.setSampleVideo(samplePath(root, QStringLiteral("models"), QStringLiteral("align.pt")),
                              {samplePath(root, QStringLiteral("samples"), QStringLiteral("pair_01_a.png")),
                               samplePath(root, QStringLiteral("samples"), QStringLiteral("pair_01_b.png"))},
                              {samplePath(root, QStringLiteral("samples"), QStringLiteral("pair_01_a_mask.png")),
                               samplePath(root, QStringLiteral("samples"), QStringLiteral("pair_01_b_mask.png"))});
    }
    if (parser.isSet(sizeOpt)) {
        const QStringList wh = parser.value(sizeOpt).split(QLatin1Char('x'));
        if (wh.size() == 2)
            window.resize(wh[0].toInt(), wh[1].toInt());
    }
    if (parser.isSet(singleOpt))
        window.setComparison(false);
    if (parser.isSet(motionOpt)) {
        deformscope::ui::CanvasOverlays o = window.overlays();
        o.motion = true;
        window.setOverlays(o);
    }
    window.setLabelsForNextFrames(parser.values(labelOpt));
    window.setAskForInputSettings(!headless);

    int exitCode = 0;
    const QString shot = parser.value(shotOpt);
    if (headless || !shot.isEmpty()) {
        const QString out = QDir(parser.value(outOpt)).absolutePath();
        if (headless)
            print(stdout, QStringLiteral("deformscope: no display (DISPLAY and WAYLAND_DISPLAY are unset), so no window; "
                                         "writing the comparison figure and data to %1").arg(out));
        QObject::connect(&window, &MainWindow::resultShown, &window, [&window, out, shot, headless] {
            if (!shot.isEmpty()) {
                // Let the views paint the result before grabbing.
                QTimer::singleShot(400, &window, [&window, shot, headless, out] {
                    QString problem;
                    QByteArray png;
                    QBuffer buffer(&png);
                    buffer.open(QIODevice::WriteOnly);
                    if (!window.grab().save(&buffer, "PNG"))
                        problem = QStringLiteral("%1: cannot encode the screenshot").arg(shot);
                    else
                        try {
                            deformscope::common::writeFileAtomically(shot.toStdString(), png.toStdString());
                        } catch (const std::exception& e) {
                            problem = QString::fromStdString(e.what());
                        }
                    const bool ok = problem.isEmpty();
                    print(ok ? stdout : stderr, ok ? QStringLiteral("screenshot: %1").arg(shot)
                                                   : QStringLiteral("deformscope: ") + problem);
                    if (headless)
                        window.exportTo(out);
                    else
                        QApplication::exit(ok ? 0 : 1);
                });
            } else {
                window.exportTo(out);
            }
        });
        QObject::connect(&window, &MainWindow::exportFinished, &window, [out](const QStringList& files) {
            for (const QString& f : files)
                print(stdout, QStringLiteral("  ") + f);
            print(stdout, QStringLiteral("the comparison figure: %1/compare.png (also .svg, .pdf)").arg(out));
            QApplication::exit(0);
        });
        QObject::connect(&window, &MainWindow::errorShown, &window, [&exitCode](const QString& message) {
            print(stderr, QStringLiteral("deformscope: ") + message);
            exitCode = 2;
            QApplication::exit(2);
        });
    }
    if (!headless)
        window.show();

    if (!session.isEmpty())
        window.openSession(session);
    else
        window.start(models, image, pixel, parser.value(layerOpt));
    const int rc = app.exec();
    return exitCode ? exitCode : rc;
}
