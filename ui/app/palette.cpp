#include "ui/app/palette.h"

#include <QApplication>
#include <QPalette>
#include <QStyle>
#include <QStyleFactory>

#include <optional>

namespace deformscope::ui {

namespace {

// The platform's palette and style, as the application started with them.
const QPalette& systemPalette() {
    static const QPalette palette = QApplication::palette();
    return palette;
}
QString& systemStyle() {
    static QString name = QApplication::style() ? QApplication::style()->name() : QString();
    return name;
}

QPalette darkPalette() {
    QPalette p;
    const QColor window(0x2b, 0x2d, 0x31), base(0x1f, 0x21, 0x24), text(0xe4, 0xe6, 0xea), mid(0x3a, 0x3d, 0x42);
    const QColor highlight(0x3d, 0x7e, 0xdb), disabled(0x80, 0x84, 0x8a);
    p.setColor(QPalette::Window, window);
    p.setColor(QPalette::WindowText, text);
    p.setColor(QPalette::Base, base);
    p.setColor(QPalette::AlternateBase, QColor(0x26, 0x28, 0x2c));
    p.setColor(QPalette::ToolTipBase, QColor(0x36, 0x39, 0x3e));
    p.setColor(QPalette::ToolTipText, text);
    p.setColor(QPalette::PlaceholderText, disabled);
    p.setColor(QPalette::Text, text);
    p.setColor(QPalette::Button, mid);
    p.setColor(QPalette::ButtonText, text);
    p.setColor(QPalette::BrightText, QColor(0xff, 0x6b, 0x6b));
    p.setColor(QPalette::Light, QColor(0x4a, 0x4d, 0x52));
    p.setColor(QPalette::Midlight, QColor(0x42, 0x45, 0x4a));
    p.setColor(QPalette::Mid, mid);
    p.setColor(QPalette::Dark, QColor(0x18, 0x19, 0x1b));
    p.setColor(QPalette::Shadow, Qt::black);
    p.setColor(QPalette::Highlight, highlight);
    p.setColor(QPalette::HighlightedText, Qt::white);
    p.setColor(QPalette::Link, QColor(0x6c, 0xa8, 0xff));
    p.setColor(QPalette::LinkVisited, QColor(0xb0, 0x8c, 0xff));
    for (QPalette::ColorRole role : {QPalette::WindowText, QPalette::Text, QPalette::ButtonText})
        p.setColor(QPalette::Disabled, role, disabled);
    return p;
}

} // namespace

QString paletteChoiceName(PaletteChoice choice) {
    switch (choice) {
    case PaletteChoice::Light: return QStringLiteral("light");
    case PaletteChoice::Dark: return QStringLiteral("dark");
    case PaletteChoice::System: break;
    }
    return QStringLiteral("system");
}

PaletteChoice paletteChoiceFromName(const QString& name) {
    if (name == QLatin1String("light"))
        return PaletteChoice::Light;
    if (name == QLatin1String("dark"))
        return PaletteChoice::Dark;
    return PaletteChoice::System;
}

void applyPalette(PaletteChoice choice) {
    const QPalette& system = systemPalette();
    (void)systemStyle();
    const bool systemDark = system.color(QPalette::Window).lightness() < 128;
    const bool dark = choice == PaletteChoice::Dark || (choice == PaletteChoice::System && systemDark);
    if (dark) {
        // Fusion draws every control from the palette, so the dark colours reach them all.
        QApplication::setStyle(QStyleFactory::create(QStringLiteral("Fusion")));
        QApplication::setPalette(darkPalette());
    } else {
        if (!systemStyle().isEmpty())
            QApplication::setStyle(QStyleFactory::create(systemStyle()));
        QApplication::setPalette(systemDark ? QApplication::style()->standardPalette() : system);
    }
}

bool paletteIsDark() { return QApplication::palette().color(QPalette::Window).lightness() < 128; }

} // namespace deformscope::ui
