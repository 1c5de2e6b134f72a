// The app's persistent settings in one typed class (QSettings underneath):
// recent files, device, window geometry, overlays and analysis defaults.
// Everything the GUI remembers between runs goes through here.
#pragma once

#include "ui/app/session.h"

#include <QByteArray>
#include <QString>
#include <QStringList>

#include <memory>

class QSettings;

namespace deformscope::ui {

class AppSettings {
public:
    // The user's settings (organisation "DeformScope"), or the given file (tests).
    AppSettings();
    explicit AppSettings(const QString& iniFile);
    ~AppSettings();

    static constexpr int kMaxRecent = 8;

    // Recent model sets (each a list of model files opened together), newest first.
    QList<QStringList> recentModelSets() const;
    void addRecentModelSet(const QStringList& paths);
    QStringList recentImages() const;
    void addRecentImage(const QString& path);
    QStringList recentSessions() const;
    void addRecentSession(const QString& path);

    QString device() const; // "cpu" by default
    void setDevice(const QString& device);
    QString lastDirectory() const;
    void setLastDirectory(const QString& dir);

    QString palette() const; // "system" (default), "light" or "dark" (palette.h)
    void setPalette(const QString& name);
    QByteArray geometry() const;
    void setGeometry(const QByteArray& g);
    QByteArray windowState() const;
    void setWindowState(const QByteArray& s);

    CanvasOverlays overlays() const;
    void setOverlays(const CanvasOverlays& o);
    common::AnalysisRequest analysis() const; // the analysis settings (session.h's analysisToJson form)
    void setAnalysis(const common::AnalysisRequest& a);

    void sync();

private:
    QStringList recent(const char* key) const;
    void addRecent(const char* key, const QString& value);
    std::unique_ptr<QSettings> m;
};

} // namespace deformscope::ui
