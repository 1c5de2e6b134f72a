// The GUI's engine: one object on its own worker thread that owns the loaded
// models, the input image and the cached captured forward of each (model,
// image) pair, and runs every analysis, export and dataset ERF there. The GUI
// thread never computes: it posts requests and receives plain data
// (ui/view/view_data.h) through queued signals.
//
// Requests carry an id. A newer analysis request supersedes older ones: a
// superseded request that has not started is dropped, one that is running a
// saliency search stops at its next batch, and neither delivers a result.
// cancel() stops the running saliency search or dataset ERF within one batch;
// the result is then delivered with `cancelled` set.
//
// Every failure a user can cause (a bad model or image file, a layer the model
// lacks, CUDA out of memory, NaN in a model's outputs) arrives as failed(id,
// message) with a message naming the file and the problem; the engine keeps
// what it had (a failed openModels leaves the previous models loaded).
#pragma once

#include "ui/view/view_data.h"

#include <QObject>
#include <QRectF>
#include <QString>
#include <QStringList>
#include <QThread>

#include <atomic>
#include <memory>
#include <optional>
#include <vector>

namespace deformscope::ui {

// What to compute for a click. Coordinates are on the input grid.
struct AnalysisRequest {
    uint64_t id = 0;            // from Engine::nextId()
    QString layer;              // empty: each model's suggested layer
    QPointF point;              // input-grid x, y; each model analyses its node nearest to it
    QString response = "sum";   // "sum", "channel:N", "class:K"
    bool sampling = true, erf = true, saliency = true;
    int levels = 3;             // sampling levels
    bool bilinearOffsets = true;
    bool signedErf = false;
    double epsilon = 0.1;
    QString baseline = "zero";  // "zero", "blur", "blur:S"
    int forwards = 400;         // saliency budget (masked forwards)
    QRectF objectBox;           // input grid, pixel edges; null: the image's <stem>_mask.png if any, else none
    QString colormap = "inferno";
    bool logErf = false;
};

// Where and what to export for the last delivered click (the CLI's `compare`
// layout: DIR/compare.{png,svg,pdf}, compare.json, DIR/<model>/result.json,
// erf.npy, saliency_mask.npy, sampling.csv; one model: the `analyze` layout).
struct ExportRequest {
    uint64_t id = 0;
    QString directory;
    bool figures = true;        // PNG, SVG and PDF
    bool data = true;           // JSON, NPY, CSV
    QStringList models;         // the columns (ModelInfo::name) to export; empty: all (the comparison)
};

struct ErfAverageRequest {
    uint64_t id = 0;
    QString model;              // path of an open model
    QString folder;             // images
    QString layer;              // empty: the model's suggested layer
    int limit = 0;              // 0: every image
    QString outDirectory;       // where the map and metrics are written (the CLI's erf-average layout)
};

// How to feed a model whose file carries no metadata (the input-settings dialog).
struct InputSettings {
    double mean[3] = {0.485, 0.456, 0.406}; // RGB order, applied to [0, 1] values
    double std[3] = {0.229, 0.224, 0.225};
    bool bgr = false;
    int inputH = 0, inputW = 0;             // resize images to this; 0: the image's own size
};

class Engine : public QObject {
    Q_OBJECT
public:
    // Starts the worker thread; the engine object lives there.
    static std::unique_ptr<Engine, void (*)(Engine*)> start();

    // Thread-safe, from any thread.
    uint64_t nextId();           // ids increase; an analysis request with a newer id supersedes
    void cancel();               // stops the running saliency search / dataset ERF within one batch
    static QStringList devices(); // "cpu", then "cuda:0", "cuda:1", ... that this build can use

public Q_SLOTS:
    // Loads the models on `device` (replacing the open ones only if every file
    // loads), then, if an image is open, re-prepares it for them. Emits
    // modelsOpened or failed.
    void openModels(uint64_t id, const QStringList& paths, const QString& device);
    // Loads the image for the open models (each model's input size from its
    // metadata; all models share the first model's grid). Emits imageOpened or failed.
    void openImage(uint64_t id, const QString& path);
    // Analyses the node under request.point for every open model. Emits
    // progress, then resultReady (unless superseded) or failed.
    void analyze(const deformscope::ui::AnalysisRequest& request);
    // Writes the last delivered click's figures and data. Emits exported or failed.
    void exportResults(const deformscope::ui::ExportRequest& request);
    void averageErf(const deformscope::ui::ErfAverageRequest& request);
    // Sets how the open model `modelPath` is fed, then re-prepares the open image
    // for it (modelsOpened and imageOpened with `id`), or lists the models again.
    void setInputSettings(uint64_t id, const QString& modelPath, const deformscope::ui::InputSettings& settings);

Q_SIGNALS:
    void modelsOpened(uint64_t id, const std::vector<deformscope::ui::ModelInfo>& models);
    void imageOpened(uint64_t id, const QString& path, const QImage& inputGridImage, double scaleX, double scaleY);
    void progress(uint64_t id, double fraction, const QString& stage);
    void resultReady(const deformscope::ui::ClickViewPtr& result);
    void exported(uint64_t id, const QStringList& files);
    void erfAveraged(uint64_t id, const QString& figure, int images, bool cancelled);
    void failed(uint64_t id, const QString& message);

private:
    Engine();
    ~Engine() override;
    struct Impl;
    std::unique_ptr<Impl> d;
    std::atomic<uint64_t> m_lastId{0};
    std::atomic<uint64_t> m_latestAnalysis{0};
    std::atomic<bool> m_cancel{false};
};

} // namespace deformscope::ui

Q_DECLARE_METATYPE(deformscope::ui::AnalysisRequest)
Q_DECLARE_METATYPE(deformscope::ui::ExportRequest)
Q_DECLARE_METATYPE(deformscope::ui::ErfAverageRequest)
Q_DECLARE_METATYPE(deformscope::ui::InputSettings)
Q_DECLARE_METATYPE(std::vector<deformscope::ui::ModelInfo>)
