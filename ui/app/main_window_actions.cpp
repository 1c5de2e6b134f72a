// The main window's actions, menus, tool bar and recent-file menus: what each
// command does when triggered. GUI thread only (MainWindow's members; see
// main_window.cpp for the window's core).
#include "ui/app/main_window.h"
#include "ui/app/palette.h"

#include "ui/canvas/canvas.h"
#include "ui/canvas/comparison_view.h"

#include <QAction>
#include <QComboBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QInputDialog>
#include <QLabel>
#include <QLineEdit>
#include <QActionGroup>
#include <QMenu>
#include <QMenuBar>
#include <QMessageBox>
#include <QToolBar>

#include <functional>

namespace deformscope::ui {

void MainWindow::buildActions() {
    // Ctrl+O adds to the comparison; replacing what is open is its own action.
    auto chooseModels = [this](const QString& title) {
        const QStringList files = QFileDialog::getOpenFileNames(
            this, title, m_settings->lastDirectory(),
            tr("Models (*.pt *.pth *.ts *.torchscript *.pt2 *.onnx);;TorchScript (*.pt *.pth *.ts *.torchscript);;"
               "torch.export (*.pt2);;ONNX (*.onnx);;All files (*)"));
        if (!files.isEmpty())
            m_settings->setLastDirectory(QFileInfo(files.first()).absolutePath());
        return files;
    };
    m_openModelsAction = new QAction(QIcon::fromTheme(QStringLiteral("document-open")), tr("&Add Models…"), this);
    m_openModelsAction->setObjectName(QStringLiteral("addModelsAction"));
    m_openModelsAction->setShortcut(QKeySequence::Open);
    m_openModelsAction->setToolTip(
        tr("Add one or more models to the comparison: TorchScript, torch.export (.pt2) or ONNX (Ctrl+O)"));
    connect(m_openModelsAction, &QAction::triggered, this,
            [this, chooseModels] { addModels(chooseModels(tr("Add models to the comparison"))); });
    m_replaceModelsAction = new QAction(tr("&Replace Models…"), this);
    m_replaceModelsAction->setObjectName(QStringLiteral("replaceModelsAction"));
    m_replaceModelsAction->setToolTip(tr("Close the open models and open others"));
    connect(m_replaceModelsAction, &QAction::triggered, this,
            [this, chooseModels] { openModels(chooseModels(tr("Open models in place of the open ones"))); });

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

    m_openFramesAction = new QAction(tr("Open Frame &Pair…"), this);
    m_openFramesAction->setObjectName(QStringLiteral("openFramesAction"));
    m_openFramesAction->setToolTip(tr("Open two (or more) images as the input frames of a video model, in order"));
    connect(m_openFramesAction, &QAction::triggered, this, [this] {
        QStringList files = QFileDialog::getOpenFileNames(
            this, tr("Open frames (in order: reference first)"), m_settings->lastDirectory(),
            tr("Images (*.png *.jpg *.jpeg *.bmp *.tif *.tiff *.webp);;All files (*)"));
        if (files.isEmpty())
            return;
        m_settings->setLastDirectory(QFileInfo(files.front()).absolutePath());
        files.sort(); // file dialogs return the selection in no fixed order: frames by name
        openFrames(files);
    });
    m_openVideoAction = new QAction(tr("Open &Video…"), this);
    m_openVideoAction->setObjectName(QStringLiteral("openVideoAction"));
    connect(m_openVideoAction, &QAction::triggered, this, [this] {
        const QString file = QFileDialog::getOpenFileName(this, tr("Open video"), m_settings->lastDirectory(),
                                                          tr("Videos (*.mp4 *.avi *.mov *.mkv *.webm);;All files (*)"));
        if (file.isEmpty())
            return;
        m_settings->setLastDirectory(QFileInfo(file).absolutePath());
        openVideo(file);
    });

    m_openSampleVideoAction = new QAction(tr("Open Sample Vi&deo Model"), this);
    m_openSampleVideoAction->setObjectName(QStringLiteral("openSampleVideoAction"));
    m_openSampleVideoAction->setToolTip(tr("The bundled two-frame alignment model (align.pt) on its sample frame pair"));
    m_openSampleVideoAction->setEnabled(false);
    connect(m_openSampleVideoAction, &QAction::triggered, this, [this] {
        openModels({m_sampleVideoModel});
        setLabelsForNextFrames(m_sampleVideoLabels);
        if (!m_sampleVideoLabels.isEmpty() && !m_overlays.motion) {
            CanvasOverlays o = m_overlays;
            o.motion = true;
            setOverlays(o);
        }
        openFrames(m_sampleVideoFrames);
    });

    const QString labelFilter = tr("Labels (*.png *.bmp *.tif *.tiff *.json);;All files (*)");
    m_openLabelAction = new QAction(tr("Open &Label of the Reference Frame…"), this);
    m_openLabelAction->setObjectName(QStringLiteral("openLabelAction"));
    m_openLabelAction->setToolTip(tr("A mask image or keypoints JSON ({\"keypoints\": [[x, y], ...]}) on the "
                                     "reference frame: the click shows where the alignment layer's reads and "
                                     "optical flow carry it on the support frame"));
    connect(m_openLabelAction, &QAction::triggered, this, [this, labelFilter] {
        const QString file = QFileDialog::getOpenFileName(this, tr("Label of the reference frame"),
                                                          m_settings->lastDirectory(), labelFilter);
        if (!file.isEmpty())
            openLabel(file);
    });
    m_openSupportLabelAction = new QAction(tr("Open Label of the &Support Frame…"), this);
    m_openSupportLabelAction->setObjectName(QStringLiteral("openSupportLabelAction"));
    m_openSupportLabelAction->setToolTip(tr("The support frame's own label: the propagated label is scored "
                                            "against it (IoU for masks, distance for keypoints)"));
    connect(m_openSupportLabelAction, &QAction::triggered, this, [this, labelFilter] {
        const QString file = QFileDialog::getOpenFileName(this, tr("Label of the support frame"),
                                                          m_settings->lastDirectory(), labelFilter);
        if (!file.isEmpty())
            openLabel(file, true);
    });
    m_clearLabelsAction = new QAction(tr("Clear Labels"), this);
    m_clearLabelsAction->setEnabled(false);
    connect(m_clearLabelsAction, &QAction::triggered, this, &MainWindow::clearLabels);

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
        const QString dir = QFileDialog::getExistingDirectory(this, tr("Export into folder (a subfolder per export)"),
                                                              m_settings->lastDirectory());
        if (!dir.isEmpty())
            exportUnder(dir, true, true);
    });
    m_exportDataAction = new QAction(tr("Export &Data Only…"), this);
    connect(m_exportDataAction, &QAction::triggered, this, [this] {
        const QString dir = QFileDialog::getExistingDirectory(this, tr("Export data into folder (a subfolder per export)"),
                                                              m_settings->lastDirectory());
        if (!dir.isEmpty())
            exportUnder(dir, false, true);
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
        r.model = model->path;
        r.folder = images;
        r.layer = m_layer;
        r.outDirectory = out;
        setBusy(true, tr("Averaging the ERF over %1").arg(images));
        m_erfRequest = m_engine->averageErf(r);
    });

    m_studyAction = new QAction(tr("Dataset &Study over a Folder…"), this);
    m_studyAction->setObjectName(QStringLiteral("studyAction"));
    m_studyAction->setToolTip(tr("Does the receptive field adapt to the object? Every object of a folder's masks, "
                                 "in every open model, correlated with its size (the CLI's study)"));
    connect(m_studyAction, &QAction::triggered, this, [this] {
        if (m_models.empty()) {
            showError(tr("Open the models first: the study runs every open model."));
            return;
        }
        const QString images = QFileDialog::getExistingDirectory(
            this, tr("Folder of images, each with its <name>_mask.png (object ids)"), m_settings->lastDirectory());
        if (images.isEmpty())
            return;
        const QString out = QFileDialog::getExistingDirectory(this, tr("Write the study into folder"), images);
        if (out.isEmpty())
            return;
        StudyRequest r;
        r.folder = images;
        r.layer = m_layer;
        r.outDirectory = out;
        r.saliency = QMessageBox::question(this, tr("Dataset study"),
                                           tr("Also find each object's saliency region? It takes seconds per object "
                                              "and model on a CPU; the ERF and sampling points take a fraction of "
                                              "a second.")) == QMessageBox::Yes;
        setBusy(true, tr("Studying the objects of %1").arg(images));
        m_studyRequest = m_engine->study(r);
    });

    m_sweepAction = new QAction(tr("Resolution S&weep…"), this);
    m_sweepAction->setObjectName(QStringLiteral("sweepAction"));
    m_sweepAction->setToolTip(tr("The last click's node (or the image's centre) in every open model at several "
                                 "input sizes: does the receptive field keep up with the object? (DCNv2's Figs. 4/5)"));
    connect(m_sweepAction, &QAction::triggered, this, [this] {
        if (m_models.empty() || m_image.isNull()) {
            showError(tr("Open the models and an image first: the sweep analyses the image at several sizes."));
            return;
        }
        bool ok = false;
        const QString text = QInputDialog::getText(this, tr("Resolution sweep"), tr("Input sizes (px, square):"),
                                                   QLineEdit::Normal, QStringLiteral("128,192,256,384,512"), &ok);
        if (!ok)
            return;
        SweepRequest r;
        r.sizes.clear();
        for (const QString& part : text.split(QLatin1Char(','), Qt::SkipEmptyParts)) {
            bool number = false;
            const int v = part.trimmed().toInt(&number);
            if (!number || v < 8) {
                showError(tr("'%1' is not an input size: give whole numbers of at least 8, e.g. 128,256,512").arg(part));
                return;
            }
            r.sizes.push_back(v);
        }
        const QString out = QFileDialog::getExistingDirectory(this, tr("Write the sweep into folder"),
                                                              m_settings->lastDirectory());
        if (out.isEmpty())
            return;
        r.outDirectory = out;
        setBusy(true, tr("Sweeping the input size"));
        m_figureRequest = m_engine->sweep(r);
    });

    m_scaleMapAction = new QAction(tr("ERF-Size &Map of the Layer…"), this);
    m_scaleMapAction->setObjectName(QStringLiteral("scaleMapAction"));
    m_scaleMapAction->setToolTip(tr("The ERF radius (50 % and 90 % of its mass) of every node of a 32 x 32 grid "
                                    "over the chosen layer: where the network looks wide and where narrow"));
    connect(m_scaleMapAction, &QAction::triggered, this, [this] {
        const ModelInfo* model = currentModel();
        if (!model || m_image.isNull()) {
            showError(tr("Open a model and an image first: the map covers the image's nodes of the chosen layer."));
            return;
        }
        const QString out = QFileDialog::getExistingDirectory(this, tr("Write the ERF-size map into folder"),
                                                              m_settings->lastDirectory());
        if (out.isEmpty())
            return;
        ScaleMapRequest r;
        r.model = model->path;
        r.layer = m_layer;
        r.outDirectory = out;
        setBusy(true, tr("Mapping the ERF size of %1").arg(m_layer.isEmpty() ? tr("the suggested layer") : m_layer));
        m_figureRequest = m_engine->scaleMap(r);
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
        if (on)
            m_drawingRoi = false;
        if (on && m_roiToolAction)
            m_roiToolAction->setChecked(false);
        m_canvas->setObjectTool(on);
        m_comparison->setObjectTool(on);
    });
    m_roiToolAction = new QAction(tr("Draw &RoI Box"), this);
    m_roiToolAction->setCheckable(true);
    m_roiToolAction->setShortcut(QKeySequence(Qt::Key_R));
    m_roiToolAction->setToolTip(tr("RoI-head models: drag the region of interest; its head output is analysed, then a "
                                   "click in it picks one bin of the RoI pooling layer (R)"));
    connect(m_roiToolAction, &QAction::toggled, this, [this](bool on) {
        m_drawingRoi = on;
        if (on)
            m_objectToolAction->setChecked(false);
        m_canvas->setObjectTool(on);
        m_comparison->setObjectTool(on);
    });
    m_clearRoiAction = new QAction(tr("Clear RoI Box"), this);
    connect(m_clearRoiAction, &QAction::triggered, this, [this] {
        m_roiBox = QRectF();
        m_wholeRoi = false;
        requestAnalysis();
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
    file->addAction(m_replaceModelsAction);
    m_recentModelsMenu = file->addMenu(tr("Recent &Models"));
    file->addAction(m_openImageAction);
    file->addAction(m_openFramesAction);
    file->addAction(m_openVideoAction);
    file->addAction(m_openSampleVideoAction);
    file->addAction(m_openLabelAction);
    file->addAction(m_openSupportLabelAction);
    file->addAction(m_clearLabelsAction);
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

    m_viewMenu = menuBar()->addMenu(tr("&View"));
    m_viewMenu->addAction(m_comparisonAction);
    m_viewMenu->addAction(m_fitAction);
    m_viewMenu->addAction(m_fullScreenAction);
    // The palette: the system's (dark when it is), light or dark; figures export the same.
    QMenu* palette = m_viewMenu->addMenu(tr("&Palette"));
    auto* paletteGroup = new QActionGroup(palette);
    const PaletteChoice saved = paletteChoiceFromName(m_settings->palette());
    for (const auto& [choice, text] : {std::pair{PaletteChoice::System, tr("Follow the &System")},
                                       std::pair{PaletteChoice::Light, tr("&Light")},
                                       std::pair{PaletteChoice::Dark, tr("&Dark")}}) {
        QAction* a = palette->addAction(text);
        a->setObjectName(QStringLiteral("palette_") + paletteChoiceName(choice));
        a->setCheckable(true);
        a->setChecked(choice == saved);
        paletteGroup->addAction(a);
        connect(a, &QAction::triggered, this, [this, choice] {
            applyPalette(choice);
            m_settings->setPalette(paletteChoiceName(choice));
        });
    }
    applyPalette(saved);
    m_viewMenu->addSeparator(); // the docks' and tool bar's toggles follow (buildDocks, buildToolBar)

    QMenu* analysis = menuBar()->addMenu(tr("&Analysis"));
    analysis->addAction(m_objectToolAction);
    analysis->addAction(m_roiToolAction);
    analysis->addAction(m_clearRoiAction);
    analysis->addAction(m_clearObjectAction);
    analysis->addSeparator();
    analysis->addAction(m_inputSettingsAction);
    analysis->addAction(m_erfAverageAction);
    analysis->addAction(m_studyAction);
    analysis->addAction(m_sweepAction);
    analysis->addAction(m_scaleMapAction);
    analysis->addAction(m_cancelAction);

    QMenu* help = menuBar()->addMenu(tr("&Help"));
    QAction* shortcuts = help->addAction(tr("&Keyboard Shortcuts and Overlays"));
    shortcuts->setObjectName(QStringLiteral("helpAction"));
    shortcuts->setShortcut(QKeySequence::HelpContents);
    connect(shortcuts, &QAction::triggered, this, &MainWindow::showHelp);
    QAction* about = help->addAction(tr("&About DeformScope"));
    about->setObjectName(QStringLiteral("aboutAction"));
    connect(about, &QAction::triggered, this, &MainWindow::showAbout);
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
        fillResponseMenu();
        refreshViews();
        analyseMissingColumns();
    });
    bar->addWidget(m_modelBox);
    bar->addSeparator();
    bar->addAction(m_comparisonAction);
    bar->addAction(m_objectToolAction);
    bar->addAction(m_exportAction);
    bar->addAction(m_cancelAction);
    bar->toggleViewAction()->setText(tr("Tool Bar"));
    m_viewMenu->addAction(bar->toggleViewAction());
}

void MainWindow::updateRecentMenus() {
    // One entry per recent set of files: `open` reopens it.
    auto fill = [this](QMenu* menu, const QList<QStringList>& sets, const std::function<void(const QStringList&)>& open) {
        menu->clear();
        for (const QStringList& set : sets) {
            QStringList names;
            for (const QString& p : set)
                names.append(QFileInfo(p).fileName());
            QAction* a = menu->addAction(names.join(QStringLiteral(", ")));
            a->setToolTip(set.join(QLatin1Char('\n')));
            connect(a, &QAction::triggered, this, [set, open] { open(set); });
        }
        menu->setEnabled(!menu->isEmpty());
    };
    auto single = [](const QStringList& paths) {
        QList<QStringList> sets;
        for (const QString& p : paths)
            sets.append(QStringList{p});
        return sets;
    };
    fill(m_recentModelsMenu, m_settings->recentModelSets(), [this](const QStringList& set) { openModels(set); });
    fill(m_recentImagesMenu, single(m_settings->recentImages()), [this](const QStringList& p) { openImage(p.front()); });
    fill(m_recentSessionsMenu, single(m_settings->recentSessions()), [this](const QStringList& p) { openSession(p.front()); });
}


} // namespace deformscope::ui
