"""keras_hub backbones through wrap / prune / strip (issue #16): which families tfcompress
prunes with parity, and the exact refusal for the others.

    .venv/bin/python benchmarks/keras_hub_families.py [family ...] [--export] [--out rows.json]

Each backbone is built from its constructor with a tiny config and random weights (never a
preset); for each: wrap alone (max relative error against the model), prune 30 % (l1_filter)
then strip (error against the masked model), parameters before and after, and the seconds
the three took; or the first line of the error that refused it. With `--export`, also the CPU
seconds of `tfc.export.saved_model` and `tfc.export.serve` on the compact model and the
served output's error.

GPT-2 and OPT prune (wrap 0.0, strip 0.0: with 2 heads, 30 % removes FFN units only; 1,080
-> 1,012 params): their TransformerDecoder builds the causal mask from the sequence's length
(`ops.shape(x)[1]`), unknown while the block is traced into its parts, which is a `SizeOf`
node of the traced block since tfcompress.graph.dynamic_sizes (`.venv/bin/python
benchmarks/keras_hub_families.py gpt2 opt llama mistral qwen2 gemma`). The decoder-only LLMs
with grouped-query attention get past the mask and are refused further on: Llama, Mistral
and Qwen2 at their RMS layer norms (LlamaLayerNorm, MistralLayerNormalization, QwenLayerNorm
hold a `scale` weight their call reads: they need a rule, as LayerNormalization has), Gemma
at its RMSNormalization, whose call fails on symbolic tensors.

Composite blocks (`.venv/bin/python benchmarks/keras_hub_families.py deeplab_v3 retinanet`,
ResNet encoder on 64 x 64 images): DeepLabV3Backbone with its SpatialPyramidPooling prunes,
wrap 0.0, strip 5.3e-7, 479,128 -> 256,705 params (1.7 s); RetinaNetBackbone with its
FeaturePyramid (P3 .. P5 outputs) prunes, wrap 0.0, strip 1.0e-6, 1,849,144 -> 1,286,199
params (4.0 s). A keras_hub task model around a backbone calls it on `backbone.input`
(the nested model's input is the outer input): graph tracing looped forever on it until
10e751e; DeepLabV3ImageSegmenter around the deeplab_v3 backbone now wraps with error 0.0 and
strips within 1.0e-6 (479,896 -> 242,805 params, ad hoc; the pattern is tested in
tests/test_graph_topologies.py::test_a_nested_model_called_on_its_own_input). Two task
models are rows (`.venv/bin/python benchmarks/keras_hub_families.py image_classifier
bert_text_classifier`): ImageClassifier on the tiny ResNet, wrap 0.0, strip 3.5e-7,
43,195 -> 21,789 params; BertTextClassifier (no preprocessor) on the tiny BERT, wrap 0.0,
strip 2.9e-7, 1,195 -> 843 params: it reads only the pooled output, so the hidden width
narrows (8 -> 6; tests/test_keras_hub.py::test_a_task_model_prunes_through_its_backbone).

tests/test_keras_hub.py runs thirteen of these (its TESTED; FAMILIES is their one source).
Needs keras-hub (0.32; `make setup` installs it with the `test` extra, or
`pip install -e ".[hub]"`).
"""

import argparse
import json
import os
import sys
import tempfile
import time

import keras
import keras_hub as hub
import numpy as np

_TEXT = dict(vocabulary_size=50, num_layers=1, num_heads=2, hidden_dim=8, max_sequence_length=8)
_LLM = dict(vocabulary_size=50, num_layers=1, num_query_heads=4, num_key_value_heads=2,
            hidden_dim=8, intermediate_dim=16)


def _vit(class_token):
    return lambda: hub.models.ViTBackbone(
        image_shape=(16, 16, 3), patch_size=4, num_layers=1, num_heads=2, hidden_dim=8,
        mlp_dim=16, use_class_token=class_token,
    )


def _cspnet(block_type, stage_type):
    # cross stages ("csp", "cs3") expand 2x and split; their blocks need bottle_ratio 0.5
    cross = stage_type != "dark"
    return lambda: hub.models.CSPNetBackbone(
        stem_filters=8, stem_kernel_size=3, stem_strides=1, stackwise_depth=[1, 1],
        stackwise_strides=[1, 2], stackwise_num_filters=[16, 24], block_type=block_type,
        stage_type=stage_type, expand_ratio=[2.0 if cross else 1.0] * 2,
        bottle_ratio=[0.5 if cross else 1.0] * 2, down_growth=cross, image_shape=(16, 16, 3),
    )


def _resnet_encoder(num_stages):
    # a ResNet with pyramid outputs P2 .. P(num_stages + 1) on 64 x 64 images
    return hub.models.ResNetBackbone(
        input_conv_filters=[8], input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 16, 16, 16][:num_stages],
        stackwise_num_blocks=[1] * num_stages, stackwise_num_strides=[1, 2, 2, 2][:num_stages],
        block_type="basic_block_vd", image_shape=(64, 64, 3),
    )


FAMILIES = {
    "resnet": lambda: hub.models.ResNetBackbone(
        input_conv_filters=[8], input_conv_kernel_sizes=[3], stackwise_num_filters=[64],
        stackwise_num_blocks=[1], stackwise_num_strides=[1], block_type="basic_block_vd",
        image_shape=(16, 16, 3),
    ),
    "resnet_v2_bottleneck": lambda: hub.models.ResNetBackbone(
        input_conv_filters=[8], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 16],
        stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2],
        block_type="bottleneck_block", use_pre_activation=True, image_shape=(16, 16, 3),
    ),
    "vgg": lambda: hub.models.VGGBackbone(
        stackwise_num_repeats=[1, 1], stackwise_num_filters=[8, 16], image_shape=(16, 16, 3)
    ),
    "densenet": lambda: hub.models.DenseNetBackbone(
        stackwise_num_repeats=[1, 1], image_shape=(16, 16, 3), growth_rate=4
    ),
    "mobilenet": lambda: hub.models.MobileNetBackbone(
        stackwise_expansion=[[4]], stackwise_num_blocks=[1], stackwise_num_filters=[[8]],
        stackwise_kernel_size=[[3]], stackwise_num_strides=[[1]], stackwise_se_ratio=[[0.25]],
        stackwise_activation=[["hard_swish"]], stackwise_padding=[[1]], output_num_filters=16,
        depthwise_filters=8, depthwise_stride=2, depthwise_residual=False,
        last_layer_filter=16, squeeze_and_excite=0.5, image_shape=(16, 16, 3),
        input_activation="hard_swish", output_activation="hard_swish", input_num_filters=8,
    ),
    "efficientnet": lambda: hub.models.EfficientNetBackbone(
        stackwise_width_coefficients=None, stackwise_depth_coefficients=None,
        stackwise_kernel_sizes=[3, 3], stackwise_num_repeats=[1, 1],
        stackwise_input_filters=[8, 8], stackwise_output_filters=[8, 16],
        stackwise_expansion_ratios=[1, 4], stackwise_squeeze_and_excite_ratios=[0.0, 0.25],
        stackwise_strides=[1, 2], stackwise_block_types=["fused", "v1"],
        stackwise_force_input_filters=[0, 0], stackwise_nores_option=[False, False],
        width_coefficient=1.0, depth_coefficient=1.0, input_shape=(16, 16, 3),
        num_features=16,
    ),
    "hgnetv2": lambda: hub.models.HGNetV2Backbone(
        depths=[1, 1], embedding_size=8, hidden_sizes=[16, 24], stem_channels=[3, 8, 8],
        hidden_act="relu", use_learnable_affine_block=False,
        stackwise_stage_filters=[[8, 8, 16, 1, 2, 3], [16, 8, 24, 1, 2, 3]],
        apply_downsample=[False, True], use_lightweight_conv_block=[False, True],
        image_shape=(32, 32, 3),
    ),
    "cspnet_dark": _cspnet("dark_block", "csp"),
    "cspnet_bottleneck": _cspnet("bottleneck_block", "cs3"),
    "cspnet_edge_dark": _cspnet("edge_block", "dark"),
    "xception": lambda: hub.models.XceptionBackbone(
        # entry block (strided 1x1 residual), middle block (identity residual), exit block
        stackwise_conv_filters=[[8, 16], [16, 24], [24, 24], [32, 32]],
        stackwise_pooling=[True, True, False, False], image_shape=(32, 32, 3),
    ),
    "bert": lambda: hub.models.BertBackbone(**_TEXT, intermediate_dim=16),
    "roberta": lambda: hub.models.RobertaBackbone(**_TEXT, intermediate_dim=16),
    "distil_bert": lambda: hub.models.DistilBertBackbone(**_TEXT, intermediate_dim=16),
    "albert": lambda: hub.models.AlbertBackbone(**_TEXT, embedding_dim=8, intermediate_dim=16),
    "electra": lambda: hub.models.ElectraBackbone(
        vocab_size=50, num_layers=1, num_heads=2, embedding_dim=8, hidden_dim=8,
        intermediate_dim=16, max_sequence_length=8,
    ),
    "gpt2": lambda: hub.models.GPT2Backbone(**_TEXT, intermediate_dim=16),
    "vit": _vit(class_token=True),
    "vit_no_class_token": _vit(class_token=False),
    "opt": lambda: hub.models.OPTBackbone(**_TEXT, intermediate_dim=16),
    # decoder-only LLMs with grouped-query attention (4 query heads, 2 key/value heads)
    "llama": lambda: hub.models.LlamaBackbone(**_LLM),
    "mistral": lambda: hub.models.MistralBackbone(**_LLM),
    "qwen2": lambda: hub.models.Qwen2Backbone(**_LLM),
    "gemma": lambda: hub.models.GemmaBackbone(**_LLM, head_dim=2),
    "deit": lambda: hub.models.DeiTBackbone(
        image_shape=(16, 16, 3), patch_size=4, num_layers=1, num_heads=2, hidden_dim=8,
        intermediate_dim=16,
    ),
    # composite blocks: DeepLabV3's SpatialPyramidPooling (ASPP, 256 channels) and decoder,
    # RetinaNet's FeaturePyramid (256 channels, P3 .. P5 are outputs)
    "deeplab_v3": lambda: hub.models.DeepLabV3Backbone(
        image_encoder=_resnet_encoder(3), spatial_pyramid_pooling_key="P4",
        low_level_feature_key="P2", upsampling_size=4, dilation_rates=[2, 4],
        projection_filters=8, image_shape=(64, 64, 3),
    ),
    # task models: the backbone nested, called on its own input (the hidden width of the
    # text classifier is prunable: only the pooled output is read)
    "image_classifier": lambda: hub.models.ImageClassifier(
        backbone=FAMILIES["resnet"](), num_classes=3
    ),
    "bert_text_classifier": lambda: hub.models.BertTextClassifier(
        backbone=FAMILIES["bert"](), num_classes=3, preprocessor=None
    ),
    "retinanet": lambda: hub.models.RetinaNetBackbone(
        image_encoder=_resnet_encoder(4), min_level=3, max_level=5, use_p5=False,
        image_shape=(64, 64, 3),
    ),
}


def sample_input(model, seed=0):
    """Two random examples for `model`'s inputs (images in [0, 1), token ids, all-ones
    padding masks, zero segment ids)."""
    rng = np.random.default_rng(seed)
    if not isinstance(model.input, dict):
        shape = (2, *model.input.shape[1:])
        return rng.uniform(0, 1, shape).astype("float32")
    x = {}
    for name, spec in model.input.items():
        shape = (2, *(8 if d is None else d for d in spec.shape[1:]))
        if name == "token_ids":
            x[name] = rng.integers(1, 50, shape).astype("int32")
        else:
            x[name] = (np.ones if name == "padding_mask" else np.zeros)(shape, "int32")
    return x


def outputs(model, x):
    """`model`'s outputs on `x` as a list of arrays (a dict's in key order)."""
    y = model(x, training=False)
    y = [y[k] for k in sorted(y)] if isinstance(y, dict) else y
    return [np.asarray(t) for t in keras.tree.flatten(y)]


def max_rel_error(a_list, b_list):
    return max(
        float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(a))), 1e-12))
        for a, b in zip(a_list, b_list)
    )


def run(name, ratio=0.3, export=False):
    """One family: a dict of the measurements, or of the refusal. With `export`, also the
    CPU seconds of `tfc.export.saved_model` and `tfc.export.serve` on the compact model
    and the served output's error."""
    import tfcompress as tfc

    model = FAMILIES[name]()
    x = sample_input(model)
    start = time.perf_counter()
    try:
        masked = tfc.wrap(model)
        wrap_error = max_rel_error(outputs(model, x), outputs(masked, x))
        tfc.prune(masked, ratio=ratio)
        compact = tfc.strip(masked)
    except Exception as e:  # noqa: BLE001 - the refusal is the result
        return {"family": name, "refused": f"{type(e).__name__}: {' '.join(str(e).split())}"}
    row = {
        "family": name,
        "wrap_error": wrap_error,
        "strip_error": max_rel_error(outputs(masked, x), outputs(compact, x)),
        "params": model.count_params(),
        "compact_params": compact.count_params(),
        "seconds": round(time.perf_counter() - start, 2),
    }
    if export:
        with tempfile.TemporaryDirectory() as tmp:
            cpu = time.process_time()
            path = tfc.export.saved_model(compact, os.path.join(tmp, "sm"))
            row["export_cpu"] = round(time.process_time() - cpu, 2)
            cpu = time.process_time()
            served = tfc.export.serve(path, x)
            row["serve_cpu"] = round(time.process_time() - cpu, 2)
        row["served_error"] = max_rel_error(outputs(compact, x), served)
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("families", nargs="*", default=list(FAMILIES))
    parser.add_argument("--out", help="write the rows as JSON here")
    parser.add_argument(
        "--export", action="store_true", help="also export and serve the compact model"
    )
    args = parser.parse_args(argv)
    rows = [run(name, export=args.export) for name in args.families]
    extra = " export s | serve s | served error |" if args.export else ""
    print("| family | wrap error | strip error | params | compact params | s |" + extra)
    print("|---|---|---|---|---|---|" + "---|" * (3 if args.export else 0))
    for r in rows:
        if "refused" in r:
            print(f"| {r['family']} | refused: {r['refused'][:400]} |||||")
            continue
        line = (
            f"| {r['family']} | {r['wrap_error']:.1e} | {r['strip_error']:.1e} | "
            f"{r['params']:,} | {r['compact_params']:,} | {r['seconds']} |"
        )
        if args.export:
            line += f" {r['export_cpu']} | {r['serve_cpu']} | {r['served_error']:.1e} |"
        print(line)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
