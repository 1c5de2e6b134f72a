// A DeformScope session: the models, the image, the device, the node, the
// overlays and the analysis settings — what File ▸ Save Session writes (JSON,
// "deformscope-session/1", atomically) and File ▸ Open Session restores.
#pragma once

#include "ui/canvas/overlays.h"
#include "ui/engine/engine.h"

#include <QJsonObject>
#include <QPointF>
#include <QRectF>
#include <QString>
#include <QStringList>

#include <optional>

namespace deformscope::ui {

// The analysis settings the user controls (the rest of an AnalysisRequest is the click).
struct AnalysisSettings {
    QString response = QStringLiteral("sum"); // "sum", "channel:N", "class:K"
    bool sampling = true, erf = true, saliency = true;
    int levels = 3;
    bool bilinearOffsets = true;
    bool signedErf = false;
    double epsilon = 0.1;
    QString baseline = QStringLiteral("zero");
    int forwards = 400;

    QJsonObject toJson() const;
    static AnalysisSettings fromJson(const QJsonObject& o); // missing keys keep their defaults
    bool operator==(const AnalysisSettings&) const = default;

    // The request for a click at `point` on `layer` (the overlays give the colour map).
    AnalysisRequest request(const QString& layer, QPointF point, const QRectF& objectBox,
                            const CanvasOverlays& overlays) const;
};

struct Session {
    QStringList models;          // absolute paths
    QString image;               // absolute path, may be empty
    QString device = QStringLiteral("cpu");
    QString layer;               // empty: each model's suggested layer
    std::optional<QPointF> node; // the clicked point on the input grid
    QRectF objectBox;            // input grid; null: none
    bool comparison = true;      // the comparison view (else the single-model view)
    int currentModel = 0;        // the model the single view and the layer list show
    AnalysisSettings analysis;
    CanvasOverlays overlays;

    QJsonObject toJson() const;
    bool operator==(const Session&) const = default;
};

// Reads a session file; on failure returns nullopt and sets *error to "<path>: <problem>".
std::optional<Session> loadSession(const QString& path, QString* error);
// Writes atomically (a temporary file, then rename): "" on success, else "<path>: <problem>".
QString saveSession(const Session& session, const QString& path);

} // namespace deformscope::ui
