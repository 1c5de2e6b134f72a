#include "ui/app/app_settings.h"

#include <QFileInfo>
#include <QJsonDocument>
#include <QSettings>

namespace deformscope::ui {

AppSettings::AppSettings() : m(std::make_unique<QSettings>(QStringLiteral("DeformScope"), QStringLiteral("DeformScope"))) {}
AppSettings::AppSettings(const QString& iniFile) : m(std::make_unique<QSettings>(iniFile, QSettings::IniFormat)) {}
AppSettings::~AppSettings() = default;

QStringList AppSettings::recent(const char* key) const { return m->value(QLatin1String(key)).toStringList(); }

void AppSettings::addRecent(const char* key, const QString& value) {
    QStringList list = recent(key);
    list.removeAll(value);
    list.prepend(value);
    while (list.size() > kMaxRecent)
        list.removeLast();
    m->setValue(QLatin1String(key), list);
}

// A model set is stored as its paths joined by newlines (no file name holds one in practice).
QList<QStringList> AppSettings::recentModelSets() const {
    QList<QStringList> sets;
    for (const QString& s : recent("recent/models"))
        sets.append(s.split(QLatin1Char('\n'), Qt::SkipEmptyParts));
    return sets;
}
void AppSettings::addRecentModelSet(const QStringList& paths) {
    QStringList absolute;
    for (const QString& p : paths)
        absolute.append(QFileInfo(p).absoluteFilePath());
    addRecent("recent/models", absolute.join(QLatin1Char('\n')));
}
QStringList AppSettings::recentImages() const { return recent("recent/images"); }
void AppSettings::addRecentImage(const QString& path) { addRecent("recent/images", QFileInfo(path).absoluteFilePath()); }
QStringList AppSettings::recentSessions() const { return recent("recent/sessions"); }
void AppSettings::addRecentSession(const QString& path) { addRecent("recent/sessions", QFileInfo(path).absoluteFilePath()); }

QString AppSettings::device() const { return m->value(QStringLiteral("device"), QStringLiteral("cpu")).toString(); }
void AppSettings::setDevice(const QString& device) { m->setValue(QStringLiteral("device"), device); }
QString AppSettings::lastDirectory() const { return m->value(QStringLiteral("lastDirectory")).toString(); }
void AppSettings::setLastDirectory(const QString& dir) { m->setValue(QStringLiteral("lastDirectory"), dir); }

QString AppSettings::palette() const { return m->value(QStringLiteral("palette"), QStringLiteral("system")).toString(); }
void AppSettings::setPalette(const QString& name) { m->setValue(QStringLiteral("palette"), name); }

QByteArray AppSettings::geometry() const { return m->value(QStringLiteral("window/geometry")).toByteArray(); }
void AppSettings::setGeometry(const QByteArray& g) { m->setValue(QStringLiteral("window/geometry"), g); }
QByteArray AppSettings::windowState() const { return m->value(QStringLiteral("window/state")).toByteArray(); }
void AppSettings::setWindowState(const QByteArray& s) { m->setValue(QStringLiteral("window/state"), s); }

CanvasOverlays AppSettings::overlays() const {
    const QByteArray json = m->value(QStringLiteral("overlays")).toByteArray();
    if (json.isEmpty())
        return {};
    return CanvasOverlays::fromJson(QJsonDocument::fromJson(json).object());
}
void AppSettings::setOverlays(const CanvasOverlays& o) {
    m->setValue(QStringLiteral("overlays"), QJsonDocument(o.toJson()).toJson(QJsonDocument::Compact));
}
common::AnalysisRequest AppSettings::analysis() const {
    const QByteArray json = m->value(QStringLiteral("analysis")).toByteArray();
    if (json.isEmpty())
        return {};
    return analysisFromJson(QJsonDocument::fromJson(json).object());
}
void AppSettings::setAnalysis(const common::AnalysisRequest& a) {
    // Labels belong to the frames they were drawn on (a session keeps them), not to the next launch.
    common::AnalysisRequest defaults = a;
    defaults.propagate.clear();
    defaults.propagateTruth.clear();
    m->setValue(QStringLiteral("analysis"), QJsonDocument(analysisToJson(defaults)).toJson(QJsonDocument::Compact));
}

void AppSettings::sync() { m->sync(); }

} // namespace deformscope::ui
