// The main window's files: opening models and images (and the engine's answers),
// exporting the current click (the engine's figures and data, and the views as
// the canvases show them), sessions, input settings, and drag and drop. GUI
// thread only (MainWindow's members; see main_window.cpp).
#include "ui/app/main_window.h"

#include "ui/app/input_settings_dialog.h"
#include "ui/app/video_dialog.h"
#include "core/imaging/image.h"
#include "core/report/video.h"
#include "ui/canvas/canvas.h"
#include "ui/canvas/comparison_view.h"
#include "ui/canvas/kernel_inset.h"
#include "ui/canvas/view_panel.h"

#include <QComboBox>
#include <QDir>
#include <QDragEnterEvent>
#include <QDropEvent>
#include <QFileInfo>
#include <QMessageBox>
#include <QLabel>
#include <QMimeData>
#include <QStackedWidget>
#include <QStatusBar>

#include <algorithm>

namespace deformscope::ui {

namespace {

const QStringList kModelSuffixes{QStringLiteral("pt"), QStringLiteral("pth"), QStringLiteral("ts"),
                                 QStringLiteral("torchscript"), QStringLiteral("pt2"), QStringLiteral("onnx")};
const QStringList kSessionSuffixes{QStringLiteral("dsession")};

} // namespace

// ---- models and images -----------------------------------------------------------------------

void MainWindow::openModels(const QStringList& paths) {
    if (paths.isEmpty())
        return;
    m_requestedModels = paths;
    startLoading(tr("Loading %n model(s)", nullptr, int(paths.size())));
    m_modelsRequest = m_engine->openModels(paths, m_device);
}

void MainWindow::addModels(const QStringList& paths) {
    QStringList all = m_modelPaths;
    for (const QString& p : paths) {
        const QString absolute = QFileInfo(p).absoluteFilePath();
        bool open = false;
        for (const QString& q : all)
            open = open || QFileInfo(q).absoluteFilePath() == absolute;
        if (!open)
            all << p;
    }
    if (all == m_modelPaths) {
        if (!paths.isEmpty())
            statusBar()->showMessage(tr("Already open: %1").arg(paths.join(QStringLiteral(", "))), 8000);
        return;
    }
    openModels(all);
}

void MainWindow::openImage(const QString& path) {
    if (path.isEmpty())
        return;
    m_requestedImage = path;
    startLoading(tr("Loading %1").arg(inputsDisplayName(path)));
    m_imageRequest = m_engine->openImage(path);
}

void MainWindow::openFrames(const QStringList& paths) {
    if (paths.size() < 2) {
        if (!paths.isEmpty())
            openImage(paths.front());
        return;
    }
    report::InputSource inputs;
    for (const QString& p : paths)
        inputs.images.push_back(p.toStdString());
    openImage(QString::fromStdString(inputs.toText()));
}

void MainWindow::setSampleVideo(const QString& model, const QStringList& frames, const QStringList& labels) {
    m_sampleVideoModel = model;
    m_sampleVideoFrames = frames;
    m_sampleVideoLabels.clear();
    for (const QString& l : labels)
        if (QFileInfo::exists(l))
            m_sampleVideoLabels << l;
        else
            break; // a support label without its reference label means nothing
    bool present = QFileInfo::exists(model) && frames.size() > 1;
    for (const QString& f : frames)
        present = present && QFileInfo::exists(f);
    m_openSampleVideoAction->setEnabled(present);
}

void MainWindow::openLabel(const QString& path, bool supportFrame) {
    if (path.isEmpty())
        return;
    if (!supportFrame)
        m_analysis.propagate = path.toStdString();
    else if (m_analysis.propagate.empty()) {
        showError(tr("%1: open the reference frame's label first (File > Open Label of the Reference Frame); "
                     "this one scores where it travels").arg(path));
        return;
    } else {
        m_analysis.propagateTruth = path.toStdString();
    }
    m_clearLabelsAction->setEnabled(true);
    requestAnalysis();
}

void MainWindow::clearLabels() {
    const bool had = !m_analysis.propagate.empty();
    m_analysis.propagate.clear();
    m_analysis.propagateTruth.clear();
    m_clearLabelsAction->setEnabled(false);
    if (had)
        requestAnalysis();
}

void MainWindow::openVideo(const QString& path) {
    int64_t count = 0;
    try {
        imaging::readVideoFrames(path.toStdString(), {0}, &count);
    } catch (const std::exception& e) {
        showError(QString::fromStdString(e.what()));
        return;
    }
    if (count < 2) {
        showError(tr("%1: the video has %2 frame(s); a frame pair needs two").arg(path).arg(count));
        return;
    }
    VideoFramesDialog dialog(path, int(count), this);
    if (dialog.exec() == QDialog::Accepted)
        openImage(dialog.inputsText());
}

void MainWindow::startLoading(const QString& stage) {
    clearError();
    setBusy(true, stage);
}

void MainWindow::onModelsOpened(uint64_t id, const std::vector<ModelInfo>& models) {
    // The engine lists the models again (for the image's grid) when an image changes it.
    const bool forImage = id == m_imageRequest && id != 0;
    if (id != m_modelsRequest && !forImage)
        return;
    if (forImage) {
        m_models = models;
        fillLayerList();
        return;
    }
    setBusy(false);
    m_models = models;
    m_modelPaths = m_requestedModels;
    m_settings->addRecentModelSet(m_modelPaths);
    updateRecentMenus();
    m_deviceLabel->setText(tr("Device: %1").arg(m_models.empty() ? m_device : m_models.front().device));

    m_syncing = true;
    m_modelBox->clear();
    for (const ModelInfo& m : m_models)
        m_modelBox->addItem(m.name, m.path);
    m_currentModel = std::clamp(m_pendingSession ? m_pendingSession->currentModel : m_currentModel, 0,
                                std::max(0, int(m_models.size()) - 1));
    m_modelBox->setCurrentIndex(m_currentModel);
    m_syncing = false;
    fillResponseMenu();

    // Keep the layer if the first model has it; else its suggested layer.
    QString wanted = m_pendingSession ? m_pendingSession->layer : m_layer;
    const ModelInfo* model = currentModel();
    bool found = false;
    if (model)
        for (const LayerInfo& l : model->layers)
            found = found || l.name == wanted;
    m_layer = found ? wanted : (model ? model->suggestedLayer : QString());

    QStringList titles;
    for (const ModelInfo& m : m_models)
        titles.append(m.name);
    m_comparison->setColumnTitles(titles);
    m_result.reset();
    fillLayerList();
    QStringList notes;
    for (const ModelInfo& m : m_models)
        for (const QString& n : m.notes)
            notes.append(m.name + QStringLiteral(": ") + n);
    if (!notes.isEmpty())
        statusBar()->showMessage(notes.join(QStringLiteral("  ·  ")), 15000);
    updateWindowTitle();
    Q_EMIT modelsShown();
    // A model without metadata: ask how to feed it (once per file), ImageNet prefilled.
    for (int i = 0; i < int(m_models.size()); ++i)
        if (m_askInput && !m_models[size_t(i)].hasMetadata && !m_askedInput.contains(m_models[size_t(i)].path)) {
            m_askedInput.insert(m_models[size_t(i)].path);
            editInputSettings(i);
            break; // one dialog at a time; the next model is asked after this one's answer
        }

    // With an image open, the engine re-prepares it for the new models and says so
    // (imageOpened with this request's id); a session or start() may name another.
    const QString image = m_pendingSession ? m_pendingSession->image : QString();
    if (!image.isEmpty() && image != m_imagePath)
        openImage(image);
    else if (!m_imagePath.isEmpty())
        m_imageRequest = id;
    else if (m_pendingSession) {
        m_pendingSession.reset();
        Q_EMIT sessionRestored();
    }
}

void MainWindow::onImageOpened(uint64_t id, const QString& path, const QImage& image, double scaleX, double scaleY) {
    if (id != m_imageRequest)
        return;
    setBusy(false);
    const bool sameImage = path == m_imagePath && image.size() == m_image.size();
    m_imagePath = path;
    m_image = image;
    m_scaleX = scaleX;
    m_scaleY = scaleY;
    m_settings->addRecentImage(path);
    updateRecentMenus();
    m_result.reset();
    m_canvas->setImage(image);
    m_singleKernel->setColumn(nullptr);
    m_comparison->setImage(image);
    updateWindowTitle();
    // Labels belong to the frames they were drawn on: new frames drop them, unless
    // labels for these frames are waiting (start(), the sample video) or a session
    // brings its own.
    if (!m_pendingLabels.isEmpty() || (!sameImage && !m_pendingSession)) {
        m_analysis.propagate = m_pendingLabels.size() > 0 ? m_pendingLabels[0].toStdString() : std::string();
        m_analysis.propagateTruth = m_pendingLabels.size() > 1 ? m_pendingLabels[1].toStdString() : std::string();
        m_pendingLabels.clear();
    }
    m_clearLabelsAction->setEnabled(!m_analysis.propagate.empty());
    Q_EMIT imageShown();

    if (m_pendingSession) {
        const Session s = *m_pendingSession;
        m_pendingSession.reset();
        m_objectBox = s.objectBox;
        m_roiBox = s.roiBox;
        m_node = s.node;
        if (m_pendingPixel) {
            const QPointF p = *m_pendingPixel;
            m_pendingPixel.reset();
            m_node = QPointF((p.x() + 0.5) / m_scaleX - 0.5, (p.y() + 0.5) / m_scaleY - 0.5);
        }
        if (m_node) {
            m_restoring = true; // sessionRestored once its click's result is shown
            requestAnalysis();
        } else {
            Q_EMIT sessionRestored();
        }
        return;
    }
    if (!sameImage) {
        m_objectBox = QRectF();
        m_roiBox = QRectF();
        m_wholeRoi = false;
        if (m_node && !(m_node->x() < image.width() && m_node->y() < image.height()))
            m_node.reset();
    }
    if (m_node)
        requestAnalysis();
}

// ---- export ----------------------------------------------------------------------------------

void MainWindow::exportTo(const QString& directory, bool figures, bool data) {
    if (!m_result) {
        showError(tr("Nothing to export yet: click a pixel first."));
        return;
    }
    ExportRequest r;
    r.directory = directory;
    r.figures = figures;
    r.data = data;
    // The single view exports its model alone (the `analyze` layout); the comparison, every column.
    if (const int single = singleViewColumn(); single >= 0)
        r.models = QStringList{m_result->columns[size_t(single)].model};
    m_settings->setLastDirectory(directory);
    m_viewFiles = figures ? exportViews(directory) : QStringList();
    statusBar()->showMessage(tr("Exporting to %1…").arg(directory));
    m_exportRequest = m_engine->exportResults(r);
}

int MainWindow::singleViewColumn() const {
    return m_result && m_views->currentWidget() == m_single && m_currentModel < int(m_result->columns.size())
               ? m_currentModel
               : -1;
}

QString MainWindow::exportFolderName() const {
    if (!m_result || m_result->columns.empty())
        return {};
    const int single = singleViewColumn();
    const ColumnView& c = m_result->columns[size_t(std::max(single, 0))];
    QString name = QStringLiteral("%1_%2_fx%3_fy%4")
                       .arg(single >= 0 ? c.model : QStringLiteral("compare"), c.layer.isEmpty() ? m_layer : c.layer)
                       .arg(c.fx)
                       .arg(c.fy);
    for (QChar& ch : name)
        if (!(ch.isLetterOrNumber() || ch == QLatin1Char('_') || ch == QLatin1Char('.') || ch == QLatin1Char('-')))
            ch = QLatin1Char('_');
    return name;
}

void MainWindow::exportUnder(const QString& parent, bool figures, bool data) {
    const QString name = exportFolderName();
    if (name.isEmpty()) {
        showError(tr("Nothing to export yet: click a pixel first."));
        return;
    }
    if (!QDir().mkpath(parent)) {
        showError(tr("%1: cannot create the export folder").arg(parent));
        return;
    }
    const QString folder = QDir(parent).filePath(name);
    if (!QFileInfo::exists(folder)) {
        exportTo(folder, figures, data);
        return;
    }
    auto* question = new QMessageBox(QMessageBox::Question, tr("Replace the export?"),
                                     tr("%1 exists already. Replace what it holds with this export?").arg(folder),
                                     QMessageBox::Yes | QMessageBox::No, this);
    question->setObjectName(QStringLiteral("overwriteQuestion"));
    question->setDefaultButton(QMessageBox::No);
    question->setAttribute(Qt::WA_DeleteOnClose);
    connect(question, &QMessageBox::finished, this, [this, folder, figures, data](int answer) {
        if (answer == QMessageBox::Yes) {
            QDir(folder).removeRecursively(); // the earlier export's files go: no mix of two exports
            exportTo(folder, figures, data);
        } else {
            statusBar()->showMessage(tr("Export cancelled: %1 kept as it was").arg(folder), 10000);
        }
    });
    question->open();
}

QStringList MainWindow::exportViews(const QString& directory) {
    // What the user sees: the single view's canvas (DIR/view.png), or every
    // comparison column's (DIR/<model>/view.png, beside its result.json).
    std::vector<std::pair<const Canvas*, QString>> views;
    const QDir dir(directory);
    if (m_views->currentWidget() == m_single) {
        views.emplace_back(m_canvas, dir.filePath(QStringLiteral("view.png")));
    } else {
        for (int i = 0; i < m_comparison->columnCount(); ++i) {
            const Canvas* c = m_comparison->canvas(i);
            if (!m_comparison->columnShowsError(i) && c->click() && c->column() < int(c->click()->columns.size()))
                views.emplace_back(c, dir.filePath(c->click()->columns[size_t(c->column())].model + QStringLiteral("/view.png")));
        }
    }
    QStringList written;
    for (const auto& [canvas, file] : views) {
        const ClickViewPtr click = canvas->click();
        if (!click || !canvas->hasImage())
            continue;
        // The canvas's panel made again from what it shows, by the same pure function.
        const figure::Panel panel = composeView(clickBackground(*click), click.get(), canvas->column(), canvas->overlays());
        QString error;
        if (!QDir().mkpath(QFileInfo(file).absolutePath()))
            error = file + tr(": cannot create its folder");
        else
            error = saveView(panel, canvas->imageRect(), canvas->viewRect(), file);
        if (!error.isEmpty())
            showError(error);
        else
            written << QDir::cleanPath(file);
    }
    return written;
}

void MainWindow::onExported(uint64_t id, const QStringList& engineFiles) {
    if (id != m_exportRequest)
        return;
    const QStringList files = engineFiles + m_viewFiles;
    statusBar()->showMessage(tr("Wrote %n file(s) to %1", nullptr, int(files.size()))
                                 .arg(files.isEmpty() ? QString() : QFileInfo(files.first()).absolutePath()),
                             15000);
    Q_EMIT exportFinished(files);
}

// ---- sessions ----------------------------------------------------------------------------------

Session MainWindow::session() const {
    Session s;
    for (const QString& p : m_modelPaths)
        s.models.append(QFileInfo(p).absoluteFilePath());
    s.image = m_imagePath.isEmpty() ? QString() : QFileInfo(m_imagePath).absoluteFilePath();
    s.device = m_device;
    s.layer = m_layer;
    s.node = m_node;
    s.objectBox = m_objectBox;
    s.roiBox = m_roiBox;
    s.comparison = m_views->currentWidget() == m_comparison;
    s.currentModel = m_currentModel;
    s.analysis = m_analysis;
    s.overlays = m_overlays;
    return s;
}

bool MainWindow::saveSessionTo(const QString& path) {
    const QString error = saveSession(session(), path);
    if (!error.isEmpty()) {
        showError(error);
        return false;
    }
    m_settings->addRecentSession(path);
    updateRecentMenus();
    statusBar()->showMessage(tr("Session saved to %1").arg(path), 8000);
    return true;
}

void MainWindow::openSession(const QString& path) {
    QString error;
    const std::optional<Session> s = loadSession(path, &error);
    if (!s) {
        showError(error);
        return;
    }
    m_settings->addRecentSession(path);
    updateRecentMenus();
    m_pendingSession = s;
    setOverlays(s->overlays);
    setAnalysisSettings(s->analysis);
    setComparison(s->comparison);
    if (Engine::devices().contains(s->device)) {
        m_device = s->device;
        m_syncing = true;
        m_deviceBox->setCurrentText(m_device);
        m_syncing = false;
    } else if (s->device != m_device) {
        statusBar()->showMessage(tr("%1: device %2 is not available here; using %3").arg(path, s->device, m_device), 15000);
    }
    openModels(s->models);
}

void MainWindow::editInputSettings(int index) {
    if (index < 0 || index >= int(m_models.size()))
        return;
    auto* dialog = new InputSettingsDialog(m_models[size_t(index)], this);
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    connect(dialog, &QDialog::accepted, this, [this, dialog] {
        m_requestedModels = m_modelPaths;
        setBusy(true, tr("Applying the input settings"));
        m_modelsRequest = m_engine->setInputSettings(dialog->modelPath(), dialog->settings());
    });
    connect(dialog, &QDialog::rejected, this, [this] {
        // Keep the defaults; ask for the next model without metadata, if any.
        for (int i = 0; i < int(m_models.size()); ++i)
            if (!m_models[size_t(i)].hasMetadata && !m_askedInput.contains(m_models[size_t(i)].path)) {
                m_askedInput.insert(m_models[size_t(i)].path);
                editInputSettings(i);
                return;
            }
    });
    dialog->open();
}

void MainWindow::start(const QStringList& models, const QString& image, std::optional<QPointF> imagePixel,
                       const QString& layer) {
    Session s = session();
    s.models = models;
    s.image = image;
    s.node.reset();
    s.objectBox = QRectF();
    s.roiBox = QRectF();
    if (!layer.isEmpty())
        s.layer = layer;
    m_pendingSession = s;
    m_pendingPixel = imagePixel;
    openModels(models);
}

// ---- drag and drop -------------------------------------------------------------------------------

void MainWindow::dragEnterEvent(QDragEnterEvent* event) {
    if (event->mimeData()->hasUrls())
        event->acceptProposedAction();
}

void MainWindow::dropEvent(QDropEvent* event) {
    QStringList models, images, sessions;
    for (const QUrl& url : event->mimeData()->urls()) {
        if (!url.isLocalFile())
            continue;
        const QString path = url.toLocalFile();
        const QString suffix = QFileInfo(path).suffix().toLower();
        if (kModelSuffixes.contains(suffix))
            models.append(path);
        else if (kSessionSuffixes.contains(suffix))
            sessions.append(path);
        else
            images.append(path);
    }
    if (!sessions.isEmpty()) {
        openSession(sessions.first());
    } else {
        if (!models.isEmpty())
            openModels(models);
        // Several images for models taking several input frames: the frames, by name.
        const bool frames = !m_models.empty() && m_models.front().inputs.size() > 1 && images.size() > 1;
        if (frames) {
            images.sort();
            openFrames(images);
        }
        else if (!images.isEmpty())
            openImage(images.first());
    }
    event->acceptProposedAction();
}

} // namespace deformscope::ui
