// The GUI's engine: it owns the loaded models, the input image and the cached
// captured forward of each (model, image) pair, and runs every analysis,
// export and dataset ERF as a job on its own worker thread (job_queue.h). The
// GUI thread never computes: it submits jobs through the thread-safe methods
// below, each returning the job's id at once, and receives plain data
// (ui/view/view_data.h) through the typed signals, which are emitted on the
// worker thread (so connections to widgets are queued).
//
// A newer analysis supersedes older ones: a superseded job that has not started
// is dropped, one that is running a saliency search stops at its next batch,
// and neither delivers a result. cancel() stops the running saliency search or
// dataset ERF within one batch; the result is then delivered with `cancelled` set.
//
// Every failure a user can cause (a bad model or image file, a layer the model
// lacks, CUDA out of memory, NaN in a model's outputs) arrives as failed(id,
// message) with a message naming the file and the problem; the engine keeps
// what it had (a failed openModels leaves the previous models loaded).
#pragma once

#include "core/common/request.h"
#include "ui/view/view_data.h"

#include <QObject>
#include <QList>
#include <QString>
#include <QStringList>

#include <memory>
#include <vector>

namespace deformscope::ui {

// Where and what to export for the last delivered click (the CLI's `compare`
// layout: DIR/compare.{png,svg,pdf}, compare.json, DIR/<model>/result.json,
// erf.npy, saliency_mask.npy, sampling.csv; one model: the `analyze` layout).
struct ExportRequest {
    QString directory;
    bool figures = true;        // PNG, SVG and PDF
    bool data = true;           // JSON, NPY, CSV
    QStringList models;         // the columns (ModelInfo::name) to export; empty: all (the comparison)
};

struct ErfAverageRequest {
    QString model;              // path of an open model
    QString folder;             // images
    QString layer;              // empty: the model's suggested layer
    int limit = 0;              // 0: every image
    QString outDirectory;       // where the map and metrics are written (the CLI's erf-average layout)
};

// The dataset study (the CLI's `study`) over a folder, for every open model.
struct StudyRequest {
    QString folder;             // images, each with <name>_mask.png (grey ids) unless `masks` is given
    QString masks;              // a folder of masks <name>_mask.png / <name>.png; empty: next to the images
    QString layer;              // empty: each model's suggested layer
    bool saliency = false;      // the saliency region too (seconds per object and model on a CPU)
    int limit = 0;              // 0: every image
    QString outDirectory;       // study.csv, result.json, study_*.png/.svg/.pdf
};

// The resolution sweep (the CLI's `sweep`) of the open image in every open model.
struct SweepRequest {
    QList<int> sizes{128, 192, 256, 384, 512}; // square input sizes
    bool atLastClick = true;    // the node of the last delivered click; otherwise the image's centre
    QString outDirectory;       // sweep.csv, result.json, sweep*.png/.svg/.pdf
};

// The dense ERF-size map (the CLI's `scale-map`) of the open image in one open model.
struct ScaleMapRequest {
    QString model;              // path of an open model
    QString layer;              // empty: the model's suggested layer
    int grid = 32;
    QString outDirectory;       // scale_map.npy, result.json, scale_map.png/.svg/.pdf
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
    // Starts the worker thread. Destruction supersedes the running job, drops
    // the queued ones and waits for the worker.
    Engine();
    ~Engine() override;

    // Thread-safe, from any thread; each queues a job and returns its id.
    // Loads the models on `device` (replacing the open ones only if every file
    // loads), then, if an image is open, prepares it for them. Emits
    // modelsOpened, then imageOpened when an image is open; or failed.
    uint64_t openModels(const QStringList& paths, const QString& device);
    // Loads the image for the open models (each model's input size from its
    // metadata; all models share the first model's grid). Emits modelsOpened
    // first when the grid changed (new layer lists), then imageOpened; or failed.
    uint64_t openImage(const QString& path);
    // Analyses the node at request.at (on the input grid) for every open model;
    // request.object is a box on the input grid, or Auto. The engine sets the
    // input size (the shared grid) and the device. Emits resultReady with the
    // sampling points and ERF (partial when a saliency search follows), progress,
    // then resultReady complete (unless superseded), or failed. `onlyModel` >= 0
    // analyses that model alone (the single view): the others' columns are `skipped`.
    uint64_t analyze(const common::AnalysisRequest& request, int onlyModel = -1);
    // Writes the last delivered click's figures and data. Emits exported or failed.
    uint64_t exportResults(const ExportRequest& request);
    uint64_t averageErf(const ErfAverageRequest& request);
    // The study of every open model over request.folder. Emits progress per image (cancel()
    // stops it between objects; what was done is written), then studied; or failed.
    uint64_t study(const StudyRequest& request);
    // The sweep / the ERF-size map of the open image. Emit progress (cancel() stops them),
    // then figureWritten with the figure's PNG; or failed.
    uint64_t sweep(const SweepRequest& request);
    uint64_t scaleMap(const ScaleMapRequest& request);
    // Sets how the open model `modelPath` is fed, then prepares the open image
    // again for it (modelsOpened and imageOpened), or lists the models again.
    uint64_t setInputSettings(const QString& modelPath, const InputSettings& settings);
    // Stops the running saliency search / dataset ERF within one batch.
    void cancel();

    static QStringList devices(); // "cpu", then "cuda:0", "cuda:1", ... that this build can use
    // What the About box lists: (name, version) of DeformScope, LibTorch, Qt, OpenCV and CUDA
    // (the kernels built in, LibTorch's CUDA runtime, the GPUs usable here).
    static QList<QPair<QString, QString>> versions();

Q_SIGNALS:
    void modelsOpened(uint64_t id, const std::vector<deformscope::ui::ModelInfo>& models);
    void imageOpened(uint64_t id, const QString& path, const QImage& inputGridImage, double scaleX, double scaleY);
    void progress(uint64_t id, double fraction, const QString& stage);
    void resultReady(const deformscope::ui::ClickViewPtr& result);
    void exported(uint64_t id, const QStringList& files);
    void erfAveraged(uint64_t id, const QString& figure, int images, bool cancelled);
    // figure: the ERF scatter plot written (empty when none); objects: per model.
    void studied(uint64_t id, const QString& figure, int objects, int images, bool cancelled);
    // A sweep's or ERF-size map's figure (PNG), with a title and the folder of its data.
    void figureWritten(uint64_t id, const QString& title, const QString& png, bool cancelled);
    void failed(uint64_t id, const QString& message);

private:
    struct Impl;
    std::unique_ptr<Impl> d;
};

} // namespace deformscope::ui

Q_DECLARE_METATYPE(std::vector<deformscope::ui::ModelInfo>)
