// composeView and the view's export (view_panel.h): pure functions of a click,
// a column and the overlays. The Canvas calls them on the GUI thread, and so does
// the main window's export; nothing here keeps state.
#include "ui/canvas/view_panel.h"

#include <algorithm>
#include <cmath>

namespace deformscope::ui {
namespace {

bool validImage(const figure::Image& im)
{
    return im.width > 0 && im.height > 0 && im.rgb.size() == size_t(im.width) * size_t(im.height) * 3;
}

// The column's offset field on the input grid, its cells placed from the node's.
figure::OffsetField offsetFieldOf(const ColumnView& col)
{
    figure::OffsetField f;
    f.featureH = col.featureH;
    f.featureW = col.featureW;
    f.taps = col.taps;
    f.arrows = col.offsets;
    if (col.hasModulation)
        f.modulation = col.modulation;
    const double jx = col.nodeCell.width() > 0 ? col.nodeCell.width() : 1.0;
    const double jy = col.nodeCell.height() > 0 ? col.nodeCell.height() : 1.0;
    f.jump = {jx, jy};
    f.start = {col.nodeCentre.x() - col.fx * jx, col.nodeCentre.y() - col.fy * jy};
    f.anchor = {col.fx, col.fy};
    return f;
}

} // namespace

figure::Image toFigureImage(const QImage& source)
{
    figure::Image out;
    if (source.isNull())
        return out;
    const QImage rgb = source.convertToFormat(QImage::Format_RGB888);
    out.width = rgb.width();
    out.height = rgb.height();
    out.rgb.resize(size_t(out.width) * size_t(out.height) * 3);
    for (int y = 0; y < out.height; ++y)
        std::copy_n(rgb.constScanLine(y), size_t(out.width) * 3, out.rgb.begin() + ptrdiff_t(size_t(y) * out.width * 3));
    return out;
}

figure::Image clickBackground(const ClickView& click)
{
    if (validImage(click.background)
        && (click.image.isNull()
            || (click.image.width() == click.background.width && click.image.height() == click.background.height)))
        return click.background;
    return toFigureImage(click.image);
}

uint32_t contourColorAgainst(const figure::Image& image)
{
    // The mean luminance of the image: white lines on a dark one, a deep blue on a light one
    // (both carry the dark halo paintPanel gives every line).
    double sum = 0;
    const size_t pixels = size_t(image.width) * size_t(image.height);
    for (size_t i = 0; i < pixels; ++i)
        sum += 0.299 * image.rgb[i * 3] + 0.587 * image.rgb[i * 3 + 1] + 0.114 * image.rgb[i * 3 + 2];
    const double mean = pixels ? sum / double(pixels) : 0;
    return mean > 140 ? 0x1038c8 : 0xffffff;
}

figure::Panel composeView(const figure::Image& background, const ClickView* click, int column,
                          const CanvasOverlays& o)
{
    figure::Panel panel;
    if (!validImage(background))
        return panel;
    panel.background = background;
    const size_t pixels = size_t(background.width) * size_t(background.height);
    if (!click || column < 0 || size_t(column) >= click->columns.size())
        return panel;
    const ColumnView& col = click->columns[size_t(column)];
    if (!col.error.isEmpty())
        return panel;
    if (o.sampling && col.hasSampling) {
        for (figure::Point p : col.sampling.points) {
            if (!o.levelShown(p.level))
                continue;
            if (!o.weightShading)
                p.weight = 1;
            panel.points.push_back(p);
        }
        panel.levels = col.levels;
    }
    if ((o.erf || o.erfContours) && col.hasErf && col.erf.heat) {
        figure::Heat heat = *col.erf.heat;
        heat.colormap = o.erfColormap.toStdString();
        heat.log = o.erfLog;
        heat.map = o.erf;
        if (!o.erfContours)
            heat.contours.clear();
        else if (!o.erf)
            heat.contourRgb = contourColorAgainst(background);
        panel.heat = std::move(heat);
    }
    if (col.hasSaliency && col.saliency.mask.size() == pixels && (o.saliencyOutline || o.saliencyMasked)) {
        const std::vector<uint8_t>& mask = col.saliency.mask;
        if (o.saliencyOutline) {
            panel.mask = mask; // the figure's look: outlined, and dimmed outside when masked
            panel.maskDims = o.saliencyMasked;
        } else {
            // The masked image alone: dim the background where the region
            // leaves it out (by the figure's factor) under every other layer.
            for (size_t i = 0; i < pixels; ++i)
                if (mask[i] == 0)
                    for (int k = 0; k < 3; ++k) {
                        uint8_t& c = panel.background.rgb[i * 3 + size_t(k)];
                        c = uint8_t(std::lround(c * 0.3));
                    }
        }
    }
    if (std::isfinite(col.nodeCentre.x()) && std::isfinite(col.nodeCentre.y())
        && (col.hasSampling || col.hasErf || col.hasSaliency || !col.nodeCentre.isNull())) {
        panel.node = std::array<double, 2>{col.nodeCentre.x(), col.nodeCentre.y()};
        panel.nodeCell = {col.nodeCell.width(), col.nodeCell.height()};
    }
    if (o.object) {
        const QRectF b = click->objectBox.normalized();
        if (!click->objectBox.isNull()) {
            // ClickView's box is in pixel edges; the figure's in centre coordinates.
            panel.objectBox = std::array<double, 4>{b.left() - 0.5, b.top() - 0.5, b.right() - 0.5, b.bottom() - 0.5};
        } else {
            for (const figure::Panel* p : {&col.sampling, &col.erf, &col.saliency})
                if (p->objectMask.size() == pixels) {
                    panel.objectMask = p->objectMask;
                    break;
                }
        }
    }
    if (o.motion && col.hasMotion && col.motionTint.width == background.width
        && col.motionTint.height == background.height)
        panel.tint = col.motionTint;
    if (o.labels) {
        panel.labels = col.labels;
        panel.markers = col.markers;
    }
    const bool arrows = o.offsets != CanvasOverlays::Offsets::Off;
    if (arrows || o.modulation) {
        panel.offsets = offsetFieldOf(col);
        panel.arrows = o.offsets == CanvasOverlays::Offsets::PerTap ? figure::Arrows::PerTap
            : o.offsets == CanvasOverlays::Offsets::Mean           ? figure::Arrows::Mean
                                                                   : figure::Arrows::None;
        panel.modulationMap = o.modulation;
    }
    return panel;
}

std::optional<figure::Panel> withoutContours(const figure::Panel& panel)
{
    if (!panel.heat || panel.heat->contours.empty())
        return std::nullopt;
    figure::Panel draft = panel;
    draft.heat->contours.clear();
    return draft;
}

QRect visibleRect(const QRectF& imageRect, const QSize& widgetSize)
{
    const QRectF shown = imageRect.intersected(QRectF(QPointF(0, 0), QSizeF(widgetSize)));
    // Whole pixels only: a pixel the image covers in part would mix it with
    // what lies under it, which differs between the widget and a file.
    const int left = int(std::ceil(shown.left())), top = int(std::ceil(shown.top()));
    const int right = int(std::floor(shown.right())), bottom = int(std::floor(shown.bottom()));
    if (shown.isEmpty() || right <= left || bottom <= top)
        return {};
    return QRect(QPoint(left, top), QPoint(right - 1, bottom - 1));
}

QString saveView(const figure::Panel& panel, const QRectF& imageRect, const QRect& visible, const QString& path)
{
    return QString::fromStdString(figure::savePanel(panel, imageRect, visible, path.toStdString(), kScreenUnits));
}

} // namespace deformscope::ui
