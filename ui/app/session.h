// A DeformScope session: the models, the image, the device, the node, the
// overlays and the analysis settings — what File ▸ Save Session writes (JSON,
// "deformscope-session/1", atomically) and File ▸ Open Session restores. The
// analysis settings are the one request type (core/common/request.h), stored
// in its own JSON form, so old session files open with the same meaning.
#pragma once

#include "core/common/request.h"
#include "ui/canvas/overlays.h"

#include <QJsonObject>
#include <QPointF>
#include <QRectF>
#include <QString>
#include <QStringList>

#include <optional>

namespace deformscope::ui {

struct Session {
    QStringList models;          // absolute paths
    QString image;               // absolute path, may be empty
    QString device = QStringLiteral("cpu");
    QString layer;               // empty: each model's suggested layer
    std::optional<QPointF> node; // the clicked point on the input grid
    QRectF objectBox;            // input grid; null: none
    QRectF roiBox;               // RoI-head models' region of interest, input grid; null: the whole image
    bool comparison = true;      // the comparison view (else the single-model view)
    int currentModel = 0;        // the model the single view and the layer list show
    // The analysis settings the user controls: a request whose click (layer,
    // point, object box), colour map and log scale are the fields above and the overlays'.
    common::AnalysisRequest analysis;
    CanvasOverlays overlays;

    QJsonObject toJson() const;
    bool operator==(const Session&) const = default;
};

// The request of a click: the settings with the click's layer, its input-grid
// point and object box (input-grid pixel edges; null: the image's mask, if any),
// and the overlays' colour map and log scale; the motion overlay asks for the
// motion analysis (the engine runs it for models with an alignment layer).
// `roiBox` (input-grid pixel edges; null: none) is the region of interest of RoI-head
// models; `wholeRoi` leaves the point out, so the node is the RoI head's output (a box
// just drawn) rather than the bin under the point.
common::AnalysisRequest clickRequest(const common::AnalysisRequest& settings, const QString& layer, QPointF point,
                                     const QRectF& objectBox, const CanvasOverlays& overlays,
                                     const QRectF& roiBox = {}, bool wholeRoi = false);

// The analysis settings as Qt JSON (the request's JSON form, without the click)
// and back over the defaults; keys with a bad value keep their defaults and are
// named in *problems ("levels: expected ...").
QJsonObject analysisToJson(const common::AnalysisRequest& settings);
common::AnalysisRequest analysisFromJson(const QJsonObject& json, QStringList* problems = nullptr);

// A session file's contents; on failure returns nullopt and sets *problem to what is
// wrong ("is not JSON (...)", "names no model").
std::optional<Session> parseSession(const QByteArray& bytes, QString* problem);
// Reads a session file; on failure returns nullopt and sets *error to "<path>: <problem>".
std::optional<Session> loadSession(const QString& path, QString* error);
// Writes atomically (common::writeFileAtomically): "" on success, else "<path>: <problem>".
QString saveSession(const Session& session, const QString& path);

} // namespace deformscope::ui
