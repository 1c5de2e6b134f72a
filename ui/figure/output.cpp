// Writing figures and single panels as PNG, SVG or PDF: one renderer for every
// format, atomic writes, errors as "<path>: <what went wrong>". Called by
// saveFigure / savePanel's callers (the CLI, the GUI's engine and main window)
// on any thread that has its own QGuiApplication-backed fonts (see figure.h).
#include "ui/figure/figure.h"

#include "ui/figure/figure_internal.h"

#include "core/common/atomic_file.h"

#include <QBuffer>
#include <QCoreApplication>
#include <QFileInfo>
#include <QGuiApplication>
#include <QImage>
#include <QImageWriter>
#include <QMarginsF>
#include <QPageLayout>
#include <QPageSize>
#include <QPainter>
#include <QPdfWriter>
#include <QRect>
#include <QSvgGenerator>

#include <cmath>
#include <functional>

namespace deformscope::figure {
namespace {

using detail::qs;

// QSvgGenerator marks unsmoothed images with SVG 1.1's image-rendering=
// "optimizeSpeed", which browsers take as a hint only; add CSS `pixelated`,
// which they honour, so upscaled pixels stay square.
QByteArray markImagesPixelated(const QByteArray& svg)
{
    QByteArray out;
    out.reserve(svg.size() + 4096);
    qsizetype from = 0;
    for (;;) {
        const qsizetype at = svg.indexOf("<image ", from);
        const qsizetype end = at < 0 ? -1 : svg.indexOf('>', at);
        if (end < 0)
            break;
        out.append(svg.constData() + from, at - from);
        const QByteArray tag = svg.mid(at, end - at);
        if (tag.contains("image-rendering=\"optimizeSpeed\""))
            out.append("<image style=\"image-rendering:pixelated\" ").append(tag.constData() + 7, tag.size() - 7);
        else
            out.append(tag);
        from = end;
    }
    out.append(svg.constData() + from, svg.size() - from);
    return out;
}

// What a file holds: the page (`origin`, `size`) of a plane in figure units, a
// title for the SVG/PDF metadata, and how to paint the plane.
struct Drawing {
    QSizeF size;
    QString title;
    std::function<void(QPainter&)> paint;
    QPoint origin{0, 0}; // whole units, ≥ 0
};

// Paints the drawing's page on a vector device (figure units); false when the device cannot be painted on.
bool paintOn(QPaintDevice& device, const Drawing& drawing)
{
    QPainter painter;
    if (!painter.begin(&device))
        return false;
    painter.translate(-QPointF(drawing.origin));
    drawing.paint(painter);
    return painter.end();
}

std::string renderTo(const Drawing& drawing, const QString& format, double pngScale, QByteArray& bytes)
{
    const QSizeF size = drawing.size;
    QBuffer buffer(&bytes);
    buffer.open(QIODevice::WriteOnly);
    if (format == QLatin1String("png")) {
        const int w = int(std::ceil(size.width() * pngScale - 1e-6));
        const int h = int(std::ceil(size.height() * pngScale - 1e-6));
        if (double(w) * h > 400e6)
            return QStringLiteral("the PNG would be %1 × %2 pixels; lower the scale").arg(w).arg(h).toStdString();
        // The plane is rasterised from its own origin, then cut to the page, so
        // its pixels are those of any device that paints the plane unmoved (a
        // widget): shifted coordinates would round differently at edges.
        const QPoint x0(int(std::lround(drawing.origin.x() * pngScale)), int(std::lround(drawing.origin.y() * pngScale)));
        QImage image(x0.x() + w, x0.y() + h, QImage::Format_RGB32);
        if (image.isNull())
            return "cannot allocate the image";
        image.fill(Qt::white);
        {
            QPainter painter(&image);
            painter.scale(pngScale, pngScale);
            drawing.paint(painter);
        }
        if (!x0.isNull())
            image = image.copy(QRect(x0, QSize(w, h)));
        const int dpm = int(std::lround(72.0 * pngScale / 0.0254));
        image.setDotsPerMeterX(dpm);
        image.setDotsPerMeterY(dpm);
        QImageWriter writer(&buffer, "png");
        if (!writer.write(image.convertToFormat(QImage::Format_RGB888)))
            return "cannot encode PNG: " + writer.errorString().toStdString();
    } else if (format == QLatin1String("svg")) {
        QSvgGenerator generator;
        generator.setOutputDevice(&buffer);
        generator.setSize(QSize(int(size.width()), int(size.height())));
        generator.setViewBox(QRectF(QPointF(0, 0), size));
        generator.setResolution(72);
        generator.setTitle(drawing.title);
        generator.setDescription(QStringLiteral("DeformScope figure"));
        if (!paintOn(generator, drawing))
            return "cannot start the SVG generator";
        buffer.close();
        bytes = markImagesPixelated(bytes);
    } else {
        QPdfWriter writer(&buffer);
        writer.setResolution(72);
        writer.setCreator(QStringLiteral("DeformScope"));
        writer.setTitle(drawing.title);
        const QPageSize page(size, QPageSize::Point, QString(), QPageSize::ExactMatch);
        if (!writer.setPageLayout(
                QPageLayout(page, QPageLayout::Portrait, QMarginsF(0, 0, 0, 0), QPageLayout::Point)))
            return "cannot set the PDF page size";
        if (!paintOn(writer, drawing))
            return "cannot start the PDF writer";
    }
    return {};
}

// Checks the path and the drawing (`invalid`: why the drawing cannot be made,
// "" when it can), renders it in the suffix's format and writes it with the one
// atomic writer (common::writeFileAtomically).
std::string save(const Drawing& drawing, const std::string& path, double pngScale, const std::string& invalid)
{
    const QString file = qs(path);
    auto fail = [&](const std::string& what) { return (path.empty() ? std::string("(no path)") : path) + ": " + what; };
    if (path.empty())
        return fail("no file name given");
    const QString suffix = QFileInfo(file).suffix().toLower();
    if (suffix != QLatin1String("png") && suffix != QLatin1String("svg") && suffix != QLatin1String("pdf"))
        return fail(suffix.isEmpty() ? std::string("no file suffix; use .png, .svg or .pdf")
                                     : "unknown format \"." + suffix.toStdString() + "\"; use .png, .svg or .pdf");
    if (!qobject_cast<QGuiApplication*>(QCoreApplication::instance()))
        return fail("drawing a figure needs a QGuiApplication (QT_QPA_PLATFORM=offscreen where there is no display)");
    if (!invalid.empty())
        return fail(invalid);
    if (suffix == QLatin1String("png") && !(std::isfinite(pngScale) && pngScale > 0 && pngScale <= 16))
        return fail("PNG scale " + std::to_string(pngScale) + " is not in (0, 16]");

    QByteArray bytes;
    const std::string error = renderTo(drawing, suffix, pngScale, bytes);
    if (!error.empty())
        return fail(error);
    try {
        common::writeFileAtomically(path, std::string_view(bytes.constData(), size_t(bytes.size())));
    } catch (const std::exception& e) {
        std::string why = e.what(); // "<path>: <problem>"
        if (why.rfind(path + ": ", 0) == 0)
            why.erase(0, path.size() + 2);
        return fail("cannot write: " + why);
    }
    return {};
}

} // namespace

std::string detail::saveDrawing(const QSizeF& size, const std::string& title, const std::function<void(QPainter&)>& paint,
    const std::string& path)
{
    return save(Drawing{size, qs(title), paint}, path, 2.0, "");
}

std::string saveFigure(const Figure& figure, const std::string& path, double pngScale)
{
    const bool empty = figure.rows < 1 || figure.cols < 1;
    const Drawing drawing{empty ? QSizeF() : figureSize(figure), qs(figure.title),
        [&figure](QPainter& painter) { paintFigure(painter, figure); }};
    return save(drawing, path, pngScale, empty ? "empty figure: rows and cols must be at least 1" : "");
}

std::string savePanel(const Panel& panel, const QRectF& target, const QRect& page, const std::string& path,
    const UnitRange& units)
{
    const bool valid = page.width() >= 1 && page.height() >= 1 && page.left() >= 0 && page.top() >= 0
        && target.isValid() && detail::gridOf(panel).valid();
    Drawing drawing{QSizeF(page.size()), qs(panel.title), [&](QPainter& painter) {
                        painter.setClipRect(page); // the page: what is cut, and where arrows are culled
                        paintPanel(painter, panel, target, units);
                    }};
    drawing.origin = page.topLeft();
    return save(drawing, path, 1.0,
        valid ? "" : "nothing to draw: the panel has no image grid, or the page is empty or left of / above the origin");
}

} // namespace deformscope::figure
