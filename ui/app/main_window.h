// DeformScope's main window: open models and an image, pick device and layer,
// click a pixel, see each model's sampling points, ERF and saliency region side
// by side, export figures, data and the views as shown, save and restore
// sessions. GUI thread only.
//
// The window never computes: every request goes to the Engine on its worker
// thread (ui/engine) and comes back as a ClickView. Errors the user can cause
// (bad files, CUDA out of memory, NaN outputs) show in the window's message bar;
// the window and the user's session stay as they were.
#pragma once

#include "ui/app/app_settings.h"
#include "ui/app/session.h"
#include "ui/canvas/overlays.h"
#include "ui/engine/engine.h"
#include "ui/view/view_data.h"

#include <QMainWindow>
#include <QPointer>
#include <QSet>

#include <memory>
#include <optional>
#include <vector>

class QAction;
class QDialog;
class QCheckBox;
class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QTableWidget;
class QMenu;
class QProgressBar;
class QPushButton;
class QSpinBox;
class QStackedWidget;
class QToolButton;
class QTreeWidget;

namespace deformscope::ui {

class Canvas;
class ComparisonView;
class KernelInset;

class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    // `settings` may be null (the user's settings); tests pass their own file.
    explicit MainWindow(AppSettings* settings = nullptr, QWidget* parent = nullptr);
    ~MainWindow() override;

    // Opening things (the same as the menus, drag and drop and recent files do).
    void openModels(const QStringList& paths); // in place of the open ones
    // Adds `paths` to the open models (the comparison); ones already open are not opened twice.
    void addModels(const QStringList& paths);
    // Help: keyboard shortcuts, what each overlay shows, the README; About: the versions.
    // Non-modal windows (objectName "helpDialog", "aboutDialog").
    void showHelp();
    void showAbout();
    void openImage(const QString& path);
    // Several images as a model's input frames (in this order), side by side.
    void openFrames(const QStringList& paths);
    // Frames of a video, chosen in a dialog with a frame slider.
    void openVideo(const QString& path);
    // The bundled video model and frame pair File > Open Sample Video Model opens
    // (the action is enabled once they are set and exist), and the labels of its
    // reference and support frames (empty: none) it propagates with the motion
    // overlay on.
    void setSampleVideo(const QString& model, const QStringList& frames, const QStringList& labels = {});
    // A label of the reference frame (a mask image or keypoints JSON, original
    // image pixels) carried to the support frame by the alignment layer's reads
    // and by optical flow (the click's columns show it: core/report/video.h);
    // `supportFrame`: the support frame's own label, to score the propagation.
    // Cleared when other frames open.
    void openLabel(const QString& path, bool supportFrame = false);
    // The same for the frames being opened now (start(), the sample video): the
    // reference frame's label [, the support frame's], set once they are shown.
    void setLabelsForNextFrames(const QStringList& labels) { m_pendingLabels = labels; }
    void clearLabels();
    // Selects the node nearest to an input-grid point of the current layer and analyses it.
    void selectPoint(QPointF inputGridPoint);
    // The same, in the original image's pixels.
    void selectImagePixel(QPointF imagePixel);
    void setLayer(const QString& layer);
    void setComparison(bool on);
    void openSession(const QString& path);
    // Opens the models and the image and selects the node under `imagePixel`
    // (original image pixels; none: no node) once they are loaded: the first run.
    void start(const QStringList& models, const QString& image, std::optional<QPointF> imagePixel,
               const QString& layer = {});
    bool saveSessionTo(const QString& path);
    // Exports the current result's figures (PNG, SVG, PDF) and data into
    // `directory` (the engine writes them, as the CLI does), and with the
    // figures the views as they are shown: view.png (the single view) or
    // <model>/view.png (each comparison column) — the canvas's drawing without
    // its HUD, made by the same composeView and figure renderer.
    void exportTo(const QString& directory, bool figures = true, bool data = true);
    // File > Export: into a subfolder of `parent` named after the model (or "compare"), the
    // layer and the node ("dcn_v2_block3_fx12_fy7"), made with any folders it needs; when it
    // exists already, a question (non-modal, objectName "overwriteQuestion") asks first.
    void exportUnder(const QString& parent, bool figures = true, bool data = true);
    QString exportFolderName() const; // "" before any result
    // The result column the single view shows (what it exports); -1 in the comparison or before a result.
    int singleViewColumn() const;
    void cancelAnalysis();
    // Asks how to feed a model (mean, std, colour order, input size); non-blocking.
    void editInputSettings(int model);
    // The response menu: "sum" and the model's classes by name; the item showing `response`.
    void fillResponseMenu();
    void fillSingleMetrics(const ColumnView* column); // the single view's metrics table (hidden: none)
    void analyseMissingColumns();
    int responseItem(const QString& response) const;
    // Whether opening a model without metadata asks for its input settings (off
    // without a display: the defaults are used and the model's notes say so).
    void setAskForInputSettings(bool ask) { m_askInput = ask; }

    // State, for the status bar, sessions and tests.
    Session session() const;
    const std::vector<ModelInfo>& models() const { return m_models; }
    ClickViewPtr result() const { return m_result; }
    QString errorText() const;
    QTreeWidget* layerList() const { return m_layers; }
    Canvas* canvas() const { return m_canvas; }
    // The node last asked for (input grid), before its results arrive.
    std::optional<QPointF> requestedNode() const { return m_node; }
    // The single view's resampled-kernel inset (shown for a Deformable Kernel model).
    KernelInset* singleKernelInset() const { return m_singleKernel; }
    ComparisonView* comparisonView() const { return m_comparison; }
    QString currentLayer() const { return m_layer; }
    CanvasOverlays overlays() const { return m_overlays; }
    void setOverlays(const CanvasOverlays& overlays);
    // The analysis settings: the request clicks are made of (session.h's clickRequest).
    common::AnalysisRequest analysisSettings() const { return m_analysis; }
    void setAnalysisSettings(const common::AnalysisRequest& a);
    bool busy() const { return m_busy; }

Q_SIGNALS:
    void modelsShown();                     // models opened and listed
    void imageShown();
    void resultShown(const deformscope::ui::ClickViewPtr& result);
    // A click's first results shown while its saliency searches still run (ClickView::partial):
    // the sampling points and ERF, then each column as its search ends. resultShown follows.
    void partialResultShown(const deformscope::ui::ClickViewPtr& result);
    void errorShown(const QString& message);
    void exportFinished(const QStringList& files);
    void sessionRestored();

protected:
    void closeEvent(QCloseEvent* event) override;
    void showEvent(QShowEvent* event) override;
    void dragEnterEvent(QDragEnterEvent* event) override;
    void dropEvent(QDropEvent* event) override;

private:
    void buildActions();
    void buildMenus();
    void buildToolBar();
    void buildDocks();
    void buildStatusBar();
    void connectEngine();
    void updateRecentMenus();
    void fillLayerList();
    void updateWindowTitle();
    void showError(const QString& message);
    void clearError();
    void requestAnalysis();
    void stepNode(int dy, int dx);
    void hovered(QPointF p);
    void refreshViews();
    void syncOverlayControls();
    void syncAnalysisControls();
    void applySessionTail();
    const ModelInfo* currentModel() const;
    const LayerInfo* currentLayerInfo() const;
    void setBusy(bool busy, const QString& stage = {});
    // Clears the message bar and shows `stage` as busy: a new request's id for opening files.
    void startLoading(const QString& stage);
    // Writes the shown views for exportTo; returns the files written (errors are shown).
    QStringList exportViews(const QString& directory);

    // Slots for the engine's answers.
    void onModelsOpened(uint64_t id, const std::vector<ModelInfo>& models);
    void onImageOpened(uint64_t id, const QString& path, const QImage& image, double scaleX, double scaleY);
    void onProgress(uint64_t id, double fraction, const QString& stage);
    void onResult(const ClickViewPtr& result);
    void onExported(uint64_t id, const QStringList& engineFiles);
    void onErfAveraged(uint64_t id, const QString& figure, int images, bool cancelled);
    void onStudied(uint64_t id, const QString& figure, int objects, int images, bool cancelled);
    void onFigureWritten(uint64_t id, const QString& title, const QString& png, bool cancelled);
    // The figure window (one, reused): `png` scaled to fit, the title, Open Folder.
    void showFigure(const QString& title, const QString& png, bool cancelled);
    void onFailed(uint64_t id, const QString& message);

    std::unique_ptr<AppSettings> m_ownSettings;
    AppSettings* m_settings = nullptr;
    std::unique_ptr<Engine> m_engine;

    // What is open.
    std::vector<ModelInfo> m_models;
    QStringList m_modelPaths;
    QString m_imagePath;
    QImage m_image;
    double m_scaleX = 1, m_scaleY = 1;
    QString m_device = QStringLiteral("cpu");
    QString m_layer;
    std::optional<QPointF> m_node;
    QRectF m_objectBox;
    QRectF m_roiBox;          // RoI-head models' region of interest (input grid); null: the whole image
    bool m_wholeRoi = false;  // the last analysis request was the drawn RoI's (its head output), not a click
    bool m_drawingRoi = false; // the box tool draws the RoI, not the object box
    int m_currentModel = 0;
    ClickViewPtr m_result;
    CanvasOverlays m_overlays;
    common::AnalysisRequest m_analysis;
    std::optional<Session> m_pendingSession; // restored in steps as the engine answers
    std::optional<QPointF> m_pendingPixel;
    bool m_restoring = false;
    QSet<QString> m_askedInput;
    bool m_askInput = true;              // models whose input settings were asked for   // start(): the node to select once the image is loaded

    // Requests in flight.
    uint64_t m_modelsRequest = 0, m_imageRequest = 0, m_analysisRequest = 0, m_exportRequest = 0, m_erfRequest = 0;
    uint64_t m_studyRequest = 0, m_figureRequest = 0;
    QStringList m_viewFiles;             // the views the last export wrote (reported with the engine's files)
    QStringList m_requestedModels;
    QString m_requestedImage;
    bool m_busy = false;

    // Widgets.
    QStackedWidget* m_views = nullptr;
    Canvas* m_canvas = nullptr;
    QWidget* m_single = nullptr; // the single view: m_canvas over m_singleKernel
    KernelInset* m_singleKernel = nullptr;
    ComparisonView* m_comparison = nullptr;
    QLabel* m_messageBar = nullptr;
    QTreeWidget* m_layers = nullptr;
    QComboBox* m_deviceBox = nullptr;
    QComboBox* m_modelBox = nullptr;
    QLabel* m_deviceLabel = nullptr;
    QLabel* m_hoverLabel = nullptr;
    QLabel* m_timingLabel = nullptr;
    QProgressBar* m_progress = nullptr;
    QPushButton* m_cancelButton = nullptr;
    QMenu* m_recentModelsMenu = nullptr;
    QMenu* m_recentImagesMenu = nullptr;
    QMenu* m_recentSessionsMenu = nullptr;

    // Overlay and analysis controls.
    QCheckBox* m_showSampling = nullptr;
    std::vector<QCheckBox*> m_showLevels;
    QCheckBox* m_weightShading = nullptr;
    QComboBox* m_offsetMode = nullptr;
    QCheckBox* m_showModulation = nullptr;
    QCheckBox* m_showErf = nullptr;
    QComboBox* m_colormap = nullptr;
    QCheckBox* m_erfLog = nullptr;
    QCheckBox* m_erfContours = nullptr;
    QCheckBox* m_saliencyOutline = nullptr;
    QCheckBox* m_saliencyMasked = nullptr;
    QCheckBox* m_showObject = nullptr;
    QCheckBox* m_runSaliency = nullptr;
    QSpinBox* m_levels = nullptr;
    QComboBox* m_reading = nullptr;
    QComboBox* m_through = nullptr;
    QComboBox* m_response = nullptr;
    QDoubleSpinBox* m_epsilon = nullptr;
    QComboBox* m_baseline = nullptr;
    QSpinBox* m_forwards = nullptr;
    bool m_syncing = false;

    QAction* m_openModelsAction = nullptr; // Ctrl+O: add models
    QAction* m_replaceModelsAction = nullptr;
    QMenu* m_viewMenu = nullptr;
    QTableWidget* m_singleMetrics = nullptr;
    bool m_docksSized = false; // the docks' first widths given (on the first show, without a saved state)
    QAction* m_openImageAction = nullptr;
    QAction* m_openFramesAction = nullptr;
    QAction* m_openVideoAction = nullptr;
    QAction* m_openSampleVideoAction = nullptr;
    QString m_sampleVideoModel;
    QStringList m_sampleVideoFrames, m_sampleVideoLabels;
    QStringList m_pendingLabels; // reference [, support] labels to set once the frames opening now are shown
    QAction* m_openLabelAction = nullptr;
    QAction* m_openSupportLabelAction = nullptr;
    QAction* m_clearLabelsAction = nullptr;
    QCheckBox* m_showMotion = nullptr;
    QCheckBox* m_showLabels = nullptr;
    QAction* m_openSessionAction = nullptr;
    QAction* m_saveSessionAction = nullptr;
    QAction* m_exportAction = nullptr;
    QAction* m_exportDataAction = nullptr;
    QAction* m_erfAverageAction = nullptr;
    QAction* m_studyAction = nullptr;
    QAction* m_sweepAction = nullptr;
    QAction* m_scaleMapAction = nullptr;
    QDialog* m_figureDialog = nullptr; // the last sweep / ERF-size map figure
    QAction* m_quitAction = nullptr;
    QAction* m_fullScreenAction = nullptr;
    QAction* m_comparisonAction = nullptr;
    QAction* m_objectToolAction = nullptr;
    QAction* m_roiToolAction = nullptr;
    QAction* m_clearRoiAction = nullptr;
    QAction* m_clearObjectAction = nullptr;
    QAction* m_cancelAction = nullptr;
    QAction* m_fitAction = nullptr;
    QAction* m_inputSettingsAction = nullptr;
};

} // namespace deformscope::ui
