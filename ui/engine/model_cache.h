// The engine's state: the open models on one device, the open image, and each
// model's captured forward of that image on the grid all models share (a
// report::Run per model). Touched only by the engine's worker thread. Every
// operation either succeeds or leaves the state as it was (a failed open keeps
// what was open), and throws with a message naming the file and the problem.
#pragma once

#include "core/report/report.h"
#include "ui/view/view_data.h"

#include <QImage>
#include <QString>
#include <QStringList>

#include <array>
#include <optional>
#include <string>
#include <vector>

namespace deformscope::ui {

struct InputSettings;

class ModelCache {
public:
    // Loads the models on `device` ("cpu", "cuda", "cuda:N"), replacing the open
    // ones only when every file loads, and prepares the open image for them.
    void openModels(const QStringList& paths, const QString& device);
    // Prepares `path` for every open model (or just remembers it when none is open).
    // `path` may name several input frames (report::InputSource::toText: one image
    // per line, or a video and "frames:t,u"): they lie side by side.
    void openImage(const QString& path);
    // Sets how the open model `modelPath` is fed and prepares the open image again.
    void setInputSettings(const QString& modelPath, const InputSettings& settings);

    std::vector<ModelInfo> infos() const;
    bool hasImage() const { return !m_imagePath.empty(); }
    const std::string& imagePath() const { return m_imagePath; }
    std::array<int64_t, 2> grid() const { return m_grid; }
    const c10::Device& device() const { return m_device; }
    // The prepared runs, one per open model (empty until models and an image are open).
    std::vector<report::Run*> runs();
    // The open image(s), as prepared for every model.
    const report::InputSource& inputs() const { return m_inputs; }
    // The open image as the models see it (de-normalised input grid) and original pixels per grid pixel.
    struct Picture {
        QImage image;
        double scaleX = 1, scaleY = 1;
    };
    Picture picture() const;
    // The open model whose path is `path` (as given, or the same file), or null.
    const model::LoadedModel* findModel(const QString& path) const;

private:
    struct OpenModel {
        model::LoadedModel model;
        std::string name;               // unique column name (compare's rule)
        int64_t stride = 1;             // total stride
        std::optional<report::Run> run; // prepared for the current image on the shared grid
        ModelInfo info;
    };

    std::array<int64_t, 2> gridFor(const std::vector<OpenModel>& ms, std::optional<std::array<int64_t, 2>> image) const;
    void prepare(std::vector<OpenModel>& ms, const report::InputSource& inputs, std::array<int64_t, 2> grid,
                 std::string& context) const;
    // Whether every model takes as many input frames as `inputs` holds.
    static bool fits(const std::vector<OpenModel>& ms, const report::InputSource& inputs);

    std::vector<OpenModel> m_models;
    c10::Device m_device{c10::kCPU};
    std::string m_imagePath;                     // "" when none is open (InputSource text)
    report::InputSource m_inputs;                // the open image(s)
    std::array<int64_t, 2> m_originalSize{0, 0}; // H, W of the open image (one frame's)
    std::array<int64_t, 2> m_grid{0, 0};         // the shared input grid of the prepared runs
};

} // namespace deformscope::ui
