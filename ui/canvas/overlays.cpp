#include "ui/canvas/overlays.h"

#include <QJsonArray>

#include <algorithm>

namespace deformscope::ui {

bool CanvasOverlays::levelShown(int level) const
{
    if (level < 1)
        return false;
    return levels[size_t(std::min(level, int(levels.size())) - 1)];
}

void CanvasOverlays::setLevelShown(int level, bool shown)
{
    if (level >= 1 && level <= int(levels.size()))
        levels[size_t(level - 1)] = shown;
}

QString offsetsModeName(CanvasOverlays::Offsets mode)
{
    switch (mode) {
    case CanvasOverlays::Offsets::PerTap: return QStringLiteral("per_tap");
    case CanvasOverlays::Offsets::Mean: return QStringLiteral("mean");
    case CanvasOverlays::Offsets::Off: break;
    }
    return QStringLiteral("off");
}

QJsonObject CanvasOverlays::toJson() const
{
    QJsonArray shown;
    for (int l = 1; l <= int(levels.size()); ++l)
        if (levelShown(l))
            shown.append(l);
    QJsonObject o;
    o.insert(QStringLiteral("sampling"), sampling);
    o.insert(QStringLiteral("levels"), shown);
    o.insert(QStringLiteral("weightShading"), weightShading);
    o.insert(QStringLiteral("offsets"), offsetsModeName(offsets));
    o.insert(QStringLiteral("modulation"), modulation);
    o.insert(QStringLiteral("erf"), erf);
    o.insert(QStringLiteral("erfColormap"), erfColormap);
    o.insert(QStringLiteral("erfLog"), erfLog);
    o.insert(QStringLiteral("erfContours"), erfContours);
    o.insert(QStringLiteral("saliencyOutline"), saliencyOutline);
    o.insert(QStringLiteral("saliencyMasked"), saliencyMasked);
    o.insert(QStringLiteral("object"), object);
    o.insert(QStringLiteral("motion"), motion);
    o.insert(QStringLiteral("labels"), labels);
    return o;
}

CanvasOverlays CanvasOverlays::fromJson(const QJsonObject& json)
{
    CanvasOverlays o;
    auto readBool = [&](const char* key, bool& out) {
        const QJsonValue v = json.value(QLatin1String(key));
        if (v.isBool())
            out = v.toBool();
    };
    readBool("sampling", o.sampling);
    readBool("weightShading", o.weightShading);
    readBool("modulation", o.modulation);
    readBool("erf", o.erf);
    readBool("erfLog", o.erfLog);
    readBool("erfContours", o.erfContours);
    readBool("saliencyOutline", o.saliencyOutline);
    readBool("saliencyMasked", o.saliencyMasked);
    readBool("object", o.object);
    readBool("motion", o.motion);
    readBool("labels", o.labels);
    const QJsonValue levels = json.value(QStringLiteral("levels"));
    if (levels.isArray()) {
        o.levels.fill(false);
        for (const QJsonValue& v : levels.toArray())
            if (v.isDouble())
                o.setLevelShown(v.toInt(), true);
    }
    const QString offsets = json.value(QStringLiteral("offsets")).toString();
    if (offsets == QLatin1String("per_tap"))
        o.offsets = Offsets::PerTap;
    else if (offsets == QLatin1String("mean"))
        o.offsets = Offsets::Mean;
    else if (offsets == QLatin1String("off"))
        o.offsets = Offsets::Off;
    const QJsonValue colormap = json.value(QStringLiteral("erfColormap"));
    if (colormap.isString() && !colormap.toString().isEmpty())
        o.erfColormap = colormap.toString();
    return o;
}

bool CanvasOverlays::operator==(const CanvasOverlays& b) const
{
    return sampling == b.sampling && levels == b.levels && weightShading == b.weightShading && offsets == b.offsets
        && modulation == b.modulation && erf == b.erf && erfColormap == b.erfColormap && erfLog == b.erfLog
        && erfContours == b.erfContours && saliencyOutline == b.saliencyOutline && saliencyMasked == b.saliencyMasked
        && object == b.object && motion == b.motion && labels == b.labels;
}

} // namespace deformscope::ui
