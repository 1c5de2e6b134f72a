#include "ui/canvas/kernel_inset.h"

#include <QHBoxLayout>
#include <QLabel>
#include <QPainter>

#include <algorithm>

namespace deformscope::ui {

KernelPanelView::KernelPanelView(QWidget* parent) : QWidget(parent)
{
    setSizePolicy(QSizePolicy::Fixed, QSizePolicy::Fixed);
}

QSize KernelPanelView::sizeHint() const { return {156, 156}; }
QSize KernelPanelView::minimumSizeHint() const { return sizeHint(); }

void KernelPanelView::setPanel(const figure::Panel& panel)
{
    m_panel = panel;
    update();
}

void KernelPanelView::paintEvent(QPaintEvent*)
{
    QPainter painter(this);
    painter.fillRect(rect(), QColor(0x1b, 0x1c, 0x1f));
    // Keep the scope's aspect ratio, centred, with a small margin.
    const int w = m_panel.heat ? m_panel.heat->width : 0, h = m_panel.heat ? m_panel.heat->height : 0;
    if (w <= 0 || h <= 0)
        return;
    const double side = std::min(width(), height()) - 6.0;
    const double cell = side / std::max(w, h);
    const QRectF target((width() - cell * w) / 2, (height() - cell * h) / 2, cell * w, cell * h);
    figure::paintPanel(painter, m_panel, target);
}

KernelInset::KernelInset(QWidget* parent) : QWidget(parent)
{
    setObjectName(QStringLiteral("kernelInset"));
    auto* h = new QHBoxLayout(this);
    h->setContentsMargins(8, 4, 8, 4);
    h->setSpacing(8);
    m_view = new KernelPanelView(this);
    m_view->setToolTip(tr("Resampled kernel (Deformable Kernels): the scope kernel's |W|, each tap moving from its "
                          "regular grid position (ring) to where it reads (disc; area \u221d its weight)"));
    m_text = new QLabel(this);
    m_text->setObjectName(QStringLiteral("kernelCaption"));
    m_text->setWordWrap(true);
    m_text->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_text->setForegroundRole(QPalette::PlaceholderText);
    h->addWidget(m_view);
    h->addWidget(m_text, 1);
    hide();
}

void KernelInset::setColumn(const ColumnView* column)
{
    const bool shown = column && column->error.isEmpty() && column->hasKernel;
    const figure::Panel panel = shown ? column->kernel : figure::Panel{};
    m_view->setPanel(panel);
    QStringList lines{tr("Resampled kernel")};
    for (const std::string& c : panel.caption)
        lines << QString::fromStdString(c);
    m_text->setText(lines.join(QLatin1Char('\n')));
    setVisible(shown);
}

QString KernelInset::caption() const { return m_text->text(); }

} // namespace deformscope::ui
