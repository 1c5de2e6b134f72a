// Which overlays a canvas draws over the image: plain data, one value shared by
// every column of a comparison, saved with the user's settings and sessions
// (toJson / fromJson). No widgets here; any thread may copy it.
#pragma once

#include <QJsonObject>
#include <QString>

#include <array>

namespace deformscope::ui {

struct CanvasOverlays {
    // Offset field of the chosen deformable layer (ColumnView::offsets).
    enum class Offsets { Off, PerTap, Mean };

    // Sampling points of the node (the column's `sampling` panel).
    bool sampling = true;
    std::array<bool, 8> levels{true, true, true, true, true, true, true, true}; // level 1..8 shown; deeper levels follow level 8
    bool weightShading = true; // size and opacity by contribution; off: every point drawn alike

    Offsets offsets = Offsets::Off; // arrows from the regular grid positions, thinned to the zoom
    bool modulation = false;        // DCNv2: mean mask value per feature cell, as a translucent colour map

    // Effective receptive field (the column's `erf` panel): its heat map, and its mass
    // contours (drawn with or without the map). A new user first sees the image with two
    // overlays: the sampling points and the ERF contours.
    bool erf = false;
    QString erfColormap = QStringLiteral("inferno"); // a figure::colormap name
    bool erfLog = false;
    bool erfContours = true; // the panel's mass contours (50 % / 90 %), coloured against the image when alone

    // Error-bounded saliency region (the column's `saliency` panel's mask).
    bool saliencyOutline = false;
    bool saliencyMasked = false; // the masked image: dim what the region leaves out

    bool object = true; // the object region: ClickView::objectBox, else the panels' object mask

    // Video models: the alignment layer's offsets read as motion beside DIS optical
    // flow (ColumnView::motionTint; switching it on asks the engine for the motion
    // analysis), and a label's outlines where it was given and where it travelled.
    bool motion = false;
    bool labels = true;

    bool levelShown(int level) const; // level < 1: never
    void setLevelShown(int level, bool shown); // level outside 1..8: ignored

    // {"sampling": true, "levels": [1, 2, 3], "weightShading": true, "offsets": "off"|"per_tap"|"mean",
    //  "modulation", "erf", "erfColormap", "erfLog", "erfContours", "saliencyOutline", "saliencyMasked", "object",
    //  "motion", "labels"}
    QJsonObject toJson() const;
    // Missing or mistyped keys keep their defaults; unknown keys are ignored.
    static CanvasOverlays fromJson(const QJsonObject& json);

    bool operator==(const CanvasOverlays& other) const;
    bool operator!=(const CanvasOverlays& other) const { return !(*this == other); }
};

QString offsetsModeName(CanvasOverlays::Offsets mode); // "off", "per_tap", "mean"

} // namespace deformscope::ui
