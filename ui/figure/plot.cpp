#include "ui/figure/plot.h"

#include "ui/figure/figure_internal.h"

#include <QFont>
#include <QFontMetricsF>
#include <QPainter>
#include <QPainterPath>
#include <QSizeF>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace deformscope::figure {

namespace {

using detail::qs;

// matplotlib's tab10, so lines read like the figures people know.
constexpr uint32_t kLineColours[] = {0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd,
                                     0x8c564b, 0xe377c2, 0x7f7f7f, 0xbcbd22, 0x17becf};

std::string label(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

// Tick values covering [lo, hi]: about five round steps, or (log) 1, 2, 5 per decade.
std::vector<double> ticks(double lo, double hi, bool log) {
    std::vector<double> out;
    if (log) {
        for (int e = int(std::floor(std::log10(lo))); e <= int(std::ceil(std::log10(hi))); ++e)
            for (double m : {1.0, 2.0, 5.0}) {
                const double v = m * std::pow(10.0, e);
                if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9))
                    out.push_back(v);
            }
        return out;
    }
    const double raw = (hi - lo) / 5;
    const double p = std::pow(10.0, std::floor(std::log10(raw)));
    const double step = raw / p < 1.5 ? p : raw / p < 3.5 ? 2 * p : raw / p < 7.5 ? 5 * p : 10 * p;
    for (double v = std::ceil(lo / step) * step; v <= hi + 1e-9 * step; v += step)
        out.push_back(std::abs(v) < 1e-12 * step ? 0.0 : v);
    return out;
}

} // namespace

std::string saveLinePlot(const LinePlot& plot, const std::string& path) {
    // The data's range: x linear, y linear or log10 over the values that can be drawn.
    double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
    auto usable = [&](double x, double y) { return std::isfinite(x) && std::isfinite(y) && (!plot.logY || y > 0); };
    for (const PlotSeries& s : plot.series)
        for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i)
            if (usable(s.x[i], s.y[i])) {
                x0 = std::min(x0, s.x[i]);
                x1 = std::max(x1, s.x[i]);
                y0 = std::min(y0, s.y[i]);
                y1 = std::max(y1, s.y[i]);
            }
    if (!(x0 <= x1))
        return path + ": nothing to plot (no finite points" + (plot.logY ? std::string(" above 0") : "") + ")";
    if (x0 == x1) {
        x0 -= 1;
        x1 += 1;
    }
    if (plot.logY) {
        y0 = std::pow(10.0, std::floor(std::log10(y0)));
        y1 = std::pow(10.0, std::ceil(std::log10(y1)));
        if (y0 == y1)
            y1 = y0 * 10;
    } else {
        if (y0 == y1) {
            y0 -= 1;
            y1 += 1;
        }
        const double pad = 0.05 * (y1 - y0);
        y0 -= pad;
        y1 += pad;
    }
    const QSizeF size(560, 380);
    const QRectF area(72, 44, 330, 268); // the axes; the legend right of them
    auto px = [&](double x) { return area.left() + (x - x0) / (x1 - x0) * area.width(); };
    auto py = [&](double y) {
        const double t = plot.logY ? (std::log10(y) - std::log10(y0)) / (std::log10(y1) - std::log10(y0))
                                   : (y - y0) / (y1 - y0);
        return area.bottom() - t * area.height();
    };
    auto paint = [&](QPainter& p) {
        p.setRenderHint(QPainter::Antialiasing);
        p.fillRect(QRectF(QPointF(0, 0), size), Qt::white);
        QFont font(QStringLiteral("DejaVu Sans"));
        font.setPointSizeF(9);
        p.setFont(font);
        const QFontMetricsF fm(font);
        // Grid and ticks.
        p.setPen(QPen(QColor(0xdd, 0xdd, 0xdd), 0.6));
        const std::vector<double> xt = ticks(x0, x1, false), yt = ticks(y0, y1, plot.logY);
        for (double v : xt)
            p.drawLine(QPointF(px(v), area.top()), QPointF(px(v), area.bottom()));
        for (double v : yt)
            p.drawLine(QPointF(area.left(), py(v)), QPointF(area.right(), py(v)));
        p.setPen(QPen(Qt::black, 0.9));
        p.drawRect(area);
        for (double v : xt) {
            const QString t = qs(label(v));
            p.drawText(QPointF(px(v) - fm.horizontalAdvance(t) / 2, area.bottom() + fm.height() + 2), t);
        }
        for (double v : yt) {
            const QString t = qs(label(v));
            p.drawText(QPointF(area.left() - fm.horizontalAdvance(t) - 5, py(v) + fm.ascent() / 2 - 1), t);
        }
        // Labels and title.
        const QString xl = qs(plot.xLabel), yl = qs(plot.yLabel);
        p.drawText(QPointF(area.center().x() - fm.horizontalAdvance(xl) / 2, area.bottom() + 2 * fm.height() + 8), xl);
        p.save();
        p.translate(16, area.center().y() + fm.horizontalAdvance(yl) / 2);
        p.rotate(-90);
        p.drawText(QPointF(0, 0), yl);
        p.restore();
        QFont bold = font;
        bold.setBold(true);
        bold.setPointSizeF(11);
        p.setFont(bold);
        p.drawText(QPointF(area.left(), 26), qs(plot.title));
        p.setFont(font);
        // The lines, markers at the points, and the legend.
        for (size_t k = 0; k < plot.series.size(); ++k) {
            const PlotSeries& s = plot.series[k];
            const QColor colour = detail::rgbColor(kLineColours[k % std::size(kLineColours)]);
            QPainterPath line;
            bool started = false;
            p.setPen(QPen(colour, 1.8));
            p.setBrush(colour);
            for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i) {
                if (!usable(s.x[i], s.y[i]))
                    continue;
                const QPointF q(px(s.x[i]), py(s.y[i]));
                if (started)
                    line.lineTo(q);
                else
                    line.moveTo(q);
                started = true;
                p.drawEllipse(q, 2.6, 2.6);
            }
            const double ly = area.top() + 8 + double(k) * (fm.height() + 6);
            if (plot.joined) {
                p.setBrush(Qt::NoBrush);
                p.drawPath(line);
                p.drawLine(QPointF(area.right() + 14, ly), QPointF(area.right() + 38, ly));
            } else {
                p.drawEllipse(QPointF(area.right() + 26, ly), 2.6, 2.6);
                p.setBrush(Qt::NoBrush);
            }
            p.setPen(Qt::black);
            p.drawText(QPointF(area.right() + 44, ly + fm.ascent() / 2 - 1), qs(s.name));
        }
        if (!plot.footer.empty()) {
            QFont small = font;
            small.setPointSizeF(7.5);
            p.setFont(small);
            p.setPen(QColor(0x55, 0x55, 0x55));
            p.drawText(QRectF(12, size.height() - 30, size.width() - 24, 28), Qt::TextWordWrap, qs(plot.footer));
        }
    };
    return detail::saveDrawing(size, plot.title, paint, path);
}

} // namespace deformscope::figure
