#include "ui/app/session.h"

#include "core/common/atomic_file.h"
#include "core/common/json_file.h"

#include <QFile>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>

#include <algorithm>

namespace deformscope::ui {

namespace {
const char* const kFormat = "deformscope-session/1";

QJsonArray rectToJson(const QRectF& r) { return QJsonArray{r.x(), r.y(), r.width(), r.height()}; }
// A box [x, y, w, h] of four numbers; anything else, or a box of no size (which
// toJson leaves out, as it leaves out no box), is no box.
QRectF rectFromJson(const QJsonValue& v) {
    const QJsonArray a = v.toArray();
    if (a.size() != 4 || !std::all_of(a.begin(), a.end(), [](const QJsonValue& x) { return x.isDouble(); }))
        return {};
    const QRectF r(a[0].toDouble(), a[1].toDouble(), a[2].toDouble(), a[3].toDouble());
    return r.isNull() ? QRectF() : r;
}
} // namespace

common::AnalysisRequest clickRequest(const common::AnalysisRequest& settings, const QString& layer, QPointF point,
                                     const QRectF& objectBox, const CanvasOverlays& overlays, const QRectF& roiBox,
                                     bool wholeRoi) {
    common::AnalysisRequest q = settings;
    q.layer = layer.toStdString();
    q.at = common::Location{common::Grid::Input, point.x(), point.y()};
    q.roi.reset();
    q.bin.reset();
    if (!roiBox.isNull()) {
        const QRectF b = roiBox.normalized();
        q.roi = common::Box{common::Grid::Input, b.left(), b.top(), b.right(), b.bottom()};
        if (wholeRoi)
            q.at.reset();
    }
    q.object = common::ObjectRegion{};
    if (!objectBox.isNull()) {
        const QRectF b = objectBox.normalized();
        q.object.kind = common::ObjectRegion::Kind::Box;
        q.object.box = common::Box{common::Grid::Input, b.left(), b.top(), b.right(), b.bottom()};
    }
    q.colormap = common::parseColormap(overlays.erfColormap.toStdString()).value_or(common::Colormap::Inferno);
    q.logScale = overlays.erfLog;
    q.what.motion = q.what.motion || overlays.motion;
    return q;
}

// The click, the device, the grid and the colour map are the session's own fields and
// the overlays' (the engine sets the device and the grid): not part of its analysis
// settings, written or read.
constexpr const char* kNotSettings[] = {"layer", "at", "object", "roi", "bin", "device", "input_size", "colormap", "log_scale"};

QJsonObject analysisToJson(const common::AnalysisRequest& settings) {
    common::Json j = common::toJson(settings);
    for (const char* key : kNotSettings)
        j.erase(key);
    return QJsonDocument::fromJson(QByteArray::fromStdString(j.dump())).object();
}

common::AnalysisRequest analysisFromJson(const QJsonObject& json, QStringList* problems) {
    QJsonObject settings = json;
    for (const char* key : kNotSettings)
        settings.remove(QLatin1String(key));
    std::vector<std::string> found;
    const common::AnalysisRequest r = common::requestFromJson(
        common::Json::parse(QJsonDocument(settings).toJson(QJsonDocument::Compact).toStdString()),
        common::AnalysisRequest{}, found);
    if (problems)
        for (const std::string& p : found)
            *problems << QString::fromStdString(p);
    return r;
}

QJsonObject Session::toJson() const {
    QJsonObject o{{QStringLiteral("format"), QString::fromLatin1(kFormat)},
                  {QStringLiteral("models"), QJsonArray::fromStringList(models)},
                  {QStringLiteral("image"), image},
                  {QStringLiteral("device"), device},
                  {QStringLiteral("layer"), layer},
                  {QStringLiteral("comparison"), comparison},
                  {QStringLiteral("current_model"), currentModel},
                  {QStringLiteral("analysis"), analysisToJson(analysis)},
                  {QStringLiteral("overlays"), overlays.toJson()}};
    if (node)
        o.insert(QStringLiteral("node"), QJsonArray{node->x(), node->y()});
    if (!objectBox.isNull())
        o.insert(QStringLiteral("object_box"), rectToJson(objectBox));
    if (!roiBox.isNull())
        o.insert(QStringLiteral("roi_box"), rectToJson(roiBox));
    return o;
}

std::optional<Session> parseSession(const QByteArray& bytes, QString* problem) {
    auto fail = [&](const QString& why) -> std::optional<Session> {
        if (problem)
            *problem = why;
        return std::nullopt;
    };
    QJsonParseError pe;
    const QJsonDocument doc = QJsonDocument::fromJson(bytes, &pe);
    if (pe.error != QJsonParseError::NoError)
        return fail(QStringLiteral("is not JSON (") + pe.errorString() + QStringLiteral(" at byte ") +
                    QString::number(pe.offset) + QLatin1Char(')'));
    const QJsonObject o = doc.object();
    if (o.value(QStringLiteral("format")).toString() != QLatin1String(kFormat))
        return fail(QStringLiteral("is not a DeformScope session (expected \"format\": \"") + QLatin1String(kFormat) +
                    QStringLiteral("\")"));
    Session s;
    const QJsonArray models = o.value(QStringLiteral("models")).toArray();
    for (qsizetype i = 0; i < models.size(); ++i) {
        if (!models[i].isString() || models[i].toString().isEmpty())
            return fail(QStringLiteral("models[%1] is not a model file's path").arg(i));
        s.models.append(models[i].toString());
    }
    s.image = o.value(QStringLiteral("image")).toString();
    s.device = o.value(QStringLiteral("device")).toString(s.device);
    s.layer = o.value(QStringLiteral("layer")).toString();
    s.comparison = o.value(QStringLiteral("comparison")).toBool(true);
    s.currentModel = o.value(QStringLiteral("current_model")).toInt(0);
    s.analysis = analysisFromJson(o.value(QStringLiteral("analysis")).toObject());
    s.overlays = CanvasOverlays::fromJson(o.value(QStringLiteral("overlays")).toObject());
    const QJsonArray n = o.value(QStringLiteral("node")).toArray();
    if (n.size() == 2)
        s.node = QPointF(n[0].toDouble(), n[1].toDouble());
    s.objectBox = rectFromJson(o.value(QStringLiteral("object_box")));
    s.roiBox = rectFromJson(o.value(QStringLiteral("roi_box")));
    if (s.models.isEmpty())
        return fail(QStringLiteral("names no model"));
    return s;
}

std::optional<Session> loadSession(const QString& path, QString* error) {
    QFile f(path);
    QString problem;
    std::optional<Session> s;
    if (!f.exists())
        problem = QStringLiteral("does not exist");
    else if (!f.open(QIODevice::ReadOnly))
        problem = QStringLiteral("cannot be read (") + f.errorString() + QLatin1Char(')');
    else
        s = parseSession(f.readAll(), &problem);
    if (!s && error)
        *error = path + QStringLiteral(": ") + problem;
    return s;
}

QString saveSession(const Session& session, const QString& path) {
    try {
        common::writeFileAtomically(path.toStdString(),
                                    QJsonDocument(session.toJson()).toJson(QJsonDocument::Indented).toStdString());
    } catch (const std::exception& e) {
        return QString::fromStdString(e.what());
    }
    return {};
}

} // namespace deformscope::ui
