// Comparing rendered images in the ui tests (tst_figure's neighbours, tst_canvas,
// tst_main_window): header-only, any thread that owns the images.
#pragma once

#include <QImage>

namespace deformscope::test {

// How many pixels of two images of one size differ in colour (alpha ignored);
// -1 when the sizes differ.
inline int differingPixels(const QImage& a, const QImage& b)
{
    if (a.size() != b.size())
        return -1;
    int n = 0;
    for (int y = 0; y < a.height(); ++y)
        for (int x = 0; x < a.width(); ++x)
            n += (a.pixel(x, y) & 0xffffff) != (b.pixel(x, y) & 0xffffff);
    return n;
}

} // namespace deformscope::test
