"""tfcompress: structured pruning and compact export for Keras 3 / TensorFlow 2.21."""

from setuptools import find_packages, setup

# Compatible ranges, so tfcompress installs next to other packages; the exact set the tests
# ran green with is constraints.txt (`make test` installs with it, `make lock` renews it).
INSTALL_REQUIRES = [
    "tensorflow>=2.21,<2.22",
    "keras>=3.15,<4",
    "tf-keras>=2.21,<2.22",
    "tensorflow-model-optimization>=0.8.1,<0.9",
    "tensorflow-datasets>=4.9,<5",
    "ai-edge-litert>=2.3,<3",
    "absl-py>=1.4",
    "numpy>=1.26",
    "scipy>=1.11",
    "matplotlib>=3.8",
    "pillow>=10",
    "google-crc32c>=1.5",  # data.integrity: CRC32C of every record before TF reads it
]

EXTRAS_REQUIRE = {
    "test": ["pytest>=8", "pytest-xdist>=3.5", "ruff>=0.5"],
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
