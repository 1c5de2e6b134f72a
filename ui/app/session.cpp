#include "ui/app/session.h"

#include <QFile>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QSaveFile>

namespace deformscope::ui {

namespace {
const char* const kFormat = "deformscope-session/1";

QJsonArray rectToJson(const QRectF& r) { return QJsonArray{r.x(), r.y(), r.width(), r.height()}; }
QRectF rectFromJson(const QJsonValue& v) {
    const QJsonArray a = v.toArray();
    if (a.size() != 4)
        return {};
    return QRectF(a[0].toDouble(), a[1].toDouble(), a[2].toDouble(), a[3].toDouble());
}
} // namespace

QJsonObject AnalysisSettings::toJson() const {
    return QJsonObject{{QStringLiteral("response"), response},
                       {QStringLiteral("sampling"), sampling},
                       {QStringLiteral("erf"), erf},
                       {QStringLiteral("saliency"), saliency},
                       {QStringLiteral("levels"), levels},
                       {QStringLiteral("offset_reading"), bilinearOffsets ? QStringLiteral("bilinear") : QStringLiteral("nearest")},
                       {QStringLiteral("signed_erf"), signedErf},
                       {QStringLiteral("epsilon"), epsilon},
                       {QStringLiteral("baseline"), baseline},
                       {QStringLiteral("forwards"), forwards}};
}

AnalysisSettings AnalysisSettings::fromJson(const QJsonObject& o) {
    AnalysisSettings a;
    a.response = o.value(QStringLiteral("response")).toString(a.response);
    a.sampling = o.value(QStringLiteral("sampling")).toBool(a.sampling);
    a.erf = o.value(QStringLiteral("erf")).toBool(a.erf);
    a.saliency = o.value(QStringLiteral("saliency")).toBool(a.saliency);
    a.levels = std::clamp(o.value(QStringLiteral("levels")).toInt(a.levels), 1, 8);
    a.bilinearOffsets = o.value(QStringLiteral("offset_reading")).toString(QStringLiteral("bilinear")) != QStringLiteral("nearest");
    a.signedErf = o.value(QStringLiteral("signed_erf")).toBool(a.signedErf);
    a.epsilon = std::clamp(o.value(QStringLiteral("epsilon")).toDouble(a.epsilon), 0.0, 10.0);
    a.baseline = o.value(QStringLiteral("baseline")).toString(a.baseline);
    a.forwards = std::clamp(o.value(QStringLiteral("forwards")).toInt(a.forwards), 1, 100000);
    return a;
}

AnalysisRequest AnalysisSettings::request(const QString& layer, QPointF point, const QRectF& objectBox,
                                          const CanvasOverlays& overlays) const {
    AnalysisRequest r;
    common::AnalysisRequest& q = r.request;
    q.layer = layer.toStdString();
    q.at = common::Location{common::Grid::Input, point.x(), point.y()};
    q.response = common::Response::parse(response.toStdString()).value_or(common::Response{});
    q.what.sampling = sampling;
    q.what.erf = erf;
    q.what.saliency = saliency;
    q.levels = levels;
    q.reading = bilinearOffsets ? common::OffsetReading::Bilinear : common::OffsetReading::Nearest;
    q.signedErf = signedErf;
    q.epsilon = epsilon;
    q.baseline = common::Baseline::parse(baseline.toStdString()).value_or(common::Baseline{});
    q.forwards = forwards;
    if (!objectBox.isNull()) {
        const QRectF b = objectBox.normalized();
        q.object = common::ObjectRegion{common::ObjectRegion::Kind::Box,
                                        common::Box{common::Grid::Input, b.left(), b.top(), b.right(), b.bottom()}, {}};
    }
    q.colormap = common::parseColormap(overlays.erfColormap.toStdString()).value_or(common::Colormap::Inferno);
    q.logScale = overlays.erfLog;
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
                  {QStringLiteral("analysis"), analysis.toJson()},
                  {QStringLiteral("overlays"), overlays.toJson()}};
    if (node)
        o.insert(QStringLiteral("node"), QJsonArray{node->x(), node->y()});
    if (!objectBox.isNull())
        o.insert(QStringLiteral("object_box"), rectToJson(objectBox));
    return o;
}

std::optional<Session> loadSession(const QString& path, QString* error) {
    auto fail = [&](const QString& why) -> std::optional<Session> {
        if (error)
            *error = path + QStringLiteral(": ") + why;
        return std::nullopt;
    };
    QFile f(path);
    if (!f.exists())
        return fail(QStringLiteral("does not exist"));
    if (!f.open(QIODevice::ReadOnly))
        return fail(QStringLiteral("cannot be read (") + f.errorString() + QLatin1Char(')'));
    QJsonParseError pe;
    const QJsonDocument doc = QJsonDocument::fromJson(f.readAll(), &pe);
    if (pe.error != QJsonParseError::NoError)
        return fail(QStringLiteral("is not JSON (") + pe.errorString() + QStringLiteral(" at byte ") +
                    QString::number(pe.offset) + QLatin1Char(')'));
    const QJsonObject o = doc.object();
    if (o.value(QStringLiteral("format")).toString() != QLatin1String(kFormat))
        return fail(QStringLiteral("is not a DeformScope session (expected \"format\": \"") + QLatin1String(kFormat) +
                    QStringLiteral("\")"));
    Session s;
    for (const QJsonValue& v : o.value(QStringLiteral("models")).toArray())
        s.models.append(v.toString());
    s.image = o.value(QStringLiteral("image")).toString();
    s.device = o.value(QStringLiteral("device")).toString(s.device);
    s.layer = o.value(QStringLiteral("layer")).toString();
    s.comparison = o.value(QStringLiteral("comparison")).toBool(true);
    s.currentModel = o.value(QStringLiteral("current_model")).toInt(0);
    s.analysis = AnalysisSettings::fromJson(o.value(QStringLiteral("analysis")).toObject());
    s.overlays = CanvasOverlays::fromJson(o.value(QStringLiteral("overlays")).toObject());
    const QJsonArray n = o.value(QStringLiteral("node")).toArray();
    if (n.size() == 2)
        s.node = QPointF(n[0].toDouble(), n[1].toDouble());
    s.objectBox = rectFromJson(o.value(QStringLiteral("object_box")));
    if (s.models.isEmpty())
        return fail(QStringLiteral("names no model"));
    return s;
}

QString saveSession(const Session& session, const QString& path) {
    QSaveFile f(path);
    if (!f.open(QIODevice::WriteOnly))
        return path + QStringLiteral(": cannot be written (") + f.errorString() + QLatin1Char(')');
    f.write(QJsonDocument(session.toJson()).toJson(QJsonDocument::Indented));
    if (!f.commit())
        return path + QStringLiteral(": cannot be written (") + f.errorString() + QLatin1Char(')');
    return {};
}

} // namespace deformscope::ui
