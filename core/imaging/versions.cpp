#include "core/imaging/versions.h"

#include <opencv2/core/version.hpp>

namespace deformscope::imaging {

std::string opencvVersion() { return CV_VERSION; }

} // namespace deformscope::imaging
