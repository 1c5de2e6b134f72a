// N canvases side by side, one per open model (one ColumnView of a click each),
// sharing one overlay set and one view: zooming or panning any column moves
// them all. Under them, a table of the columns' metrics and each column's
// timing. GUI thread only; it shows what it is given and forwards what the
// user does (signals in input-grid coordinates, as Canvas).
#pragma once

#include "ui/canvas/canvas.h"
#include "ui/canvas/kernel_inset.h"
#include "ui/canvas/overlays.h"
#include "ui/view/view_data.h"

#include <QImage>
#include <QStringList>
#include <QWidget>

#include <vector>

class QLabel;
class QSplitter;
class QStackedWidget;
class QTableWidget;

namespace deformscope::ui {

class ElidedLabel;

class ComparisonView : public QWidget {
    Q_OBJECT
public:
    explicit ComparisonView(QWidget* parent = nullptr);
    ~ComparisonView() override;

    // One column per model, titled before any result (a click's ColumnView
    // later gives the layer kind badge and layer). Keeps the shown image; drops
    // results. At least one column is always shown (untitled with no models).
    void setColumnCount(int count, const QStringList& titles = {});
    int columnCount() const { return int(m_columns.size()); }
    void setColumnTitles(const QStringList& titles) { setColumnCount(int(titles.size()), titles); }
    void setColumnTitle(int column, const QString& title, const QString& layerKind = {}, const QString& layer = {});

    // The input-grid image before results: every column shows it, results dropped.
    void setImage(const QImage& image);
    // One click's results: column i shows click->columns[i] (the column count
    // follows the click's), or its error message in place of the canvas. Fills
    // the metrics table and the timings. A null click clears the results.
    void setClick(ClickViewPtr click);
    ClickViewPtr click() const { return m_click; }
    // No image, no results (each canvas shows its empty-state hint).
    void clear();
    // Every column's results belong to an older click (Canvas::setStale), until setClick.
    void setStale(bool stale);

    void setOverlays(const CanvasOverlays& overlays);
    const CanvasOverlays& overlays() const { return m_overlays; }
    void setObjectTool(bool on);
    void fitToWindow();

    // For the main window's actions and tests.
    Canvas* canvas(int column) const;          // nullptr when out of range
    QTableWidget* metricsTable() const { return m_table; }
    QString columnTitle(int column) const;      // the model name shown
    QString columnBadge(int column) const;      // the layer kind badge ("" when none)
    QString columnError(int column) const;      // the error shown in place of the canvas ("" when none)
    bool columnShowsError(int column) const;
    QString columnTiming(int column) const;
    // The column's resampled-kernel inset (Deformable Kernel models), nullptr when out of range.
    KernelInset* kernelInset(int column) const;

Q_SIGNALS:
    void nodeClicked(QPointF inputGridXY);
    void hovered(QPointF inputGridXY);
    void hoverLeft();
    void stepNode(int dy, int dx);
    void objectBoxDrawn(QRectF inputGridEdges);
    void viewChanged(double zoom, QPointF imageCentre);

private:
    struct Column {
        QWidget* box = nullptr;
        QLabel* title = nullptr;
        QLabel* badge = nullptr;
        ElidedLabel* layer = nullptr;
        QStackedWidget* stack = nullptr;
        Canvas* canvas = nullptr;
        QLabel* error = nullptr;
        ElidedLabel* timing = nullptr;
        KernelInset* kernel = nullptr;
    };

    Column makeColumn(int index);
    void syncFrom(Canvas* source);
    void fillTable();
    static QString badgeStyle(const QString& kind);

    std::vector<Column> m_columns;
    QWidget* m_columnArea = nullptr;
    QSplitter* m_splitter = nullptr;
    QTableWidget* m_table = nullptr;
    ElidedLabel* m_summary = nullptr;
    ClickViewPtr m_click;
    QImage m_image;
    CanvasOverlays m_overlays;
    bool m_objectTool = false;
    bool m_syncing = false;
};

} // namespace deformscope::ui
