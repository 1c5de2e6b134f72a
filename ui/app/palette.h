// The app's palette: the system's (a dark one when the system's own is dark), or light or
// dark as the user chooses (View > Palette, kept in the settings). Only widgets change:
// the canvas draws on its own fixed backdrop and figures export as before.
#pragma once

#include <QString>

namespace deformscope::ui {

enum class PaletteChoice { System, Light, Dark };

QString paletteChoiceName(PaletteChoice choice); // "system", "light", "dark"
PaletteChoice paletteChoiceFromName(const QString& name); // unknown: System

// Applies `choice` to the application. System: the palette the platform gave the
// application at start when it is a light one, else the dark palette.
void applyPalette(PaletteChoice choice);
// Whether the palette now in use is dark (window colour lightness below the middle).
bool paletteIsDark();

} // namespace deformscope::ui
