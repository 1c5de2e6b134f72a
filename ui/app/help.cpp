// Help ▸ Keyboard Shortcuts and Overlays, and Help ▸ About: non-modal windows built from
// the actions themselves (every shortcut a menu has) and the engine's versions.
#include "ui/app/main_window.h"

#include "ui/engine/engine.h"

#include <QAction>
#include <QCoreApplication>
#include <QDialog>
#include <QDialogButtonBox>
#include <QFileInfo>
#include <QMenuBar>
#include <QTextBrowser>
#include <QUrl>
#include <QVBoxLayout>

namespace deformscope::ui {

namespace {

// The README a user of this binary has: beside an installed one, else the checkout's.
QString readmePath() {
    const QString app = QCoreApplication::applicationDirPath();
    for (const QString& candidate :
         {app + QStringLiteral("/../share/doc/deformscope/README.md"), app + QStringLiteral("/../../../README.md"),
          QStringLiteral(DEFORMSCOPE_README)})
        if (QFileInfo::exists(candidate))
            return QFileInfo(candidate).canonicalFilePath();
    return {};
}

QDialog* textWindow(QWidget* parent, const QString& name, const QString& title, const QString& html) {
    auto* dialog = parent->findChild<QDialog*>(name);
    if (!dialog) {
        dialog = new QDialog(parent);
        dialog->setObjectName(name);
        auto* layout = new QVBoxLayout(dialog);
        auto* text = new QTextBrowser(dialog);
        text->setObjectName(name + QStringLiteral("Text"));
        text->setOpenExternalLinks(true);
        layout->addWidget(text);
        auto* buttons = new QDialogButtonBox(QDialogButtonBox::Close, dialog);
        QObject::connect(buttons, &QDialogButtonBox::rejected, dialog, &QDialog::hide);
        layout->addWidget(buttons);
        dialog->resize(640, 560);
    }
    dialog->setWindowTitle(title);
    dialog->findChild<QTextBrowser*>(name + QStringLiteral("Text"))->setHtml(html);
    dialog->show();
    dialog->raise();
    return dialog;
}

QString row(const QString& a, const QString& b) {
    return QStringLiteral("<tr><td style='padding-right:18px'><b>%1</b></td><td>%2</td></tr>").arg(a.toHtmlEscaped(), b);
}

} // namespace

void MainWindow::showHelp() {
    QString html = tr("<h3>Keyboard and mouse</h3><table>");
    // Every menu action with a shortcut, as the menus have them.
    for (QAction* menu : menuBar()->actions())
        if (menu->menu())
            for (QAction* a : menu->menu()->actions())
                if (!a->shortcut().isEmpty())
                    html += row(a->shortcut().toString(QKeySequence::NativeText), a->text().remove(QLatin1Char('&')));
    html += row(tr("Click"), tr("analyse the node under the pointer (on a RoI layer: the bin)"));
    html += row(tr("Arrow keys"), tr("move the node one feature of the layer; held, the results catch up with the last"));
    html += row(tr("Shift+drag"), tr("draw the object box the metrics use"));
    html += row(tr("Drag, or Space+drag"), tr("pan"));
    html += row(tr("Wheel, Ctrl++ / Ctrl+\u2212"), tr("zoom about the pointer / the centre"));
    html += QStringLiteral("</table>");
    html += tr("<h3>What the overlays show</h3><table>");
    html += row(tr("Sampling points"),
                tr("where the node reads the image through the deformable layers, level by level (1: the layer's own "
                   "taps); dot size and shading: the weight of each read (bilinear weight \u00d7 modulation \u00d7 "
                   "gradient)"));
    html += row(tr("Offsets"), tr("the layer's learned offsets as arrows, per tap or their mean, over the feature map"));
    html += row(tr("Modulation"), tr("DCNv2's mask: the mean modulation of each feature position (0 to 1)"));
    html += row(tr("ERF"), tr("the effective receptive field: |\u2202 node / \u2202 input pixel|, normalised; contours "
                              "enclose 50 % and 90 % of its mass"));
    html += row(tr("Saliency region"),
                tr("the smallest region that keeps the node's response within the error bound (\u03b5) when the rest "
                   "of the image is replaced by the baseline; verified by full forwards"));
    html += row(tr("Object box"), tr("the region the \u201cin object\u201d metrics count"));
    html += row(tr("Motion, labels"), tr("video models: the alignment layer's offsets read as motion, and a label carried "
                                        "by them and by optical flow"));
    html += QStringLiteral("</table>");
    const QString readme = readmePath();
    html += readme.isEmpty()
                ? tr("<p>The README (commands, formats, figures) comes with DeformScope's sources.</p>")
                : tr("<p>More in the README: <a href=\"%1\">%2</a></p>")
                      .arg(QUrl::fromLocalFile(readme).toString(), readme.toHtmlEscaped());
    textWindow(this, QStringLiteral("helpDialog"), tr("DeformScope help"), html);
}

void MainWindow::showAbout() {
    QString html = tr("<h3>DeformScope</h3><p>What each activation of a deformable network really looks at: its "
                      "sampling points, effective receptive field and error-bounded saliency region, side by "
                      "side.</p><table>");
    for (const auto& [name, version] : Engine::versions())
        html += row(name, version.toHtmlEscaped());
    html += QStringLiteral("</table>");
    textWindow(this, QStringLiteral("aboutDialog"), tr("About DeformScope"), html);
}

} // namespace deformscope::ui
