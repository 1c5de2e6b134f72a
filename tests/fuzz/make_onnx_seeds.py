"""Writes the ONNX fuzzer's seed corpus (tests/fuzz/corpus/onnx_file/): small models
covering what core/model/onnx_file.cpp reads — raw, typed and external initialisers,
attributes of every kind, value infos with static and symbolic shapes, node metadata.
External data names weights.bin, the 64-byte file the harness keeps in its folder.
Usage: python tests/fuzz/make_onnx_seeds.py  (needs the onnx package, as the ONNX tests do)"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "onnx_file")
os.makedirs(out, exist_ok=True)


def conv_model(weight: TensorProto, extra_nodes=(), extra_inits=()):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2, 8, 8])
    conv = helper.make_node("Conv", ["x", "w", ""], ["c"], name="/conv/Conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                            strides=[1, 1], dilations=[1, 1], group=1)
    relu = helper.make_node("Relu", ["c"], ["y"], name="/relu/Relu")
    graph = helper.make_graph([conv, relu, *extra_nodes], "g", [x], [y], [weight, *extra_inits],
                              value_info=[helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, 2, 8, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="pytorch",
                              producer_version="2.11.0")
    model.ir_version = 9
    helper.set_model_props(model, {"deformscope": "{\"input_size\": [8, 8]}"})
    return model


def save(name, model):
    with open(os.path.join(out, name), "wb") as f:
        f.write(model.SerializeToString())


w = np.linspace(-1, 1, 18, dtype=np.float32).reshape(2, 1, 3, 3)
save("raw.onnx", conv_model(numpy_helper.from_array(w, "w")))

typed = helper.make_tensor("w", TensorProto.FLOAT, [2, 1, 3, 3], w.flatten().tolist(), raw=False)
ints = helper.make_tensor("shape", TensorProto.INT64, [2], [1, -1], raw=False)
halfs = helper.make_tensor("h", TensorProto.FLOAT16, [2], np.array([1, 2], np.float16).view(np.uint16).tolist())
save("typed.onnx", conv_model(typed, extra_inits=(ints, halfs)))

external = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2, 1, 3, 3], data_location=TensorProto.EXTERNAL)
for k, v in (("location", "weights.bin"), ("offset", "0"), ("length", "72")):
    entry = external.external_data.add()
    entry.key, entry.value = k, v
save("external_short.onnx", conv_model(external))  # 72 bytes asked of a 64-byte file
external.dims[:] = [1, 1, 4, 4]
external.external_data[2].value = "64"
save("external.onnx", conv_model(external))

attrs = helper.make_node(
    "Constant", [], ["k"], name="/k/Constant", value=numpy_helper.from_array(np.arange(4, dtype=np.int32), "kv"))
grid = helper.make_node("GridSample", ["y", "g"], ["s"], name="/sampler/GridSample", align_corners=0,
                        mode="bilinear", padding_mode="zeros")
grid.metadata_props.add(key="namespace", value="sampler: torch.nn.Module")
floats = helper.make_node("Resize", ["s", "", "scales"], ["r"], name="/up/Resize", mode="linear",
                          coordinate_transformation_mode="half_pixel")
floats.attribute.append(helper.make_attribute("extrapolations", [0.5, 1.5]))
floats.attribute.append(helper.make_attribute("names", ["a", "b"]))
g = numpy_helper.from_array(np.zeros((1, 8, 8, 2), np.float32), "g")
scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
save("nodes.onnx", conv_model(numpy_helper.from_array(w, "w"), (attrs, grid, floats), (g, scales)))
print("wrote", sorted(os.listdir(out)))
