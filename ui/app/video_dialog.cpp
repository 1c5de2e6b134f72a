#include "ui/app/video_dialog.h"

#include <QDialogButtonBox>
#include <QFileInfo>
#include <QFormLayout>
#include <QLabel>
#include <QSlider>
#include <QSpinBox>
#include <QVBoxLayout>

#include <algorithm>

namespace deformscope::ui {

QString inputsDisplayName(const QString& text) {
    const QStringList lines = text.split(QLatin1Char('\n'), Qt::SkipEmptyParts);
    QStringList names;
    QString frames;
    for (const QString& l : lines) {
        if (l.startsWith(QStringLiteral("frames:")))
            frames = l.mid(7).replace(QLatin1Char(','), QStringLiteral(", "));
        else
            names << QFileInfo(l).fileName();
    }
    return frames.isEmpty() ? names.join(QStringLiteral(" + ")) : names.join(QString()) + QStringLiteral(" (frames %1)").arg(frames);
}

VideoFramesDialog::VideoFramesDialog(const QString& videoPath, int frameCount, QWidget* parent)
    : QDialog(parent), m_path(videoPath), m_count(std::max(frameCount, 2)) {
    setWindowTitle(tr("Frames of %1").arg(QFileInfo(videoPath).fileName()));
    auto* form = new QFormLayout;
    m_slider = new QSlider(Qt::Horizontal, this);
    m_slider->setObjectName(QStringLiteral("frameSlider"));
    m_step = new QSpinBox(this);
    m_step->setObjectName(QStringLiteral("frameStep"));
    m_step->setRange(1, m_count - 1);
    m_step->setValue(1);
    m_label = new QLabel(this);
    form->addRow(tr("Reference frame t"), m_slider);
    form->addRow(tr("Support frame t + d, d ="), m_step);
    form->addRow(m_label);
    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, this);
    connect(buttons, &QDialogButtonBox::accepted, this, &QDialog::accept);
    connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
    auto* layout = new QVBoxLayout(this);
    layout->addLayout(form);
    layout->addWidget(buttons);
    connect(m_slider, &QSlider::valueChanged, this, [this] { update(); });
    connect(m_step, qOverload<int>(&QSpinBox::valueChanged), this, [this] { update(); });
    update();
}

int VideoFramesDialog::first() const { return m_slider->value(); }
int VideoFramesDialog::step() const { return m_step->value(); }

QString VideoFramesDialog::inputsText() const {
    return m_path + QStringLiteral("\nframes:%1,%2").arg(first()).arg(first() + step());
}

void VideoFramesDialog::update() {
    // The support frame must exist: t + d ≤ N − 1.
    m_slider->setRange(0, m_count - 1 - m_step->value());
    m_label->setText(tr("frames %1 and %2 of %3 (0 to %4), shown side by side")
                         .arg(first())
                         .arg(first() + step())
                         .arg(m_count)
                         .arg(m_count - 1));
}

} // namespace deformscope::ui
