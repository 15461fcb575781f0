"""activesam_ros: an ament_python ROS 2 package and a pip-installable library."""

import xml.etree.ElementTree as ET
from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "activesam_ros"
# The version has one home, package.xml (what bloom and rosdistro read); pip reads it from there.
VERSION = ET.parse(Path(__file__).resolve().parent / "package.xml").getroot().findtext("version")

setup(
    name=PACKAGE,
    version=VERSION,
    description="ActiveSAM open-vocabulary semantic segmentation on SAM 3, as a ROS 2 node and a CLI",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(exclude=["test", "test.*"]),
    package_data={PACKAGE: ["vocabularies/*.txt"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*")),
    ],
    install_requires=[
        "numpy",
        "torch>=2.5",
        "torchvision",
        "sam3==0.1.4",
        "psutil",  # imported by sam3, not declared by it
        "safetensors",  # transformers-layout checkpoints (model.safetensors)
        "open_clip_torch",  # ships the BPE vocabulary file sam3's wheel lacks
        "nltk",
        "opencv-python-headless",
        "pillow",
        "rosbags>=0.10",
        "ruamel.yaml",  # bagio reads metadata.yaml as rosbags does
        "backports.zstd>=1.0; python_version < '3.14'",  # files/inflate.py (the standard library's from 3.14)
        "huggingface_hub",  # --hub-id downloads
        "tqdm",
        "pyyaml",  # rviz_config: the launch file writes rviz's config
    ],
    extras_require={
        # scikit-image's wheel ships the photographs the tests and bench use. pytest < 9:
        # launch_testing's pytest plugin (Humble, Jazzy) still uses the hook argument
        # `path`, which pytest 9 rejects, stopping every ROS test before collection.
        # catkin_pkg: the tests validate package.xml with the parser rosdep and bloom use.
        # transformers: the tests check that its SAM 3 layout maps onto sam3's (meta device only).
        "test": ["pytest>=7,<9", "scikit-image", "pyyaml", "catkin_pkg", "transformers>=5.23,<6"],
        "bench": ["scikit-image"],
    },
    zip_safe=True,
    entry_points={
        "console_scripts": [
            "activesam = activesam_ros.cli:main",
            "activesam_node = activesam_ros.ros.node_main:main",
        ],
    },
)
