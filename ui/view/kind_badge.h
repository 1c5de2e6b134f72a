// The badge of a layer kind: its short label and colour, shared by the layer list
// and the comparison columns' titles so every view names a kind the same way.
#pragma once

#include <QColor>
#include <QString>

namespace deformscope::ui {

struct KindBadge {
    QString text;
    QColor colour;
};

inline KindBadge kindBadge(const QString& kind) {
    struct Entry {
        const char* kind;
        const char* text;
        QRgb colour;
    };
    static const Entry entries[] = {
        {"dcn_v1", "DCNv1", 0xb86e00},       {"dcn_v2", "DCNv2", 0x7048b8},      {"dk", "DK", 0x2e7d32},
        {"dcn_v3", "DCNv3", 0xc2185b},       {"deform_attn", "DefAttn", 0x00838f}, {"flow_warp", "Flow", 0x1565c0},
        {"sampler", "Sampler", 0x6d4c41},    {"unrecognised_sampler", "?Sampler", 0xd32f2f},
        {"pool", "Pool", 0x5c8dd6},          {"upsample", "Up", 0x4aa89a},       {"conv_transpose", "ConvT", 0x7f8c8d}};
    for (const Entry& e : entries)
        if (kind == QLatin1String(e.kind))
            return {QString::fromLatin1(e.text), QColor(e.colour)};
    return {kind.isEmpty() || kind == QLatin1String("conv") ? QStringLiteral("Conv") : kind, QColor(0x5f, 0x63, 0x68)};
}

} // namespace deformscope::ui
