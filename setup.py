"""tfcompress: structured pruning and compact export for Keras 3 / TensorFlow 2.21."""

from setuptools import find_packages, setup

# Compatible ranges, so tfcompress installs next to other packages; the exact set the tests
# ran green with is constraints.txt (`make test` installs with it, `make lock` renews it).
# Core: what `import tfcompress`, the model zoo, the data pipeline, the scripts and the
# exporters (SavedModel, TFLite run in LiteRT) import.
INSTALL_REQUIRES = [
    "tensorflow>=2.21,<2.22",
    "keras>=3.15,<4",
    "ai-edge-litert>=2.3,<3",
    "absl-py>=1.4",
    "numpy>=1.26",
    "scipy>=1.11",
    "matplotlib>=3.8",
    "pillow>=10",
    "google-crc32c>=1.5",  # data.integrity, codec: CRC32C of every record / section
]

# The baselines and bridges (benchmarks/tfmot_baseline.py): TFMOT runs on tf-keras only.
TFMOT = ["tensorflow-model-optimization>=0.8.1,<0.9", "tf-keras>=2.21,<2.22"]
# The TFDS converter (tfrecords-tfds, data.sources.tfds_source imports it on first use).
TFDS = ["tensorflow-datasets>=4.9,<5"]

# notebooks/: the runner and kernel (nbclient executes them in `make test`), and
# TensorBoard, whose Keras callback and event reader the notebooks use.
NOTEBOOKS = ["nbclient>=0.10", "nbformat>=5.10", "ipykernel>=6.29", "tensorboard>=2.21,<2.22"]

# keras_hub backbones (tests/test_keras_hub.py, benchmarks/keras_hub_families.py).
HUB = ["keras-hub>=0.32,<1"]

EXTRAS_REQUIRE = {
    "tfmot": TFMOT,
    "tfds": TFDS,
    "hub": HUB,
    "notebooks": NOTEBOOKS,
    # the suite imports tensorflow_datasets (TFDS converter tests), executes the notebooks
    # and prunes keras_hub backbones (tests/test_keras_hub.py; keras-hub pulls in
    # tensorflow-text on Linux); `make demo` and `make bench` run the TFMOT baseline, so
    # `make test`'s `.[test]` brings all four
    "test": ["pytest>=8", "pytest-xdist>=3.5", "ruff>=0.5", *TFMOT, *TFDS, *NOTEBOOKS, *HUB],
}

setup(
    name="tfcompress",
    version="0.1.0",
    description="Structured pruning, dependency graphs and compact export for Keras 3.",
    packages=find_packages(include=["tfcompress", "tfcompress.*", "tfrecords_tools"]),
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={
        "console_scripts": [
            *(f"tfcompress-{n}=tfcompress.scripts.{n}:run"
              for n in ("train", "evaluate", "compress", "export", "demo")),
            *(f"tfrecords-{n.replace('_', '-')}=tfrecords_tools.{n}:run"
              for n in ("fashion_mnist", "image_folder", "cityscapes", "segmentation_pairs",
                        "voc", "tfds", "mosaic", "inspect", "verify")),
        ]
    },
)
