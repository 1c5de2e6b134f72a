// Choosing two frames of a video as a model's input pair: a slider for the
// first frame, a step to the second (t, t + d), the video's length shown.
#pragma once

#include <QDialog>
#include <QString>

class QLabel;
class QSlider;
class QSpinBox;

namespace deformscope::ui {

// A short name of an open image or of several input frames (an InputSource text):
// "a.png", "a.png + b.png", "clip.mp4 (frames 3, 4)".
QString inputsDisplayName(const QString& inputsText);

class VideoFramesDialog : public QDialog {
    Q_OBJECT
public:
    // `frameCount`: the video's length (frames 0 .. frameCount − 1), at least 2.
    VideoFramesDialog(const QString& videoPath, int frameCount, QWidget* parent = nullptr);
    int first() const;
    int step() const;
    // report::InputSource's text form: "<video>\nframes:t,t+d".
    QString inputsText() const;

private:
    void update();
    QString m_path;
    int m_count = 0;
    QSlider* m_slider = nullptr;
    QSpinBox* m_step = nullptr;
    QLabel* m_label = nullptr;
};

} // namespace deformscope::ui
