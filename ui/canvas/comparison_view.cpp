#include "ui/canvas/comparison_view.h"
#include "ui/canvas/elided_label.h"
#include "ui/view/kind_badge.h"

#include <QFrame>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QSplitter>
#include <QStackedWidget>
#include <QTableWidget>
#include <QVBoxLayout>

#include <algorithm>
#include <map>

namespace deformscope::ui {

QString ComparisonView::badgeStyle(const QString& kind)
{
    return QStringLiteral("QLabel { background: %1; color: white; border-radius: 7px; padding: 1px 7px; font-weight: 600; }")
        .arg(kindBadge(kind).colour.name());
}

ComparisonView::ComparisonView(QWidget* parent) : QWidget(parent)
{
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->setSpacing(0);
    m_splitter = new QSplitter(Qt::Vertical, this);
    m_splitter->setChildrenCollapsible(false);
    layout->addWidget(m_splitter);

    m_columnArea = new QWidget(m_splitter);
    m_columnArea->setObjectName(QStringLiteral("columns"));
    auto* columns = new QHBoxLayout(m_columnArea);
    columns->setContentsMargins(0, 0, 0, 0);
    columns->setSpacing(1);
    m_splitter->addWidget(m_columnArea);

    auto* bottom = new QWidget(m_splitter);
    auto* bottomLayout = new QVBoxLayout(bottom);
    bottomLayout->setContentsMargins(6, 4, 6, 4);
    bottomLayout->setSpacing(4);
    m_summary = new ElidedLabel(bottom);
    m_summary->setObjectName(QStringLiteral("summary"));
    m_summary->setTextInteractionFlags(Qt::TextSelectableByMouse);
    bottomLayout->addWidget(m_summary);
    m_table = new QTableWidget(bottom);
    m_table->setObjectName(QStringLiteral("metrics"));
    m_table->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_table->setSelectionBehavior(QAbstractItemView::SelectRows);
    m_table->setAlternatingRowColors(true);
    m_table->setWordWrap(false);
    m_table->horizontalHeader()->setSectionResizeMode(QHeaderView::Stretch);
    m_table->verticalHeader()->setDefaultAlignment(Qt::AlignLeft | Qt::AlignVCenter);
    // The table's room is fixed before any result, for the eleven metrics a click gives
    // (more rows scroll): a result fills it without moving the canvases.
    const int row = m_table->fontMetrics().height() + 6;
    m_table->verticalHeader()->setSectionResizeMode(QHeaderView::Fixed);
    m_table->verticalHeader()->setMinimumSectionSize(row);
    m_table->verticalHeader()->setDefaultSectionSize(row);
    m_table->setSizePolicy(QSizePolicy::Ignored, QSizePolicy::Fixed);
    m_table->setFixedHeight(12 * row + 2 * m_table->frameWidth() + 2);
    bottomLayout->addWidget(m_table);
    m_splitter->addWidget(bottom);
    m_splitter->setStretchFactor(0, 4);
    m_splitter->setStretchFactor(1, 1);

    setColumnCount(1);
}

ComparisonView::~ComparisonView() = default;

ComparisonView::Column ComparisonView::makeColumn(int index)
{
    Column c;
    c.box = new QFrame(m_columnArea);
    c.box->setObjectName(QStringLiteral("column%1").arg(index));
    auto* v = new QVBoxLayout(c.box);
    v->setContentsMargins(0, 0, 0, 0);
    v->setSpacing(0);

    auto* header = new QWidget(c.box);
    auto* h = new QHBoxLayout(header);
    h->setContentsMargins(8, 4, 8, 4);
    h->setSpacing(6);
    c.title = new QLabel(header);
    c.title->setObjectName(QStringLiteral("title"));
    QFont bold = c.title->font();
    bold.setBold(true);
    bold.setPointSizeF(bold.pointSizeF() * 1.1);
    c.title->setFont(bold);
    c.badge = new QLabel(header);
    c.badge->setObjectName(QStringLiteral("badge"));
    c.badge->hide();
    c.layer = new ElidedLabel(header);
    c.layer->setObjectName(QStringLiteral("layer"));
    c.layer->setForegroundRole(QPalette::PlaceholderText);
    c.layer->setTextInteractionFlags(Qt::TextSelectableByMouse);
    c.layer->setAlignment(Qt::AlignRight | Qt::AlignVCenter);
    h->addWidget(c.title);
    h->addWidget(c.badge);
    h->addWidget(c.layer, 1);
    v->addWidget(header);

    c.stack = new QStackedWidget(c.box);
    c.canvas = new Canvas(c.stack);
    c.canvas->setObjectName(QStringLiteral("canvas%1").arg(index));
    c.canvas->setOverlays(m_overlays);
    c.canvas->setObjectTool(m_objectTool);
    c.error = new QLabel(c.stack);
    c.error->setObjectName(QStringLiteral("error"));
    c.error->setWordWrap(true);
    c.error->setAlignment(Qt::AlignCenter);
    c.error->setTextInteractionFlags(Qt::TextSelectableByMouse);
    c.error->setStyleSheet(QStringLiteral("QLabel { background: #1b1c1f; color: #ff8a80; padding: 24px; }"));
    c.stack->addWidget(c.canvas);
    c.stack->addWidget(c.error);
    v->addWidget(c.stack, 1);

    c.kernel = new KernelInset(c.box);
    v->addWidget(c.kernel);

    c.timing = new ElidedLabel(c.box);
    c.timing->setObjectName(QStringLiteral("timing"));
    c.timing->setContentsMargins(8, 2, 8, 2);
    c.timing->setForegroundRole(QPalette::PlaceholderText);
    c.timing->setTextInteractionFlags(Qt::TextSelectableByMouse);
    v->addWidget(c.timing);

    Canvas* canvas = c.canvas;
    connect(canvas, &Canvas::viewChanged, this, [this, canvas] { syncFrom(canvas); });
    connect(canvas, &Canvas::nodeClicked, this, &ComparisonView::nodeClicked);
    connect(canvas, &Canvas::hovered, this, &ComparisonView::hovered);
    connect(canvas, &Canvas::hoverLeft, this, &ComparisonView::hoverLeft);
    connect(canvas, &Canvas::stepNode, this, &ComparisonView::stepNode);
    connect(canvas, &Canvas::objectBoxDrawn, this, &ComparisonView::objectBoxDrawn);
    return c;
}

void ComparisonView::setColumnCount(int count, const QStringList& titles)
{
    count = std::max(1, count);
    // The view to keep: the first column's, unless it just fits.
    const bool fitted = m_columns.empty() || m_columns.front().canvas->isFitted();
    const double zoom = m_columns.empty() ? 1.0 : m_columns.front().canvas->zoom();
    const QPointF centre = m_columns.empty() ? QPointF() : m_columns.front().canvas->viewCentre();
    auto* layout = static_cast<QHBoxLayout*>(m_columnArea->layout());
    // deleteLater: this may run inside a handler of one of these canvases' signals.
    for (Column& c : m_columns) {
        c.canvas->disconnect(this);
        c.box->hide();
        layout->removeWidget(c.box);
        c.box->deleteLater();
    }
    m_columns.clear();
    m_click.reset();
    for (int i = 0; i < count; ++i) {
        m_columns.push_back(makeColumn(i));
        layout->addWidget(m_columns.back().box, 1);
        m_columns.back().canvas->setImage(m_image);
        setColumnTitle(i, i < titles.size() ? titles[i] : QString());
    }
    if (!fitted && !m_image.isNull()) {
        m_syncing = true;
        for (Column& c : m_columns)
            c.canvas->setView(zoom, centre);
        m_syncing = false;
    }
    fillTable();
}

void ComparisonView::setColumnTitle(int column, const QString& title, const QString& layerKind, const QString& layer)
{
    if (column < 0 || column >= columnCount())
        return;
    Column& c = m_columns[size_t(column)];
    c.title->setText(title);
    c.title->setToolTip(title);
    c.badge->setText(kindBadge(layerKind).text);
    c.badge->setStyleSheet(badgeStyle(layerKind));
    c.badge->setToolTip(layerKind.isEmpty() ? QString() : tr("layer kind: %1").arg(layerKind));
    c.badge->setVisible(!layerKind.isEmpty());
    c.layer->setText(layer);
    if (m_table->columnCount() == columnCount())
        m_table->setHorizontalHeaderItem(column, new QTableWidgetItem(title));
}

void ComparisonView::setImage(const QImage& image)
{
    m_image = image;
    m_click.reset();
    for (Column& c : m_columns) {
        c.stack->setCurrentWidget(c.canvas);
        c.canvas->setImage(image);
        c.timing->clear();
        c.kernel->setColumn(nullptr);
    }
    fillTable();
}

void ComparisonView::clear()
{
    m_image = QImage();
    m_click.reset();
    for (Column& c : m_columns) {
        c.stack->setCurrentWidget(c.canvas);
        c.canvas->clear();
        c.timing->clear();
        c.kernel->setColumn(nullptr);
    }
    fillTable();
}

void ComparisonView::setClick(ClickViewPtr click)
{
    if (!click) {
        setImage(m_image);
        return;
    }
    const int n = int(click->columns.size());
    if (n != columnCount() && n > 0) {
        QStringList titles;
        for (const ColumnView& col : click->columns)
            titles << col.model;
        setColumnCount(n, titles);
    }
    m_click = click;
    m_image = click->image;
    for (int i = 0; i < columnCount(); ++i) {
        Column& c = m_columns[size_t(i)];
        c.canvas->setColumn(click, i);
        if (i >= n) {
            c.stack->setCurrentWidget(c.canvas);
            c.timing->clear();
            c.kernel->setColumn(nullptr);
            continue;
        }
        const ColumnView& col = click->columns[size_t(i)];
        c.kernel->setColumn(&col);
        setColumnTitle(i, col.model.isEmpty() ? c.title->text() : col.model, col.layerKind, col.layer);
        if (!col.error.isEmpty()) {
            c.error->setText(QStringLiteral("\u26a0 ") + col.error);
            c.stack->setCurrentWidget(c.error);
        } else {
            c.error->clear();
            c.stack->setCurrentWidget(c.canvas);
        }
        QString timing = col.timing;
        if (timing.isEmpty() && col.seconds > 0)
            timing = tr("%1 s").arg(col.seconds, 0, 'f', 2);
        if (col.error.isEmpty() && (col.fy != 0 || col.fx != 0 || col.hasSampling || col.hasErf || col.hasSaliency))
            timing = tr("node (fx %1, fy %2) \u00b7 %3").arg(col.fx).arg(col.fy).arg(col.response.isEmpty() ? QStringLiteral("sum") : col.response)
                + (timing.isEmpty() ? QString() : QStringLiteral(" \u00b7 ") + timing);
        c.timing->setText(timing);
        c.timing->setToolTip(col.notes.join(QLatin1Char('\n')));
    }
    fillTable();
}

void ComparisonView::fillTable()
{
    m_table->clear();
    const int cols = columnCount();
    m_table->setColumnCount(cols);
    QStringList headers;
    for (const Column& c : m_columns)
        headers << c.title->text();
    m_table->setHorizontalHeaderLabels(headers);
    if (!m_click) {
        m_table->setRowCount(0);
        m_summary->clear();
        return;
    }
    // Rows: metric keys in order of first appearance over the columns.
    std::vector<QString> keys;
    std::map<QString, QString> labels;
    for (const ColumnView& col : m_click->columns)
        for (const Metric& m : col.metrics)
            if (labels.emplace(m.key, m.label.isEmpty() ? m.key : m.label).second)
                keys.push_back(m.key);
    m_table->setRowCount(int(keys.size()));
    for (int r = 0; r < int(keys.size()); ++r) {
        auto* head = new QTableWidgetItem(labels[keys[size_t(r)]]);
        head->setToolTip(keys[size_t(r)]);
        m_table->setVerticalHeaderItem(r, head);
        for (int c = 0; c < cols && c < int(m_click->columns.size()); ++c) {
            const ColumnView& col = m_click->columns[size_t(c)];
            QString text = QStringLiteral("\u2014");
            for (const Metric& m : col.metrics)
                if (m.key == keys[size_t(r)]) {
                    text = !m.text.isEmpty() ? m.text : m.value < 0 ? tr("n/a") : QString::number(m.value, 'g', 4);
                    break;
                }
            auto* item = new QTableWidgetItem(text);
            item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
            m_table->setItem(r, c, item);
        }
    }
    // (The table keeps the height the constructor reserved: more rows scroll.)
    QString summary = tr("click (%1, %2) \u00b7 %n model(s)", nullptr, int(m_click->columns.size()))
                          .arg(m_click->click.x(), 0, 'f', 1)
                          .arg(m_click->click.y(), 0, 'f', 1);
    if (m_click->seconds > 0)
        summary += tr(" \u00b7 %1 s").arg(m_click->seconds, 0, 'f', 2);
    if (m_click->cancelled)
        summary += tr(" \u00b7 saliency search cancelled (no region shown)");
    else if (m_click->partial)
        summary += tr(" \u00b7 saliency regions: searching\u2026");
    m_summary->setText(summary);
}

void ComparisonView::setStale(bool stale)
{
    for (const Column& c : m_columns)
        c.canvas->setStale(stale);
}

void ComparisonView::syncFrom(Canvas* source)
{
    if (m_syncing)
        return;
    m_syncing = true;
    if (source->isFitted()) {
        // Fitted: every column at the zoom that fits the smallest shown canvas,
        // so the columns stay comparable pixel for pixel.
        double zoom = 0;
        for (const Column& c : m_columns)
            if (c.stack->currentWidget() == c.canvas && c.canvas->hasImage())
                zoom = zoom > 0 ? std::min(zoom, c.canvas->fitZoom()) : c.canvas->fitZoom();
        for (Column& c : m_columns)
            c.canvas->fitToWindow(zoom);
    } else {
        for (Column& c : m_columns)
            if (c.canvas != source)
                c.canvas->setView(source->zoom(), source->viewCentre(), source->isInteracting());
    }
    m_syncing = false;
    Q_EMIT viewChanged(source->zoom(), source->viewCentre());
}

void ComparisonView::setOverlays(const CanvasOverlays& overlays)
{
    m_overlays = overlays;
    for (Column& c : m_columns)
        c.canvas->setOverlays(overlays);
}

void ComparisonView::setObjectTool(bool on)
{
    m_objectTool = on;
    for (Column& c : m_columns)
        c.canvas->setObjectTool(on);
}

void ComparisonView::fitToWindow()
{
    if (!m_columns.empty())
        m_columns.front().canvas->fitToWindow(); // syncFrom fits the others alike
}

Canvas* ComparisonView::canvas(int column) const
{
    return column >= 0 && column < columnCount() ? m_columns[size_t(column)].canvas : nullptr;
}

QString ComparisonView::columnTitle(int column) const
{
    return column >= 0 && column < columnCount() ? m_columns[size_t(column)].title->text() : QString();
}

QString ComparisonView::columnBadge(int column) const
{
    if (column < 0 || column >= columnCount() || m_columns[size_t(column)].badge->isHidden())
        return {};
    return m_columns[size_t(column)].badge->text();
}

QString ComparisonView::columnError(int column) const
{
    if (!columnShowsError(column))
        return {};
    QString text = m_columns[size_t(column)].error->text();
    if (text.startsWith(QStringLiteral("\u26a0 ")))
        text.remove(0, 2);
    return text;
}

bool ComparisonView::columnShowsError(int column) const
{
    return column >= 0 && column < columnCount()
        && m_columns[size_t(column)].stack->currentWidget() == m_columns[size_t(column)].error;
}

KernelInset* ComparisonView::kernelInset(int column) const
{
    return column >= 0 && column < columnCount() ? m_columns[size_t(column)].kernel : nullptr;
}

QString ComparisonView::columnTiming(int column) const
{
    return column >= 0 && column < columnCount() ? m_columns[size_t(column)].timing->text() : QString();
}

} // namespace deformscope::ui
