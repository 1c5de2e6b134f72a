// The capture with torchvision's own kernel: torchvision's C++ library (and what
// it needs: libpython, libtorch_python) is loaded into this process *before*
// the project's operators are registered, so our registration must leave the
// torchvision:: names alone and the fixture model runs torchvision's kernel.
// DEFORMSCOPE_TORCHVISION_LIBS lists the libraries to load, ':'-separated, in order.
#include "core/model/capture.h"
#include "core/model/model.h"
#include "core/ops/registration.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/script.h>

#include <QtCore/QDir>
#include <QtTest/QtTest>

#include <dlfcn.h>

using namespace deformscope::model;

namespace {
std::string path(const char* name) {
    return QDir(QStringLiteral(DEFORMSCOPE_MODEL_FIXTURE_DIR)).filePath(QString::fromUtf8(name)).toStdString();
}
} // namespace

class TestCaptureTorchvision : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase() {
        const QByteArray libs = qgetenv("DEFORMSCOPE_TORCHVISION_LIBS");
        if (libs.isEmpty())
            QSKIP("DEFORMSCOPE_TORCHVISION_LIBS not set (configure with DEFORMSCOPE_PYTHON)");
        for (const QByteArray& lib : libs.split(':')) {
            void* handle = dlopen(lib.constData(), RTLD_NOW | RTLD_GLOBAL);
            QVERIFY2(handle, dlerror());
        }
        QVERIFY(c10::Dispatcher::singleton().findSchema({"torchvision::deform_conv2d", ""}).has_value());
        deformscope::ops::registerOperators();
    }

    void ourRegistrationLeavesTorchvisionAlone() {
        QVERIFY(!deformscope::ops::torchvisionAliasesRegistered());
        QVERIFY(c10::Dispatcher::singleton().findSchema({"deformscope::deform_conv2d", ""}).has_value());
    }

    void captureWithTorchvisionKernelEqualsPython() {
        const LoadedModel m = LoadedModel::load(path("fixture_model.pt"));
        torch::jit::Module data = torch::jit::load(path("fixture_data.pt"));
        const Capture c = captureForward(m, data.attr("input").toTensor());
        auto diff = [](const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); };
        QVERIFY(diff(c.output, data.attr("output").toTensor()) < 1e-5);
        const Layer* v2 = c.graph.find("layer3.conv2");
        QVERIFY(v2 && v2->kind == LayerKind::DcnV2);
        const LayerTensors& t = c.tensors[static_cast<size_t>(v2->index)];
        QVERIFY(diff(t.offset, data.attr("layer3_offset").toTensor()) < 1e-5);
        QVERIFY(diff(t.mask, data.attr("layer3_mask").toTensor()) < 1e-5);
        QVERIFY(diff(t.output, data.attr("layer3_output").toTensor()) < 1e-5);
        QCOMPARE(c.graph.layers().size(), size_t{13});
    }
};

QTEST_GUILESS_MAIN(TestCaptureTorchvision)
#include "tst_capture_torchvision.moc"
