#include "ui/app/main_window.h"

#include "ui/app/input_settings_dialog.h"
#include "ui/canvas/canvas.h"
#include "ui/canvas/comparison_view.h"
#include "ui/canvas/kernel_inset.h"

#include <QAction>
#include <QActionGroup>
#include <QApplication>
#include <QCheckBox>
#include <QCloseEvent>
#include <QComboBox>
#include <QDockWidget>
#include <QDoubleSpinBox>
#include <QDragEnterEvent>
#include <QDropEvent>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QKeySequence>
#include <QLabel>
#include <QMenu>
#include <QMenuBar>
#include <QMimeData>
#include <QProgressBar>
#include <QPushButton>
#include <QScrollArea>
#include <QSpinBox>
#include <QStackedWidget>
#include <QStatusBar>
#include <QToolBar>
#include <QToolButton>
#include <QTreeWidget>
#include <QVBoxLayout>

#include <cmath>

// The icon lives in a static library's resources, which must be initialised by name.
static void initResources() { Q_INIT_RESOURCE(deformscope); }

namespace deformscope::ui {

namespace {

const QStringList kModelSuffixes{QStringLiteral("pt"), QStringLiteral("pth"), QStringLiteral("ts"),
                                 QStringLiteral("torchscript")};
const QStringList kSessionSuffixes{QStringLiteral("dsession")};

// The badge text and colour of a layer kind (layer list, column titles).
std::pair<QString, QColor> badge(const QString& kind) {
    if (kind == QLatin1String("dcn_v1"))
        return {QStringLiteral("DCNv1"), QColor(0xe0, 0x8a, 0x1e)};
    if (kind == QLatin1String("dcn_v2"))
        return {QStringLiteral("DCNv2"), QColor(0xd6, 0x45, 0x45)};
    if (kind == QLatin1String("dk"))
        return {QStringLiteral("DK"), QColor(0x9b, 0x59, 0xd0)};
    if (kind == QLatin1String("pool"))
        return {QStringLiteral("Pool"), QColor(0x5c, 0x8d, 0xd6)};
    if (kind == QLatin1String("upsample"))
        return {QStringLiteral("Up"), QColor(0x4a, 0xa8, 0x9a)};
    if (kind == QLatin1String("conv_transpose"))
        return {QStringLiteral("ConvT"), QColor(0x7f, 0x8c, 0x8d)};
    return {QStringLiteral("Conv"), QColor(0x6c, 0x7a, 0x89)};
}

QString number(double v, int digits = 1) { return QString::number(v, 'f', digits); }

} // namespace

MainWindow::MainWindow(AppSettings* settings, QWidget* parent)
    : QMainWindow(parent), m_engine(Engine::start()) {
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
    singleLayout->addWidget(m_canvas, 1);
    singleLayout->addWidget(m_singleKernel);
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

    auto connectCanvas = [this](Canvas* c) {
        connect(c, &Canvas::nodeClicked, this, &MainWindow::selectPoint);
        connect(c, &Canvas::hovered, this, &MainWindow::hovered);
        connect(c, &Canvas::hoverLeft, this, [this] { m_hoverLabel->clear(); });
        connect(c, &Canvas::stepNode, this, &MainWindow::stepNode);
        connect(c, &Canvas::objectBoxDrawn, this, [this](const QRectF& box) {
            m_objectBox = box;
            m_objectToolAction->setChecked(false);
            requestAnalysis();
        });
    };
    connectCanvas(m_canvas);
    connect(m_comparison, &ComparisonView::nodeClicked, this, &MainWindow::selectPoint);
    connect(m_comparison, &ComparisonView::hovered, this, &MainWindow::hovered);
    connect(m_comparison, &ComparisonView::stepNode, this, &MainWindow::stepNode);
    connect(m_comparison, &ComparisonView::objectBoxDrawn, this, [this](const QRectF& box) {
        m_objectBox = box;
        m_objectToolAction->setChecked(false);
        requestAnalysis();
    });

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

// ---- construction --------------------------------------------------------------------

void MainWindow::buildActions() {
    m_openModelsAction = new QAction(QIcon::fromTheme(QStringLiteral("document-open")), tr("&Open Models…"), this);
    m_openModelsAction->setShortcut(QKeySequence::Open);
    m_openModelsAction->setToolTip(tr("Open one or more TorchScript models (Ctrl+O)"));
    connect(m_openModelsAction, &QAction::triggered, this, [this] {
        const QStringList files = QFileDialog::getOpenFileNames(
            this, tr("Open models"), m_settings->lastDirectory(),
            tr("TorchScript models (*.pt *.pth *.ts *.torchscript);;All files (*)"));
        if (!files.isEmpty()) {
            m_settings->setLastDirectory(QFileInfo(files.first()).absolutePath());
            openModels(files);
        }
    });

    m_openImageAction = new QAction(QIcon::fromTheme(QStringLiteral("image-x-generic")), tr("Open &Image…"), this);
    m_openImageAction->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_I));
    connect(m_openImageAction, &QAction::triggered, this, [this] {
        const QString file = QFileDialog::getOpenFileName(
            this, tr("Open image"), m_settings->lastDirectory(),
            tr("Images (*.png *.jpg *.jpeg *.bmp *.tif *.tiff *.webp);;All files (*)"));
        if (!file.isEmpty()) {
            m_settings->setLastDirectory(QFileInfo(file).absolutePath());
            openImage(file);
        }
    });

    m_openSessionAction = new QAction(tr("Open &Session…"), this);
    m_openSessionAction->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_O));
    connect(m_openSessionAction, &QAction::triggered, this, [this] {
        const QString file = QFileDialog::getOpenFileName(this, tr("Open session"), m_settings->lastDirectory(),
                                                          tr("DeformScope sessions (*.dsession);;All files (*)"));
        if (!file.isEmpty())
            openSession(file);
    });

    m_saveSessionAction = new QAction(QIcon::fromTheme(QStringLiteral("document-save")), tr("&Save Session…"), this);
    m_saveSessionAction->setShortcut(QKeySequence::Save);
    connect(m_saveSessionAction, &QAction::triggered, this, [this] {
        QString file = QFileDialog::getSaveFileName(this, tr("Save session"), m_settings->lastDirectory(),
                                                    tr("DeformScope sessions (*.dsession)"));
        if (file.isEmpty())
            return;
        if (QFileInfo(file).suffix().isEmpty())
            file += QStringLiteral(".dsession");
        saveSessionTo(file);
    });

    m_exportAction = new QAction(QIcon::fromTheme(QStringLiteral("document-export")), tr("&Export Figure and Data…"), this);
    m_exportAction->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_E));
    m_exportAction->setToolTip(tr("Write the figure (PNG, SVG, PDF) and the data (JSON, NPY, CSV) of this click (Ctrl+E)"));
    connect(m_exportAction, &QAction::triggered, this, [this] {
        const QString dir = QFileDialog::getExistingDirectory(this, tr("Export into folder"), m_settings->lastDirectory());
        if (!dir.isEmpty())
            exportTo(dir, true, true);
    });
    m_exportDataAction = new QAction(tr("Export &Data Only…"), this);
    connect(m_exportDataAction, &QAction::triggered, this, [this] {
        const QString dir = QFileDialog::getExistingDirectory(this, tr("Export data into folder"), m_settings->lastDirectory());
        if (!dir.isEmpty())
            exportTo(dir, false, true);
    });

    m_erfAverageAction = new QAction(tr("ERF &Averaged over a Folder…"), this);
    connect(m_erfAverageAction, &QAction::triggered, this, [this] {
        const ModelInfo* model = currentModel();
        if (!model) {
            showError(tr("Open a model first: the averaged ERF is computed for one model at the chosen layer."));
            return;
        }
        const QString images = QFileDialog::getExistingDirectory(this, tr("Folder of images"), m_settings->lastDirectory());
        if (images.isEmpty())
            return;
        const QString out = QFileDialog::getExistingDirectory(this, tr("Write the averaged ERF into folder"), images);
        if (out.isEmpty())
            return;
        ErfAverageRequest r;
        r.id = m_erfRequest = m_engine->nextId();
        r.model = model->path;
        r.folder = images;
        r.layer = m_layer;
        r.outDirectory = out;
        setBusy(true, tr("Averaging the ERF over %1").arg(images));
        QMetaObject::invokeMethod(m_engine.get(), "averageErf", Qt::QueuedConnection, Q_ARG(deformscope::ui::ErfAverageRequest, r));
    });

    m_quitAction = new QAction(tr("&Quit"), this);
    m_quitAction->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_Q));
    m_quitAction->setMenuRole(QAction::QuitRole);
    connect(m_quitAction, &QAction::triggered, this, &QWidget::close);

    m_fullScreenAction = new QAction(tr("&Full Screen"), this);
    m_fullScreenAction->setShortcut(QKeySequence(Qt::Key_F11));
    m_fullScreenAction->setCheckable(true);
    connect(m_fullScreenAction, &QAction::toggled, this, [this](bool on) { on ? showFullScreen() : showNormal(); });

    m_comparisonAction = new QAction(tr("&Comparison View"), this);
    m_comparisonAction->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_K));
    m_comparisonAction->setCheckable(true);
    m_comparisonAction->setToolTip(tr("All models side by side (on) or the selected model alone (off)"));
    connect(m_comparisonAction, &QAction::toggled, this, &MainWindow::setComparison);

    m_fitAction = new QAction(tr("&Fit to Window"), this);
    m_fitAction->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_0));
    connect(m_fitAction, &QAction::triggered, this, [this] {
        m_canvas->fitToWindow();
        m_comparison->fitToWindow();
    });

    m_objectToolAction = new QAction(tr("Draw &Object Box"), this);
    m_objectToolAction->setCheckable(true);
    m_objectToolAction->setShortcut(QKeySequence(Qt::Key_B));
    m_objectToolAction->setToolTip(tr("Drag a box around the object the metrics refer to (B; or Shift+drag)"));
    connect(m_objectToolAction, &QAction::toggled, this, [this](bool on) {
        m_canvas->setObjectTool(on);
        m_comparison->setObjectTool(on);
    });
    m_clearObjectAction = new QAction(tr("Clear Object Box"), this);
    connect(m_clearObjectAction, &QAction::triggered, this, [this] {
        m_objectBox = QRectF();
        requestAnalysis();
    });

    m_inputSettingsAction = new QAction(tr("&Input Settings…"), this);
    m_inputSettingsAction->setToolTip(tr("How the selected model's input is prepared: mean, std, channel order, size"));
    connect(m_inputSettingsAction, &QAction::triggered, this, [this] { editInputSettings(m_currentModel); });

    m_cancelAction = new QAction(QIcon::fromTheme(QStringLiteral("process-stop")), tr("&Cancel"), this);
    m_cancelAction->setShortcut(QKeySequence(Qt::Key_Escape));
    m_cancelAction->setEnabled(false);
    connect(m_cancelAction, &QAction::triggered, this, &MainWindow::cancelAnalysis);
}

void MainWindow::buildMenus() {
    QMenu* file = menuBar()->addMenu(tr("&File"));
    file->addAction(m_openModelsAction);
    m_recentModelsMenu = file->addMenu(tr("Recent &Models"));
    file->addAction(m_openImageAction);
    m_recentImagesMenu = file->addMenu(tr("Recent I&mages"));
    file->addSeparator();
    file->addAction(m_openSessionAction);
    m_recentSessionsMenu = file->addMenu(tr("Recent Sess&ions"));
    file->addAction(m_saveSessionAction);
    file->addSeparator();
    file->addAction(m_exportAction);
    file->addAction(m_exportDataAction);
    file->addSeparator();
    file->addAction(m_quitAction);

    QMenu* view = menuBar()->addMenu(tr("&View"));
    view->addAction(m_comparisonAction);
    view->addAction(m_fitAction);
    view->addAction(m_fullScreenAction);

    QMenu* analysis = menuBar()->addMenu(tr("&Analysis"));
    analysis->addAction(m_objectToolAction);
    analysis->addAction(m_clearObjectAction);
    analysis->addSeparator();
    analysis->addAction(m_inputSettingsAction);
    analysis->addAction(m_erfAverageAction);
    analysis->addAction(m_cancelAction);
}

void MainWindow::buildToolBar() {
    QToolBar* bar = addToolBar(tr("Main"));
    bar->setObjectName(QStringLiteral("mainToolBar"));
    bar->setMovable(false);
    bar->setToolButtonStyle(Qt::ToolButtonTextBesideIcon);
    bar->addAction(m_openModelsAction);
    bar->addAction(m_openImageAction);
    bar->addSeparator();
    bar->addWidget(new QLabel(tr(" Device "), bar));
    m_deviceBox = new QComboBox(bar);
    m_deviceBox->setObjectName(QStringLiteral("deviceBox"));
    m_deviceBox->addItems(Engine::devices());
    m_deviceBox->setCurrentText(m_device);
    m_deviceBox->setToolTip(tr("Where the models run"));
    connect(m_deviceBox, &QComboBox::currentTextChanged, this, [this](const QString& device) {
        if (m_syncing || device == m_device)
            return;
        m_device = device;
        m_settings->setDevice(device);
        if (!m_modelPaths.isEmpty())
            openModels(m_modelPaths);
    });
    bar->addWidget(m_deviceBox);
    bar->addWidget(new QLabel(tr("  Model "), bar));
    m_modelBox = new QComboBox(bar);
    m_modelBox->setObjectName(QStringLiteral("modelBox"));
    m_modelBox->setToolTip(tr("The model the layer list and the single view show"));
    m_modelBox->setMinimumContentsLength(12);
    connect(m_modelBox, &QComboBox::currentIndexChanged, this, [this](int i) {
        if (m_syncing || i < 0)
            return;
        m_currentModel = i;
        fillLayerList();
        refreshViews();
    });
    bar->addWidget(m_modelBox);
    bar->addSeparator();
    bar->addAction(m_comparisonAction);
    bar->addAction(m_objectToolAction);
    bar->addAction(m_exportAction);
    bar->addAction(m_cancelAction);
}

void MainWindow::buildDocks() {
    // Layers.
    auto* layerDock = new QDockWidget(tr("Layers"), this);
    layerDock->setObjectName(QStringLiteral("layersDock"));
    m_layers = new QTreeWidget(layerDock);
    m_layers->setObjectName(QStringLiteral("layerList"));
    m_layers->setRootIsDecorated(false);
    m_layers->setUniformRowHeights(true);
    m_layers->setAlternatingRowColors(true);
    m_layers->setHeaderLabels({tr("Layer"), tr("Kind"), tr("Feature map"), tr("Stride"), tr("RF")});
    m_layers->header()->setSectionResizeMode(QHeaderView::ResizeToContents);
    connect(m_layers, &QTreeWidget::currentItemChanged, this, [this](QTreeWidgetItem* item) {
        if (m_syncing || !item)
            return;
        setLayer(item->data(0, Qt::UserRole).toString());
    });
    layerDock->setWidget(m_layers);
    addDockWidget(Qt::LeftDockWidgetArea, layerDock);

    // Overlays and analysis settings.
    auto* controlsDock = new QDockWidget(tr("Overlays and analysis"), this);
    controlsDock->setObjectName(QStringLiteral("controlsDock"));
    auto* scroll = new QScrollArea(controlsDock);
    scroll->setWidgetResizable(true);
    auto* panel = new QWidget(scroll);
    auto* layout = new QVBoxLayout(panel);

    auto onOverlay = [this] {
        if (m_syncing)
            return;
        CanvasOverlays o = m_overlays;
        o.sampling = m_showSampling->isChecked();
        for (size_t i = 0; i < m_showLevels.size() && i < o.levels.size(); ++i)
            o.levels[i] = m_showLevels[i]->isChecked();
        o.weightShading = m_weightShading->isChecked();
        o.offsets = static_cast<CanvasOverlays::Offsets>(m_offsetMode->currentIndex());
        o.modulation = m_showModulation->isChecked();
        o.erf = m_showErf->isChecked();
        o.erfColormap = m_colormap->currentText();
        o.erfLog = m_erfLog->isChecked();
        o.erfContours = m_erfContours->isChecked();
        o.saliencyOutline = m_saliencyOutline->isChecked();
        o.saliencyMasked = m_saliencyMasked->isChecked();
        o.object = m_showObject->isChecked();
        setOverlays(o);
    };

    auto* overlayBox = new QGroupBox(tr("Overlays"), panel);
    auto* ol = new QVBoxLayout(overlayBox);
    m_showSampling = new QCheckBox(tr("Sampling points"), overlayBox);
    ol->addWidget(m_showSampling);
    auto* levelRow = new QHBoxLayout;
    levelRow->addSpacing(18);
    for (int level = 1; level <= 4; ++level) {
        auto* c = new QCheckBox(QString::number(level), overlayBox);
        c->setToolTip(tr("Show level %1 points").arg(level));
        const QColor color = QColor::fromRgb(figure::levelColor(level));
        c->setStyleSheet(QStringLiteral("QCheckBox { color: %1; font-weight: bold; }").arg(color.name()));
        m_showLevels.push_back(c);
        levelRow->addWidget(c);
        connect(c, &QCheckBox::toggled, this, onOverlay);
    }
    levelRow->addStretch();
    ol->addLayout(levelRow);
    m_weightShading = new QCheckBox(tr("Size and shade by contribution weight"), overlayBox);
    ol->addWidget(m_weightShading);
    auto* offsetRow = new QHBoxLayout;
    offsetRow->addWidget(new QLabel(tr("Offset field"), overlayBox));
    m_offsetMode = new QComboBox(overlayBox);
    m_offsetMode->addItems({tr("off"), tr("per tap"), tr("mean")});
    offsetRow->addWidget(m_offsetMode, 1);
    ol->addLayout(offsetRow);
    m_showModulation = new QCheckBox(tr("Modulation map (DCNv2)"), overlayBox);
    ol->addWidget(m_showModulation);
    m_showErf = new QCheckBox(tr("ERF heat map"), overlayBox);
    ol->addWidget(m_showErf);
    auto* erfRow = new QHBoxLayout;
    erfRow->addSpacing(18);
    m_colormap = new QComboBox(overlayBox);
    m_colormap->addItems({QStringLiteral("inferno"), QStringLiteral("viridis"), QStringLiteral("magma"),
                          QStringLiteral("plasma"), QStringLiteral("gray"), QStringLiteral("coolwarm")});
    erfRow->addWidget(m_colormap, 1);
    m_erfLog = new QCheckBox(tr("log"), overlayBox);
    erfRow->addWidget(m_erfLog);
    m_erfContours = new QCheckBox(tr("mass contours"), overlayBox);
    erfRow->addWidget(m_erfContours);
    ol->addLayout(erfRow);
    m_saliencyOutline = new QCheckBox(tr("Saliency region outline"), overlayBox);
    ol->addWidget(m_saliencyOutline);
    m_saliencyMasked = new QCheckBox(tr("Masked image (dim what is not kept)"), overlayBox);
    ol->addWidget(m_saliencyMasked);
    m_showObject = new QCheckBox(tr("Object region"), overlayBox);
    ol->addWidget(m_showObject);
    for (QCheckBox* c : {m_showSampling, m_weightShading, m_showModulation, m_showErf, m_erfLog, m_erfContours,
                         m_saliencyOutline, m_saliencyMasked, m_showObject})
        connect(c, &QCheckBox::toggled, this, onOverlay);
    connect(m_offsetMode, &QComboBox::currentIndexChanged, this, onOverlay);
    connect(m_colormap, &QComboBox::currentTextChanged, this, onOverlay);
    layout->addWidget(overlayBox);

    auto onAnalysis = [this] {
        if (m_syncing)
            return;
        AnalysisSettings a = m_analysis;
        a.saliency = m_runSaliency->isChecked();
        a.levels = m_levels->value();
        a.bilinearOffsets = m_reading->currentIndex() == 0;
        a.response = m_response->currentText().section(QLatin1Char(' '), 0, 0);
        a.epsilon = m_epsilon->value();
        a.baseline = m_baseline->currentText();
        a.forwards = m_forwards->value();
        setAnalysisSettings(a);
        requestAnalysis();
    };
    auto* analysisBox = new QGroupBox(tr("Analysis"), panel);
    auto* form = new QFormLayout(analysisBox);
    m_response = new QComboBox(analysisBox);
    m_response->setEditable(true);
    m_response->setToolTip(tr("sum: all channels; channel:N; class:K (a class score of the output)"));
    m_response->addItem(QStringLiteral("sum"));
    form->addRow(tr("Response"), m_response);
    m_levels = new QSpinBox(analysisBox);
    m_levels->setRange(1, 8);
    form->addRow(tr("Sampling levels"), m_levels);
    m_reading = new QComboBox(analysisBox);
    m_reading->addItems({tr("bilinear"), tr("nearest")});
    m_reading->setToolTip(tr("How offsets are read at fractional positions (nearest: like the DCNv1 demo)"));
    form->addRow(tr("Offset reading"), m_reading);
    m_runSaliency = new QCheckBox(tr("Search the saliency region on every click"), analysisBox);
    form->addRow(m_runSaliency);
    m_epsilon = new QDoubleSpinBox(analysisBox);
    m_epsilon->setRange(0, 10);
    m_epsilon->setSingleStep(0.05);
    m_epsilon->setDecimals(3);
    form->addRow(tr("Saliency ε"), m_epsilon);
    m_baseline = new QComboBox(analysisBox);
    m_baseline->setEditable(true);
    m_baseline->addItems({QStringLiteral("zero"), QStringLiteral("blur"), QStringLiteral("blur:16")});
    form->addRow(tr("Baseline"), m_baseline);
    m_forwards = new QSpinBox(analysisBox);
    m_forwards->setRange(20, 100000);
    m_forwards->setSingleStep(100);
    m_forwards->setToolTip(tr("Masked forward passes the search plans with: more gives smaller regions"));
    form->addRow(tr("Saliency budget"), m_forwards);
    connect(m_runSaliency, &QCheckBox::toggled, this, onAnalysis);
    connect(m_levels, &QSpinBox::editingFinished, this, onAnalysis);
    connect(m_reading, &QComboBox::currentIndexChanged, this, onAnalysis);
    connect(m_response, &QComboBox::textActivated, this, onAnalysis);
    connect(m_epsilon, &QDoubleSpinBox::editingFinished, this, onAnalysis);
    connect(m_baseline, &QComboBox::textActivated, this, onAnalysis);
    connect(m_forwards, &QSpinBox::editingFinished, this, onAnalysis);
    layout->addWidget(analysisBox);
    layout->addStretch();
    scroll->setWidget(panel);
    controlsDock->setWidget(scroll);
    addDockWidget(Qt::RightDockWidgetArea, controlsDock);
    resizeDocks({layerDock, controlsDock}, {330, 300}, Qt::Horizontal);
}

void MainWindow::buildStatusBar() {
    m_deviceLabel = new QLabel(this);
    m_deviceLabel->setObjectName(QStringLiteral("deviceLabel"));
    m_hoverLabel = new QLabel(this);
    m_hoverLabel->setMinimumWidth(360);
    m_timingLabel = new QLabel(this);
    m_progress = new QProgressBar(this);
    m_progress->setRange(0, 100);
    m_progress->setMaximumWidth(220);
    m_progress->setTextVisible(true);
    m_progress->hide();
    m_cancelButton = new QPushButton(tr("Cancel"), this);
    m_cancelButton->hide();
    connect(m_cancelButton, &QPushButton::clicked, this, &MainWindow::cancelAnalysis);
    statusBar()->addWidget(m_hoverLabel, 1);
    statusBar()->addPermanentWidget(m_timingLabel);
    statusBar()->addPermanentWidget(m_progress);
    statusBar()->addPermanentWidget(m_cancelButton);
    statusBar()->addPermanentWidget(m_deviceLabel);
    m_deviceLabel->setText(tr("Device: %1").arg(m_device));
}

void MainWindow::connectEngine() {
    Engine* e = m_engine.get();
    connect(e, &Engine::modelsOpened, this, &MainWindow::onModelsOpened, Qt::QueuedConnection);
    connect(e, &Engine::imageOpened, this, &MainWindow::onImageOpened, Qt::QueuedConnection);
    connect(e, &Engine::progress, this, &MainWindow::onProgress, Qt::QueuedConnection);
    connect(e, &Engine::resultReady, this, &MainWindow::onResult, Qt::QueuedConnection);
    connect(e, &Engine::exported, this, &MainWindow::onExported, Qt::QueuedConnection);
    connect(e, &Engine::erfAveraged, this, &MainWindow::onErfAveraged, Qt::QueuedConnection);
    connect(e, &Engine::failed, this, &MainWindow::onFailed, Qt::QueuedConnection);
}

// ---- opening things -------------------------------------------------------------------

void MainWindow::openModels(const QStringList& paths) {
    if (paths.isEmpty())
        return;
    clearError();
    m_requestedModels = paths;
    m_modelsRequest = m_engine->nextId();
    setBusy(true, tr("Loading %n model(s)", nullptr, int(paths.size())));
    QMetaObject::invokeMethod(m_engine.get(), "openModels", Qt::QueuedConnection, Q_ARG(uint64_t, m_modelsRequest),
                              Q_ARG(QStringList, paths), Q_ARG(QString, m_device));
}

void MainWindow::openImage(const QString& path) {
    if (path.isEmpty())
        return;
    clearError();
    m_requestedImage = path;
    m_imageRequest = m_engine->nextId();
    setBusy(true, tr("Loading %1").arg(QFileInfo(path).fileName()));
    QMetaObject::invokeMethod(m_engine.get(), "openImage", Qt::QueuedConnection, Q_ARG(uint64_t, m_imageRequest),
                              Q_ARG(QString, path));
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
    Q_EMIT imageShown();

    if (m_pendingSession) {
        const Session s = *m_pendingSession;
        m_pendingSession.reset();
        m_objectBox = s.objectBox;
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
        if (m_node && !(m_node->x() < image.width() && m_node->y() < image.height()))
            m_node.reset();
    }
    if (m_node)
        requestAnalysis();
}

// ---- the node ---------------------------------------------------------------------------

void MainWindow::selectPoint(QPointF p) {
    if (m_image.isNull())
        return;
    p.setX(std::clamp(p.x(), -0.5, m_image.width() - 0.5));
    p.setY(std::clamp(p.y(), -0.5, m_image.height() - 0.5));
    m_node = p;
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
    AnalysisRequest r = m_analysis.request(m_layer, *m_node, m_objectBox, m_overlays);
    r.id = m_analysisRequest = m_engine->nextId();
    setBusy(true, tr("Analysing"));
    QMetaObject::invokeMethod(m_engine.get(), "analyze", Qt::QueuedConnection, Q_ARG(deformscope::ui::AnalysisRequest, r));
}

void MainWindow::stepNode(int dy, int dx) {
    const LayerInfo* l = currentLayerInfo();
    if (!l || !m_node)
        return;
    QPointF centre = *m_node;
    if (m_result && m_currentModel < int(m_result->columns.size()) && m_result->columns[m_currentModel].error.isEmpty())
        centre = m_result->columns[m_currentModel].nodeCentre;
    selectPoint(QPointF(centre.x() + dx * l->jumpX, centre.y() + dy * l->jumpY));
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
            text += tr(" · %1 (fy %2, fx %3)").arg(l->name).arg(fy).arg(fx);
    }
    m_hoverLabel->setText(text);
}

void MainWindow::cancelAnalysis() {
    m_engine->cancel();
    statusBar()->showMessage(tr("Cancelling…"), 3000);
}

// ---- results ------------------------------------------------------------------------------

void MainWindow::onProgress(uint64_t id, double fraction, const QString& stage) {
    if (id != m_analysisRequest && id != m_erfRequest)
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
    setBusy(false);
    m_result = result;
    refreshViews();
    QStringList timings;
    for (const ColumnView& c : result->columns)
        if (!c.timing.isEmpty())
            timings.append(c.model + QStringLiteral(": ") + c.timing);
    m_timingLabel->setText(tr("%1 s").arg(number(result->seconds, 2)) +
                           (result->cancelled ? tr(" (saliency cancelled)") : QString()));
    m_timingLabel->setToolTip(timings.join(QLatin1Char('\n')));
    statusBar()->showMessage(timings.join(QStringLiteral("  ·  ")), 20000);
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
    } else if (!m_image.isNull()) {
        m_canvas->setImage(m_image);
        m_singleKernel->setColumn(nullptr);
        m_comparison->setImage(m_image);
    }
}

void MainWindow::exportTo(const QString& directory, bool figures, bool data) {
    if (!m_result) {
        showError(tr("Nothing to export yet: click a pixel first."));
        return;
    }
    ExportRequest r;
    r.id = m_exportRequest = m_engine->nextId();
    r.directory = directory;
    r.figures = figures;
    r.data = data;
    // The single view exports its model alone (the `analyze` layout); the comparison, every column.
    if (m_views->currentWidget() == m_single && m_currentModel < int(m_result->columns.size()))
        r.models = QStringList{m_result->columns[size_t(m_currentModel)].model};
    m_settings->setLastDirectory(directory);
    statusBar()->showMessage(tr("Exporting to %1…").arg(directory));
    QMetaObject::invokeMethod(m_engine.get(), "exportResults", Qt::QueuedConnection, Q_ARG(deformscope::ui::ExportRequest, r));
}

void MainWindow::onExported(uint64_t id, const QStringList& files) {
    if (id != m_exportRequest)
        return;
    statusBar()->showMessage(tr("Wrote %n file(s) to %1", nullptr, int(files.size()))
                                 .arg(files.isEmpty() ? QString() : QFileInfo(files.first()).absolutePath()),
                             15000);
    Q_EMIT exportFinished(files);
}

void MainWindow::onErfAveraged(uint64_t id, const QString& figure, int images, bool cancelled) {
    if (id != m_erfRequest)
        return;
    setBusy(false);
    statusBar()->showMessage(cancelled ? tr("ERF averaging cancelled after %1 images; partial average in %2").arg(images).arg(figure)
                                       : tr("ERF averaged over %1 images: %2").arg(images).arg(figure),
                             30000);
}

void MainWindow::onFailed(uint64_t id, const QString& message) {
    if (id == m_analysisRequest || id == m_modelsRequest || id == m_imageRequest || id == m_erfRequest)
        setBusy(false);
    if (id == m_modelsRequest || id == m_imageRequest)
        m_pendingSession.reset();
    if (id == m_analysisRequest)
        m_restoring = false;
    if (id < m_analysisRequest && id != m_modelsRequest && id != m_imageRequest && id != m_exportRequest &&
        id != m_erfRequest)
        return; // a superseded click's failure is old news
    showError(message);
}

// ---- settings, overlays, session ------------------------------------------------------------

void MainWindow::setOverlays(const CanvasOverlays& overlays) {
    m_overlays = overlays;
    m_canvas->setOverlays(overlays);
    m_comparison->setOverlays(overlays);
    syncOverlayControls();
}

void MainWindow::setAnalysisSettings(const AnalysisSettings& a) {
    m_analysis = a;
    syncAnalysisControls();
}

void MainWindow::syncOverlayControls() {
    m_syncing = true;
    m_showSampling->setChecked(m_overlays.sampling);
    for (size_t i = 0; i < m_showLevels.size(); ++i)
        m_showLevels[i]->setChecked(i < m_overlays.levels.size() ? bool(m_overlays.levels[i]) : true);
    m_weightShading->setChecked(m_overlays.weightShading);
    m_offsetMode->setCurrentIndex(int(m_overlays.offsets));
    m_showModulation->setChecked(m_overlays.modulation);
    m_showErf->setChecked(m_overlays.erf);
    m_colormap->setCurrentText(m_overlays.erfColormap);
    m_erfLog->setChecked(m_overlays.erfLog);
    m_erfContours->setChecked(m_overlays.erfContours);
    m_saliencyOutline->setChecked(m_overlays.saliencyOutline);
    m_saliencyMasked->setChecked(m_overlays.saliencyMasked);
    m_showObject->setChecked(m_overlays.object);
    m_syncing = false;
}

void MainWindow::syncAnalysisControls() {
    m_syncing = true;
    m_runSaliency->setChecked(m_analysis.saliency);
    m_levels->setValue(m_analysis.levels);
    m_reading->setCurrentIndex(m_analysis.bilinearOffsets ? 0 : 1);
    m_response->setCurrentText(m_analysis.response);
    m_epsilon->setValue(m_analysis.epsilon);
    m_baseline->setCurrentText(m_analysis.baseline);
    m_forwards->setValue(m_analysis.forwards);
    m_syncing = false;
}

void MainWindow::setComparison(bool on) {
    m_views->setCurrentWidget(on ? static_cast<QWidget*>(m_comparison) : m_single);
    if (m_comparisonAction->isChecked() != on) {
        m_syncing = true;
        m_comparisonAction->setChecked(on);
        m_syncing = false;
    }
}

Session MainWindow::session() const {
    Session s;
    for (const QString& p : m_modelPaths)
        s.models.append(QFileInfo(p).absoluteFilePath());
    s.image = m_imagePath.isEmpty() ? QString() : QFileInfo(m_imagePath).absoluteFilePath();
    s.device = m_device;
    s.layer = m_layer;
    s.node = m_node;
    s.objectBox = m_objectBox;
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
        m_modelsRequest = m_engine->nextId();
        m_requestedModels = m_modelPaths;
        setBusy(true, tr("Applying the input settings"));
        QMetaObject::invokeMethod(m_engine.get(), "setInputSettings", Qt::QueuedConnection,
                                  Q_ARG(uint64_t, m_modelsRequest), Q_ARG(QString, dialog->modelPath()),
                                  Q_ARG(deformscope::ui::InputSettings, dialog->settings()));
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
    if (!layer.isEmpty())
        s.layer = layer;
    m_pendingSession = s;
    m_pendingPixel = imagePixel;
    openModels(models);
}

// ---- small things ----------------------------------------------------------------------------

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

void MainWindow::fillLayerList() {
    m_syncing = true;
    m_layers->clear();
    if (const ModelInfo* m = currentModel()) {
        for (const LayerInfo& l : m->layers) {
            auto* item = new QTreeWidgetItem(m_layers);
            const auto [text, colour] = badge(l.kind);
            item->setText(0, l.name);
            item->setData(0, Qt::UserRole, l.name);
            item->setToolTip(0, tr("%1 · %2 → %3 channels · kernel %4×%5").arg(l.op).arg(l.inChannels).arg(l.outChannels)
                                    .arg(l.kernelH).arg(l.kernelW));
            item->setText(1, QStringLiteral(" %1 ").arg(text));
            item->setBackground(1, colour);
            item->setForeground(1, Qt::white);
            item->setTextAlignment(1, Qt::AlignCenter);
            item->setText(2, QStringLiteral("%1×%2").arg(l.featureH).arg(l.featureW));
            item->setText(3, QString::number(l.jumpX, 'g', 4));
            item->setText(4, QStringLiteral("%1×%2").arg(l.rfH, 0, 'g', 4).arg(l.rfW, 0, 'g', 4));
            if (l.name == m_layer)
                m_layers->setCurrentItem(item);
        }
    }
    m_syncing = false;
}

void MainWindow::updateRecentMenus() {
    m_recentModelsMenu->clear();
    for (const QStringList& set : m_settings->recentModelSets()) {
        QStringList names;
        for (const QString& p : set)
            names.append(QFileInfo(p).fileName());
        QAction* a = m_recentModelsMenu->addAction(names.join(QStringLiteral(", ")));
        a->setToolTip(set.join(QLatin1Char('\n')));
        connect(a, &QAction::triggered, this, [this, set] { openModels(set); });
    }
    m_recentModelsMenu->setEnabled(!m_recentModelsMenu->isEmpty());
    m_recentImagesMenu->clear();
    for (const QString& p : m_settings->recentImages()) {
        QAction* a = m_recentImagesMenu->addAction(QFileInfo(p).fileName());
        a->setToolTip(p);
        connect(a, &QAction::triggered, this, [this, p] { openImage(p); });
    }
    m_recentImagesMenu->setEnabled(!m_recentImagesMenu->isEmpty());
    m_recentSessionsMenu->clear();
    for (const QString& p : m_settings->recentSessions()) {
        QAction* a = m_recentSessionsMenu->addAction(QFileInfo(p).fileName());
        a->setToolTip(p);
        connect(a, &QAction::triggered, this, [this, p] { openSession(p); });
    }
    m_recentSessionsMenu->setEnabled(!m_recentSessionsMenu->isEmpty());
}

void MainWindow::updateWindowTitle() {
    QStringList parts;
    for (const ModelInfo& m : m_models)
        parts.append(m.name);
    QString title = parts.isEmpty() ? QStringLiteral("DeformScope") : parts.join(QStringLiteral(" · "));
    if (!m_imagePath.isEmpty())
        title += QStringLiteral(" — ") + QFileInfo(m_imagePath).fileName();
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
    }
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
        if (!images.isEmpty())
            openImage(images.first());
    }
    event->acceptProposedAction();
}

} // namespace deformscope::ui
