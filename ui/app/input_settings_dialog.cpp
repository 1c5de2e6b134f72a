#include "ui/app/input_settings_dialog.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDialogButtonBox>
#include <QDoubleSpinBox>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QPushButton>
#include <QSpinBox>
#include <QVBoxLayout>

namespace deformscope::ui {

InputSettingsDialog::InputSettingsDialog(const ModelInfo& model, QWidget* parent) : QDialog(parent), m_path(model.path) {
    setObjectName(QStringLiteral("inputSettingsDialog"));
    setWindowTitle(tr("Input settings for %1").arg(QFileInfo(model.path).fileName()));
    auto* layout = new QVBoxLayout(this);
    // What the model's own metadata says (when it has some) is what the dialog shows and restores.
    auto* intro = new QLabel(
        model.hasMetadata
            ? tr("<b>%1</b>'s <tt>deformscope.json</tt> says how its input is prepared: the values below. Images "
                 "are read as RGB in [0, 1], then <tt>(x − mean) / std</tt> per channel. Changes apply to this "
                 "session only; Restore Defaults brings the metadata's values back.")
                  .arg(model.name.toHtmlEscaped())
            : tr("<b>%1</b> does not say how its input is prepared (it has no <tt>deformscope.json</tt>). Images "
                 "are read as RGB in [0, 1], then <tt>(x − mean) / std</tt> per channel. ImageNet's values are "
                 "filled in.")
                  .arg(model.name.toHtmlEscaped()),
        this);
    intro->setObjectName(QStringLiteral("inputSettingsIntro"));
    intro->setWordWrap(true);
    layout->addWidget(intro);
    auto* form = new QFormLayout;
    auto triple = [this](QDoubleSpinBox** boxes, double lo, double hi) {
        auto* row = new QHBoxLayout;
        for (int c = 0; c < 3; ++c) {
            boxes[c] = new QDoubleSpinBox(this);
            boxes[c]->setRange(lo, hi);
            boxes[c]->setDecimals(4);
            boxes[c]->setSingleStep(0.01);
            row->addWidget(boxes[c]);
        }
        return row;
    };
    form->addRow(tr("Mean (R, G, B)"), triple(m_mean, -10, 10));
    form->addRow(tr("Std (R, G, B)"), triple(m_std, 0.0001, 100));
    m_order = new QComboBox(this);
    m_order->addItems({QStringLiteral("RGB"), QStringLiteral("BGR")});
    form->addRow(tr("Channel order"), m_order);
    auto* size = new QHBoxLayout;
    m_resize = new QCheckBox(tr("Resize to"), this);
    m_height = new QSpinBox(this);
    m_width = new QSpinBox(this);
    for (QSpinBox* b : {m_height, m_width}) {
        b->setRange(8, 8192);
        b->setValue(224);
    }
    size->addWidget(m_resize);
    size->addWidget(m_height);
    size->addWidget(new QLabel(QStringLiteral("×"), this));
    size->addWidget(m_width);
    size->addWidget(new QLabel(tr("(H × W; off: the image's own size)"), this));
    form->addRow(tr("Input size"), size);
    connect(m_resize, &QCheckBox::toggled, m_height, &QWidget::setEnabled);
    connect(m_resize, &QCheckBox::toggled, m_width, &QWidget::setEnabled);
    layout->addLayout(form);
    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel | QDialogButtonBox::RestoreDefaults, this);
    connect(buttons, &QDialogButtonBox::accepted, this, &QDialog::accept);
    connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
    layout->addWidget(buttons);

    InputSettings s;
    for (int c = 0; c < 3; ++c) {
        s.mean[c] = model.mean[c];
        s.std[c] = model.std[c];
    }
    s.bgr = model.bgr;
    s.inputH = model.metadataInputH;
    s.inputW = model.metadataInputW;
    setSettings(s);
    // The defaults: the metadata's values, or ImageNet's for a model without.
    const InputSettings defaults = model.hasMetadata ? s : InputSettings{};
    connect(buttons->button(QDialogButtonBox::RestoreDefaults), &QPushButton::clicked, this,
            [this, defaults] { setSettings(defaults); });
}

InputSettings InputSettingsDialog::settings() const {
    InputSettings s;
    for (int c = 0; c < 3; ++c) {
        s.mean[c] = m_mean[c]->value();
        s.std[c] = m_std[c]->value();
    }
    s.bgr = m_order->currentIndex() == 1;
    s.inputH = m_resize->isChecked() ? m_height->value() : 0;
    s.inputW = m_resize->isChecked() ? m_width->value() : 0;
    return s;
}

void InputSettingsDialog::setSettings(const InputSettings& s) {
    for (int c = 0; c < 3; ++c) {
        m_mean[c]->setValue(s.mean[c]);
        m_std[c]->setValue(s.std[c]);
    }
    m_order->setCurrentIndex(s.bgr ? 1 : 0);
    m_resize->setChecked(s.inputH > 0);
    m_height->setEnabled(s.inputH > 0);
    m_width->setEnabled(s.inputH > 0);
    if (s.inputH > 0) {
        m_height->setValue(s.inputH);
        m_width->setValue(s.inputW);
    }
}

} // namespace deformscope::ui
