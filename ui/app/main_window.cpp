// The main window's core: construction, the node and its analysis requests,
// the engine's results shown in the views, and the window's state. GUI thread
// only (the engine answers through queued signals); the menus and tool bar are
// in main_window_actions.cpp, the docks in main_window_docks.cpp, opening,
// exporting and sessions in main_window_files.cpp.
#include "ui/app/main_window.h"
#include "ui/app/video_dialog.h"

#include "ui/canvas/canvas.h"
#include "ui/canvas/comparison_view.h"
#include "ui/canvas/kernel_inset.h"

#include <QAction>
#include <QCloseEvent>
#include <QDesktopServices>
#include <QDialog>
#include <QDialogButtonBox>
#include <QFileInfo>
#include <QLabel>
#include <QPixmap>
#include <QProgressBar>
#include <QPushButton>
#include <QScrollArea>
#include <QDockWidget>
#include <QHeaderView>
#include <QStackedWidget>
#include <QTableWidget>
#include <QStatusBar>
#include <QTreeWidget>
#include <QUrl>
#include <QVBoxLayout>

#include <cmath>

// The icon lives in a static library's resources, which must be initialised by name.
static void initResources() { Q_INIT_RESOURCE(deformscope); }

namespace deformscope::ui {

namespace {

QString number(double v, int digits = 1) { return QString::number(v, 'f', digits); }

} // namespace

MainWindow::MainWindow(AppSettings* settings, QWidget* parent)
    : QMainWindow(parent), m_engine(std::make_unique<Engine>()) {
    initResources();
    if (!settings) {
        m_ownSettings = std::make_unique<AppSettings>();
        settings = m_ownSettings.get();
    }
    m_settings = settings;
    m_overlays = m_settings->overlays();
    m_analysis = m_settings->analysis();
    const QStringList devices = Engine::devices();
    m_device = devices.contains(m_settings->device()) ? m_settings->device() : QStringLiteral("cpu");

    setObjectName(QStringLiteral("DeformScopeMainWindow"));
    setWindowIcon(QIcon(QStringLiteral(":/deformscope/deformscope.svg")));
    setAcceptDrops(true);
    setDockOptions(QMainWindow::AnimatedDocks | QMainWindow::AllowTabbedDocks);

    // Centre: the message bar over the single view / comparison view.
    auto* centre = new QWidget(this);
    auto* centreLayout = new QVBoxLayout(centre);
    centreLayout->setContentsMargins(0, 0, 0, 0);
    centreLayout->setSpacing(0);
    m_messageBar = new QLabel(centre);
    m_messageBar->setObjectName(QStringLiteral("messageBar"));
    m_messageBar->setWordWrap(true);
    m_messageBar->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_messageBar->setStyleSheet(QStringLiteral(
        "QLabel#messageBar { background: #5a1f1f; color: #ffe9e9; padding: 6px 10px; border-bottom: 1px solid #a33; }"));
    m_messageBar->hide();
    centreLayout->addWidget(m_messageBar);
    m_views = new QStackedWidget(centre);
    m_single = new QWidget(m_views);
    auto* singleLayout = new QVBoxLayout(m_single);
    singleLayout->setContentsMargins(0, 0, 0, 0);
    singleLayout->setSpacing(0);
    m_canvas = new Canvas(m_single);
    m_singleKernel = new KernelInset(m_single);
    // The single view's numbers: the model's metrics for the click, as the comparison lists them.
    m_singleMetrics = new QTableWidget(0, 2, m_single);
    m_singleMetrics->setObjectName(QStringLiteral("singleMetrics"));
    m_singleMetrics->setHorizontalHeaderLabels({tr("Metric"), tr("Value")});
    m_singleMetrics->verticalHeader()->hide();
    m_singleMetrics->horizontalHeader()->setSectionResizeMode(0, QHeaderView::Stretch);
    m_singleMetrics->horizontalHeader()->setSectionResizeMode(1, QHeaderView::ResizeToContents);
    m_singleMetrics->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_singleMetrics->setFixedHeight(150); // always there: a result does not resize the canvas
    singleLayout->addWidget(m_canvas, 1);
    singleLayout->addWidget(m_singleKernel);
    singleLayout->addWidget(m_singleMetrics);
    m_comparison = new ComparisonView(m_views);
    m_views->addWidget(m_single);
    m_views->addWidget(m_comparison);
    centreLayout->addWidget(m_views, 1);
    setCentralWidget(centre);

    buildActions();
    buildMenus();
    buildToolBar();
    buildDocks();
    buildStatusBar();
    connectEngine();

    auto objectBoxDrawn = [this](const QRectF& box) {
        if (m_drawingRoi) {
            // A RoI head's region: analysed at once as the head's output (every bin);
            // a click inside then picks one bin.
            m_roiBox = box;
            m_wholeRoi = true;
            m_node = box.normalized().center();
            m_roiToolAction->setChecked(false);
        } else {
            m_objectBox = box;
            m_objectToolAction->setChecked(false);
        }
        requestAnalysis();
    };
    connect(m_canvas, &Canvas::nodeClicked, this, &MainWindow::selectPoint);
    connect(m_canvas, &Canvas::hovered, this, &MainWindow::hovered);
    connect(m_canvas, &Canvas::hoverLeft, this, [this] { m_hoverLabel->clear(); });
    connect(m_canvas, &Canvas::stepNode, this, &MainWindow::stepNode);
    connect(m_canvas, &Canvas::objectBoxDrawn, this, objectBoxDrawn);
    connect(m_comparison, &ComparisonView::nodeClicked, this, &MainWindow::selectPoint);
    connect(m_comparison, &ComparisonView::hovered, this, &MainWindow::hovered);
    connect(m_comparison, &ComparisonView::stepNode, this, &MainWindow::stepNode);
    connect(m_comparison, &ComparisonView::objectBoxDrawn, this, objectBoxDrawn);

    setOverlays(m_overlays);
    syncAnalysisControls();
    setComparison(true);
    updateRecentMenus();
    updateWindowTitle();

    resize(1500, 900);
    if (!m_settings->geometry().isEmpty())
        restoreGeometry(m_settings->geometry());
    if (!m_settings->windowState().isEmpty())
        restoreState(m_settings->windowState());
}

MainWindow::~MainWindow() = default;

void MainWindow::connectEngine() {
    Engine* e = m_engine.get();
    connect(e, &Engine::modelsOpened, this, &MainWindow::onModelsOpened, Qt::QueuedConnection);
    connect(e, &Engine::imageOpened, this, &MainWindow::onImageOpened, Qt::QueuedConnection);
    connect(e, &Engine::progress, this, &MainWindow::onProgress, Qt::QueuedConnection);
    connect(e, &Engine::resultReady, this, &MainWindow::onResult, Qt::QueuedConnection);
    connect(e, &Engine::exported, this, &MainWindow::onExported, Qt::QueuedConnection);
    connect(e, &Engine::erfAveraged, this, &MainWindow::onErfAveraged, Qt::QueuedConnection);
    connect(e, &Engine::studied, this, &MainWindow::onStudied, Qt::QueuedConnection);
    connect(e, &Engine::figureWritten, this, &MainWindow::onFigureWritten, Qt::QueuedConnection);
    connect(e, &Engine::failed, this, &MainWindow::onFailed, Qt::QueuedConnection);
}

// ---- the node ---------------------------------------------------------------------------

void MainWindow::selectPoint(QPointF p) {
    if (m_image.isNull())
        return;
    p.setX(std::clamp(p.x(), -0.5, m_image.width() - 0.5));
    p.setY(std::clamp(p.y(), -0.5, m_image.height() - 0.5));
    m_node = p;
    m_wholeRoi = false; // a click: the node (on a RoI pooling layer, the bin) under it
    requestAnalysis();
}

void MainWindow::selectImagePixel(QPointF pixel) {
    // Original image pixel -> input grid (OpenCV/align_corners=False convention).
    selectPoint(QPointF((pixel.x() + 0.5) / m_scaleX - 0.5, (pixel.y() + 0.5) / m_scaleY - 0.5));
}

void MainWindow::setLayer(const QString& layer) {
    if (layer == m_layer)
        return;
    m_layer = layer;
    m_syncing = true;
    for (int i = 0; i < m_layers->topLevelItemCount(); ++i)
        if (m_layers->topLevelItem(i)->data(0, Qt::UserRole).toString() == layer)
            m_layers->setCurrentItem(m_layers->topLevelItem(i));
    m_syncing = false;
    updateWindowTitle();
    requestAnalysis();
}

void MainWindow::requestAnalysis() {
    if (m_models.empty() || m_image.isNull() || !m_node)
        return;
    setBusy(true, tr("Analysing"));
    // The single view analyses its model alone; the comparison, every model.
    const bool single = m_views->currentWidget() == m_single && m_models.size() > 1;
    m_analysisRequest =
        m_engine->analyze(clickRequest(m_analysis, m_layer, *m_node, m_objectBox, m_overlays, m_roiBox, m_wholeRoi),
                          single ? std::clamp(m_currentModel, 0, int(m_models.size()) - 1) : -1);
    // What is shown now is the previous click's, until the first results of this one arrive.
    if (m_result) {
        m_canvas->setStale(true);
        m_comparison->setStale(true);
    }
}

void MainWindow::stepNode(int dy, int dx) {
    const LayerInfo* l = currentLayerInfo();
    if (!l || !m_node)
        return;
    // From the node last asked for (not the last result's: a held arrow key moves on at
    // once, and the engine drops the steps it had no time for), snapped to the layer's grid.
    const double fx = std::round((m_node->x() - l->startX) / l->jumpX) + dx;
    const double fy = std::round((m_node->y() - l->startY) / l->jumpY) + dy;
    selectPoint(QPointF(l->startX + std::clamp(fx, 0.0, double(std::max(0, l->featureW - 1))) * l->jumpX,
                        l->startY + std::clamp(fy, 0.0, double(std::max(0, l->featureH - 1))) * l->jumpY));
}

void MainWindow::hovered(QPointF p) {
    if (m_image.isNull())
        return;
    QString text = tr("image (%1, %2) · input (%3, %4)")
                       .arg(number((p.x() + 0.5) * m_scaleX - 0.5))
                       .arg(number((p.y() + 0.5) * m_scaleY - 0.5))
                       .arg(number(p.x()))
                       .arg(number(p.y()));
    if (const LayerInfo* l = currentLayerInfo()) {
        const long fx = std::lround((p.x() - l->startX) / l->jumpX);
        const long fy = std::lround((p.y() - l->startY) / l->jumpY);
        if (fx >= 0 && fy >= 0 && fx < l->featureW && fy < l->featureH)
            text += tr(" · %1 (fx %2, fy %3)").arg(l->name).arg(fx).arg(fy); // (x, y), as everywhere
    }
    m_hoverLabel->setText(text);
}

void MainWindow::cancelAnalysis() {
    m_engine->cancel();
    statusBar()->showMessage(tr("Cancelling…"), 3000);
}

// ---- results ------------------------------------------------------------------------------

void MainWindow::onProgress(uint64_t id, double fraction, const QString& stage) {
    if (id != m_analysisRequest && id != m_erfRequest && id != m_studyRequest && id != m_figureRequest)
        return;
    m_progress->show();
    m_cancelButton->show();
    m_cancelAction->setEnabled(true);
    m_progress->setValue(int(std::lround(std::clamp(fraction, 0.0, 1.0) * 100)));
    m_progress->setFormat(stage + QStringLiteral(" %p%"));
}

void MainWindow::onResult(const ClickViewPtr& result) {
    if (!result || result->id != m_analysisRequest)
        return; // superseded by a newer click
    m_result = result;
    refreshViews();
    if (result->partial) { // sampling and ERF now; the saliency searches go on (progress shows them)
        m_timingLabel->setText(tr("%1 s, saliency searching\u2026").arg(number(result->seconds, 2)));
        Q_EMIT partialResultShown(result);
        return;
    }
    setBusy(false);
    QStringList timings;
    for (const ColumnView& c : result->columns)
        if (!c.timing.isEmpty())
            timings.append(c.model + QStringLiteral(": ") + c.timing);
    m_timingLabel->setText(tr("%1 s").arg(number(result->seconds, 2)) +
                           (result->cancelled ? tr(" (saliency cancelled)") : QString()));
    m_timingLabel->setToolTip(timings.join(QLatin1Char('\n'))); // each model's, in full
    for (const ColumnView& c : result->columns)
        if (!c.error.isEmpty())
            showError(c.model + QStringLiteral(": ") + c.error);
    Q_EMIT resultShown(result);
    if (m_restoring) {
        m_restoring = false;
        Q_EMIT sessionRestored();
    }
}

void MainWindow::refreshViews() {
    if (m_result) {
        const int column = std::clamp(m_currentModel, 0, std::max(0, int(m_result->columns.size()) - 1));
        m_canvas->setColumn(m_result, column);
        m_singleKernel->setColumn(column < int(m_result->columns.size()) ? &m_result->columns[size_t(column)] : nullptr);
        m_comparison->setClick(m_result);
        fillSingleMetrics(column < int(m_result->columns.size()) ? &m_result->columns[size_t(column)] : nullptr);
    } else if (!m_image.isNull()) {
        m_canvas->setImage(m_image);
        m_singleKernel->setColumn(nullptr);
        m_comparison->setImage(m_image);
        fillSingleMetrics(nullptr);
    }
}

void MainWindow::fillSingleMetrics(const ColumnView* column) {
    const bool show = column && column->error.isEmpty() && !column->skipped && !column->metrics.empty();
    if (!show) {
        m_singleMetrics->setRowCount(0);
        return;
    }
    m_singleMetrics->setRowCount(int(column->metrics.size()));
    for (int r = 0; r < int(column->metrics.size()); ++r) {
        const Metric& m = column->metrics[size_t(r)];
        m_singleMetrics->setItem(r, 0, new QTableWidgetItem(m.label));
        auto* value = new QTableWidgetItem(m.text);
        value->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
        m_singleMetrics->setItem(r, 1, value);
    }
    m_singleMetrics->resizeRowsToContents();
}

// A result that lacks a column the view now shows (the single view's click, then the
// comparison or another model): analysed again for it.
void MainWindow::analyseMissingColumns() {
    if (!m_result || !m_node)
        return;
    const bool single = m_views->currentWidget() == m_single;
    bool missing = false;
    for (size_t i = 0; i < m_result->columns.size(); ++i)
        if (m_result->columns[i].skipped && (!single || int(i) == m_currentModel))
            missing = true;
    if (missing)
        requestAnalysis();
}

void MainWindow::onErfAveraged(uint64_t id, const QString& figure, int images, bool cancelled) {
    if (id != m_erfRequest)
        return;
    setBusy(false);
    statusBar()->showMessage(cancelled ? tr("ERF averaging cancelled after %1 images; partial average in %2").arg(images).arg(figure)
                                       : tr("ERF averaged over %1 images: %2").arg(images).arg(figure),
                             30000);
    showFigure(tr("ERF averaged over %1 images").arg(images), figure, cancelled);
}

void MainWindow::onStudied(uint64_t id, const QString& figure, int objects, int images, bool cancelled) {
    if (id != m_studyRequest)
        return;
    setBusy(false);
    const QString where = figure.isEmpty() ? tr("study.csv and result.json") : figure;
    statusBar()->showMessage(cancelled ? tr("Study cancelled after %1 objects in %2 images; what was done is in %3")
                                             .arg(objects)
                                             .arg(images)
                                             .arg(where)
                                       : tr("Study of %1 objects in %2 images: %3").arg(objects).arg(images).arg(where),
                             30000);
    showFigure(tr("Study of %1 objects in %2 images").arg(objects).arg(images), figure, cancelled);
}

void MainWindow::onFigureWritten(uint64_t id, const QString& title, const QString& png, bool cancelled) {
    if (id != m_figureRequest)
        return;
    setBusy(false);
    if (png.isEmpty() || !QFileInfo::exists(png)) {
        statusBar()->showMessage(cancelled ? tr("%1 cancelled").arg(title) : tr("%1: no figure was written").arg(title),
                                 15000);
        return;
    }
    showFigure(title, png, cancelled);
    statusBar()->showMessage(tr("%1: %2").arg(title, png), 30000);
}

void MainWindow::showFigure(const QString& title, const QString& png, bool cancelled) {
    if (png.isEmpty() || !QFileInfo::exists(png))
        return;
    // One window for the latest figure, beside the main window (not modal).
    if (!m_figureDialog) {
        m_figureDialog = new QDialog(this);
        m_figureDialog->setObjectName(QStringLiteral("figureDialog"));
        auto* layout = new QVBoxLayout(m_figureDialog);
        auto* scroll = new QScrollArea(m_figureDialog);
        auto* picture = new QLabel(scroll);
        picture->setObjectName(QStringLiteral("figurePicture"));
        picture->setAlignment(Qt::AlignCenter);
        scroll->setWidget(picture);
        scroll->setWidgetResizable(true);
        layout->addWidget(scroll);
        auto* buttons = new QDialogButtonBox(QDialogButtonBox::Close, m_figureDialog);
        QPushButton* open = buttons->addButton(tr("Open Folder"), QDialogButtonBox::ActionRole);
        connect(open, &QPushButton::clicked, m_figureDialog, [this] {
            QDesktopServices::openUrl(
                QUrl::fromLocalFile(m_figureDialog->property("folder").toString()));
        });
        connect(buttons, &QDialogButtonBox::rejected, m_figureDialog, &QDialog::hide);
        layout->addWidget(buttons);
        m_figureDialog->resize(960, 720);
    }
    const QPixmap pixmap(png);
    auto* picture = m_figureDialog->findChild<QLabel*>(QStringLiteral("figurePicture"));
    const QSize room = QSize(920, 640);
    picture->setPixmap(pixmap.width() > room.width() || pixmap.height() > room.height()
                           ? pixmap.scaled(room, Qt::KeepAspectRatio, Qt::SmoothTransformation)
                           : pixmap);
    m_figureDialog->setProperty("folder", QFileInfo(png).absolutePath());
    m_figureDialog->setWindowTitle(cancelled ? tr("%1 (cancelled: the part done)").arg(title) : title);
    m_figureDialog->show();
    m_figureDialog->raise();
}

void MainWindow::onFailed(uint64_t id, const QString& message) {
    if (id == m_analysisRequest || id == m_modelsRequest || id == m_imageRequest || id == m_erfRequest ||
        id == m_studyRequest || id == m_figureRequest)
        setBusy(false);
    if (id == m_modelsRequest || id == m_imageRequest)
        m_pendingSession.reset();
    if (id == m_analysisRequest) {
        m_restoring = false;
        m_canvas->setStale(false);
        m_comparison->setStale(false);
    }
    if (id < m_analysisRequest && id != m_modelsRequest && id != m_imageRequest && id != m_exportRequest &&
        id != m_erfRequest && id != m_studyRequest && id != m_figureRequest)
        return; // a superseded click's failure is old news
    showError(message);
}

// ---- settings and state ----------------------------------------------------------------------

void MainWindow::setOverlays(const CanvasOverlays& overlays) {
    const bool motionChanged = overlays.motion != m_overlays.motion;
    m_overlays = overlays;
    m_canvas->setOverlays(overlays);
    m_comparison->setOverlays(overlays);
    syncOverlayControls();
    // The motion analysis runs only while its overlay is on (it needs optical flow).
    if (motionChanged && overlays.motion && m_result)
        requestAnalysis();
}

void MainWindow::setAnalysisSettings(const common::AnalysisRequest& a) {
    m_analysis = a;
    syncAnalysisControls();
}

void MainWindow::setComparison(bool on) {
    m_views->setCurrentWidget(on ? static_cast<QWidget*>(m_comparison) : m_single);
    if (m_comparisonAction->isChecked() != on) {
        m_syncing = true;
        m_comparisonAction->setChecked(on);
        m_syncing = false;
    }
    analyseMissingColumns();
}

const ModelInfo* MainWindow::currentModel() const {
    if (m_models.empty())
        return nullptr;
    return &m_models[size_t(std::clamp(m_currentModel, 0, int(m_models.size()) - 1))];
}

const LayerInfo* MainWindow::currentLayerInfo() const {
    const ModelInfo* m = currentModel();
    if (!m)
        return nullptr;
    for (const LayerInfo& l : m->layers)
        if (l.name == m_layer)
            return &l;
    return nullptr;
}

void MainWindow::updateWindowTitle() {
    QStringList parts;
    for (const ModelInfo& m : m_models)
        parts.append(m.name);
    QString title = parts.isEmpty() ? QStringLiteral("DeformScope") : parts.join(QStringLiteral(" · "));
    if (!m_imagePath.isEmpty())
        title += QStringLiteral(" — ") + inputsDisplayName(m_imagePath);
    if (!m_layer.isEmpty())
        title += QStringLiteral(" @ ") + m_layer;
    setWindowTitle(parts.isEmpty() ? title : title + QStringLiteral(" — DeformScope"));
}

void MainWindow::showError(const QString& message) {
    m_messageBar->setText(message);
    m_messageBar->show();
    statusBar()->showMessage(message, 10000);
    Q_EMIT errorShown(message);
}

void MainWindow::clearError() {
    m_messageBar->clear();
    m_messageBar->hide();
}

QString MainWindow::errorText() const { return m_messageBar->isVisible() || !m_messageBar->text().isEmpty() ? m_messageBar->text() : QString(); }

void MainWindow::setBusy(bool busy, const QString& stage) {
    m_busy = busy;
    if (busy) {
        m_progress->setRange(0, 0); // indeterminate until the engine reports progress
        m_progress->setFormat(stage);
        m_progress->show();
        m_cancelAction->setEnabled(true);
        m_cancelButton->show();
        statusBar()->showMessage(stage);
        m_progress->setRange(0, 100);
        m_progress->setValue(0);
    } else {
        m_progress->hide();
        m_cancelButton->hide();
        m_cancelAction->setEnabled(false);
        statusBar()->clearMessage(); // the stage it showed ("Analysing") is over
    }
}

void MainWindow::showEvent(QShowEvent* event) {
    QMainWindow::showEvent(event);
    // Sizes given before the window is laid out are lost: the docks' first widths are set
    // on the first show, unless the user's own layout was restored.
    if (!m_docksSized && m_settings->windowState().isEmpty()) {
        auto* layers = findChild<QDockWidget*>(QStringLiteral("layersDock"));
        auto* controls = findChild<QDockWidget*>(QStringLiteral("controlsDock"));
        if (layers && controls)
            resizeDocks({layers, controls}, {260, controls->minimumSizeHint().width()}, Qt::Horizontal);
    }
    m_docksSized = true;
}

void MainWindow::closeEvent(QCloseEvent* event) {
    m_engine->cancel();
    m_settings->setGeometry(saveGeometry());
    m_settings->setWindowState(saveState());
    m_settings->setOverlays(m_overlays);
    m_settings->setAnalysis(m_analysis);
    m_settings->setDevice(m_device);
    m_settings->sync();
    QMainWindow::closeEvent(event);
}

} // namespace deformscope::ui
