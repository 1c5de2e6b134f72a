// The main window's docks and status bar: the layer list with its kind
// badges, the overlay and analysis controls (kept in step with the window's
// CanvasOverlays and the analysis settings), the hover, timing and progress labels.
// GUI thread only (MainWindow's members; see main_window.cpp).
#include "ui/app/main_window.h"
#include "ui/view/kind_badge.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDockWidget>
#include <QMenu>
#include <QDoubleSpinBox>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QProgressBar>
#include <QPushButton>
#include <QScrollArea>
#include <QScrollBar>
#include <QSpinBox>
#include <QStatusBar>
#include <QTreeWidget>
#include <QVBoxLayout>

namespace deformscope::ui {

namespace {

} // namespace

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
    m_layers->setMinimumWidth(200);
    connect(m_layers, &QTreeWidget::currentItemChanged, this, [this](QTreeWidgetItem* item) {
        if (m_syncing || !item)
            return;
        setLayer(item->data(0, Qt::UserRole).toString());
    });
    layerDock->setWidget(m_layers);
    addDockWidget(Qt::LeftDockWidgetArea, layerDock);
    m_viewMenu->addAction(layerDock->toggleViewAction()); // a closed dock comes back from View

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
        o.motion = m_showMotion->isChecked();
        o.labels = m_showLabels->isChecked();
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
    m_showMotion = new QCheckBox(tr("Motion: offsets | optical flow (video models)"), overlayBox);
    m_showMotion->setObjectName(QStringLiteral("showMotion"));
    m_showMotion->setToolTip(tr("The alignment layer's offsets read as motion, colour-wheel coded over the reference "
                                "frame, beside OpenCV's DIS optical flow over the support frame (one colour scale); "
                                "their end-point error and cosine join the metrics"));
    ol->addWidget(m_showMotion);
    m_showLabels = new QCheckBox(tr("Propagated label (File > Open Label…)"), overlayBox);
    m_showLabels->setObjectName(QStringLiteral("showLabels"));
    ol->addWidget(m_showLabels);
    for (QCheckBox* c : {m_showSampling, m_weightShading, m_showModulation, m_showErf, m_erfLog, m_erfContours,
                         m_saliencyOutline, m_saliencyMasked, m_showObject, m_showMotion, m_showLabels})
        connect(c, &QCheckBox::toggled, this, onOverlay);
    connect(m_offsetMode, &QComboBox::currentIndexChanged, this, onOverlay);
    connect(m_colormap, &QComboBox::currentTextChanged, this, onOverlay);
    layout->addWidget(overlayBox);

    auto onAnalysis = [this] {
        if (m_syncing)
            return;
        common::AnalysisRequest a = m_analysis;
        a.what.saliency = m_runSaliency->isChecked();
        a.levels = m_levels->value();
        a.reading = m_reading->currentIndex() == 0 ? common::OffsetReading::Bilinear : common::OffsetReading::Nearest;
        a.through = m_through->currentIndex() == 0 ? common::TraceThrough::All : common::TraceThrough::Deformable;
        const QString response = m_response->currentText().section(QLatin1Char(' '), 0, 0);
        const QString baseline = m_baseline->currentText();
        const auto r = common::Response::parse(response.toStdString());
        const auto b = common::Baseline::parse(baseline.toStdString());
        if (!r || !b) { // typed text that is not a value: say what is expected, keep the settings
            showError(!r ? tr("Response '%1': expected %2").arg(response, QString::fromUtf8(common::Response::kFormat))
                         : tr("Baseline '%1': expected %2").arg(baseline, QString::fromUtf8(common::Baseline::kFormat)));
            return;
        }
        a.response = *r;
        a.baseline = *b;
        a.epsilon = m_epsilon->value();
        a.forwards = m_forwards->value();
        setAnalysisSettings(a);
        requestAnalysis();
    };
    auto* analysisBox = new QGroupBox(tr("Analysis"), panel);
    auto* form = new QFormLayout(analysisBox);
    m_response = new QComboBox(analysisBox);
    m_response->setObjectName(QStringLiteral("responseBox"));
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
    m_through = new QComboBox(analysisBox);
    m_through->setObjectName(QStringLiteral("throughBox"));
    m_through->addItems({tr("every k×k layer"), tr("deformable layers only")});
    m_through->setToolTip(tr("Where the trace spawns points: at every k×k convolution on the way, or at the "
                             "deformable layers and samplers only, regular convolutions passing points through "
                             "(the DCN papers' 9 → 81 → 729)"));
    form->addRow(tr("Trace through"), m_through);
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
    connect(m_through, &QComboBox::currentIndexChanged, this, onAnalysis);
    connect(m_response, &QComboBox::textActivated, this, onAnalysis);
    connect(m_epsilon, &QDoubleSpinBox::editingFinished, this, onAnalysis);
    connect(m_baseline, &QComboBox::textActivated, this, onAnalysis);
    connect(m_forwards, &QSpinBox::editingFinished, this, onAnalysis);
    layout->addWidget(analysisBox);
    layout->addStretch();
    scroll->setWidget(panel);
    // The settings never clipped: the dock is at least as wide as they need (they scroll down, not across).
    scroll->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    scroll->setMinimumWidth(panel->minimumSizeHint().width() + scroll->verticalScrollBar()->sizeHint().width() +
                            2 * scroll->frameWidth());
    controlsDock->setWidget(scroll);
    addDockWidget(Qt::RightDockWidgetArea, controlsDock);
    m_viewMenu->addAction(controlsDock->toggleViewAction());
}

void MainWindow::buildStatusBar() {
    m_deviceLabel = new QLabel(this);
    m_deviceLabel->setObjectName(QStringLiteral("deviceLabel"));
    m_hoverLabel = new QLabel(this);
    m_hoverLabel->setObjectName(QStringLiteral("hoverLabel"));
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
    m_showMotion->setChecked(m_overlays.motion);
    m_showLabels->setChecked(m_overlays.labels);
    m_syncing = false;
}

void MainWindow::syncAnalysisControls() {
    m_syncing = true;
    m_runSaliency->setChecked(m_analysis.what.saliency);
    m_levels->setValue(m_analysis.levels);
    m_reading->setCurrentIndex(m_analysis.reading == common::OffsetReading::Bilinear ? 0 : 1);
    m_through->setCurrentIndex(m_analysis.through == common::TraceThrough::All ? 0 : 1);
    const QString response = QString::fromStdString(m_analysis.response.toString());
    const int item = responseItem(response);
    if (item >= 0)
        m_response->setCurrentIndex(item);
    else
        m_response->setCurrentText(response);
    m_epsilon->setValue(m_analysis.epsilon);
    m_baseline->setCurrentText(QString::fromStdString(m_analysis.baseline.toString()));
    m_forwards->setValue(int(m_analysis.forwards));
    m_syncing = false;
}

int MainWindow::responseItem(const QString& response) const {
    for (int i = 0; i < m_response->count(); ++i)
        if (m_response->itemText(i).section(QLatin1Char(' '), 0, 0) == response)
            return i;
    return -1;
}

void MainWindow::fillResponseMenu() {
    // "sum", then the output's classes by name ("class:2 (triangle)"): the current model's,
    // else the first model's that names them. A typed "channel:N" still works.
    QStringList names;
    if (const ModelInfo* m = currentModel())
        names = m->classNames;
    for (const ModelInfo& m : m_models)
        if (names.isEmpty())
            names = m.classNames;
    m_syncing = true;
    m_response->clear();
    m_response->addItem(QStringLiteral("sum"));
    for (int k = 0; k < names.size(); ++k)
        m_response->addItem(QStringLiteral("class:%1 (%2)").arg(k).arg(names[k]));
    m_syncing = false;
    syncAnalysisControls();
}

void MainWindow::fillLayerList() {
    m_syncing = true;
    m_layers->clear();
    if (const ModelInfo* m = currentModel()) {
        for (const LayerInfo& l : m->layers) {
            auto* item = new QTreeWidgetItem(m_layers);
            const auto [text, colour] = kindBadge(l.kind);
            item->setText(0, l.name);
            item->setData(0, Qt::UserRole, l.name);
            QString tip = tr("%1 · %2 → %3 channels · kernel %4×%5").arg(l.op).arg(l.inChannels).arg(l.outChannels)
                              .arg(l.kernelH).arg(l.kernelW);
            if (!l.detail.isEmpty())
                tip += QStringLiteral("\n") + l.detail;
            item->setToolTip(0, tip);
            item->setToolTip(1, tip);
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

} // namespace deformscope::ui
