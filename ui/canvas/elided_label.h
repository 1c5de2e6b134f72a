// A one-line label that never asks for more width than it gets: text wider than the
// label ends in "…" (the whole text in its tooltip), so a long timing or layer name
// cannot widen the window or push the docks aside.
#pragma once

#include <QLabel>

namespace deformscope::ui {

class ElidedLabel : public QLabel {
    Q_OBJECT
public:
    explicit ElidedLabel(QWidget* parent = nullptr);
    void setText(const QString& text); // hides QLabel::setText: keeps the tooltip the whole text
    QSize minimumSizeHint() const override;
    QSize sizeHint() const override;

protected:
    void paintEvent(QPaintEvent* event) override;
};

} // namespace deformscope::ui
