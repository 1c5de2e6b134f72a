// The small dialog that asks how to feed a model whose file carries no
// deformscope.json (per-channel mean and std, ImageNet by default, colour order and
// the input size), or shows and overrides what a model's deformscope.json says. Non-blocking (QDialog::open()); accepted() means
// settings() should be applied.
#pragma once

#include "ui/engine/engine.h"

#include <QDialog>

class QCheckBox;
class QComboBox;
class QDoubleSpinBox;
class QSpinBox;

namespace deformscope::ui {

class InputSettingsDialog : public QDialog {
    Q_OBJECT
public:
    InputSettingsDialog(const ModelInfo& model, QWidget* parent = nullptr);

    QString modelPath() const { return m_path; }
    InputSettings settings() const;
    void setSettings(const InputSettings& s);

private:
    QString m_path;
    QDoubleSpinBox* m_mean[3] = {};
    QDoubleSpinBox* m_std[3] = {};
    QComboBox* m_order = nullptr;
    QCheckBox* m_resize = nullptr;
    QSpinBox* m_height = nullptr;
    QSpinBox* m_width = nullptr;
};

} // namespace deformscope::ui
