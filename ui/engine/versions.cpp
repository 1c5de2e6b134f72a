// Engine::versions(): what the About box lists. Apart from engine.cpp so that only this
// file carries the version define.
#include "ui/engine/engine.h"

#include "core/imaging/versions.h"

#include <ATen/detail/CUDAHooksInterface.h>
#include <torch/headeronly/version.h>

#include <QtGlobal>

namespace deformscope::ui {

QList<QPair<QString, QString>> Engine::versions() {
    QList<QPair<QString, QString>> v;
    v.append({QStringLiteral("DeformScope"), QStringLiteral(DEFORMSCOPE_VERSION)});
    v.append({QStringLiteral("LibTorch"),
              QStringLiteral("%1.%2.%3").arg(TORCH_VERSION_MAJOR).arg(TORCH_VERSION_MINOR).arg(TORCH_VERSION_PATCH)});
    v.append({QStringLiteral("Qt"), QStringLiteral("%1 (built with %2)").arg(QString::fromLatin1(qVersion()),
                                                                               QStringLiteral(QT_VERSION_STR))});
    v.append({QStringLiteral("OpenCV"), QString::fromStdString(imaging::opencvVersion())});
#ifdef DEFORMSCOPE_WITH_CUDA
    QString cuda = QStringLiteral("DeformScope's CUDA kernels built in");
#else
    QString cuda = QStringLiteral("DeformScope built without its CUDA kernels");
#endif
    try {
        const long runtime = at::detail::getCUDAHooks().versionCUDART(); // e.g. 13000
        cuda += QStringLiteral("; LibTorch's CUDA runtime %1.%2").arg(runtime / 1000).arg((runtime % 1000) / 10);
    } catch (const std::exception&) {
        cuda += QStringLiteral("; LibTorch without CUDA");
    }
    const qsizetype gpus = devices().size() - 1;
    cuda += gpus > 0 ? QStringLiteral("; %1 GPU(s) usable here").arg(gpus) : QStringLiteral("; no GPU usable here");
    v.append({QStringLiteral("CUDA"), cuda});
    return v;
}

} // namespace deformscope::ui
