// A small square under a column's canvas that shows a Deformable Kernel
// layer's resampled kernel (ColumnView::kernel, figure::kernelPanel): the scope
// weights, each tap's move from its base grid position and its weight, and the
// panel's caption beside it. GUI thread only; hidden when there is no kernel view.
#pragma once

#include "ui/figure/figure.h"
#include "ui/view/view_data.h"

#include <QString>
#include <QWidget>

class QLabel;

namespace deformscope::ui {

class KernelPanelView : public QWidget {
    Q_OBJECT
public:
    explicit KernelPanelView(QWidget* parent = nullptr);
    QSize sizeHint() const override;
    QSize minimumSizeHint() const override;
    void setPanel(const figure::Panel& panel);
    const figure::Panel& panel() const { return m_panel; }

protected:
    void paintEvent(QPaintEvent* event) override;

private:
    figure::Panel m_panel;
};

class KernelInset : public QWidget {
    Q_OBJECT
public:
    explicit KernelInset(QWidget* parent = nullptr);
    // Shows the column's kernel panel (and its caption) when it has one and no
    // error; hides itself otherwise, and for nullptr.
    void setColumn(const ColumnView* column);
    QString caption() const; // the caption lines shown, for tests
    KernelPanelView* view() const { return m_view; }

private:
    KernelPanelView* m_view = nullptr;
    QLabel* m_text = nullptr;
};

} // namespace deformscope::ui
