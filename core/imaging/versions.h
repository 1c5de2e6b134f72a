// The version of the image library core/imaging is built with (for About boxes and
// reports), without its headers.
#pragma once

#include <string>

namespace deformscope::imaging {

std::string opencvVersion(); // "4.6.0"

} // namespace deformscope::imaging
