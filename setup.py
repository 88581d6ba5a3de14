from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

setup(
    name="ccoma",
    version="0.1.0",
    description="Continual-learning evaluation harness for cooperative multi-agent RL in dynamic "
                "StarCraft II-style scenarios (C-COMA, QMIX, VDN, ...)",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["ccoma", "ccoma.*", "analysis", "analysis.*"]),
    include_package_data=True,
    install_requires=[
        # torch/torchvision are paired: avalanche-lib imports torchvision, and the only torchvision
        # that imports beside torch 2.14.1 is 0.29.1 (see ../shared/DEPENDENCIES.md).
        "torch>=2.13,<=2.14.1",
        "torchvision>=0.28,<=0.29.1",
        "avalanche-lib==0.6.0",
        "mlflow>=3.17,<3.18",
        "pandas>=2.2,<4",
        "seaborn>=0.13.2,<0.14",
        "matplotlib>=3.8,<4",
        "pillow>=10",
        "click>=8.1,<9",
        "pyyaml>=6,<7",
        "numpy>=1.26,<3",
        "scipy>=1.15,<2",  # analysis.stats (bootstrap intervals, IQM); shortest paths round terrain (sim/mechanics.py)
    ],
    extras_require={
        # pettingzoo/gymnasium: tests/smac run PettingZoo's own parallel_api_test on ccoma.pettingzoo;
        # pysc2-evolved: the StarCraft II backend's protocol tests run against a stand-in game (no binary)
        # pytest-xdist: README's test command runs the suite on 2 processes (`-n 2 --dist loadgroup`).
        # pytest < 9.2: on 9.2 xdist's loadgroup silently stops grouping (pytest-xdist issue #1386), and
        # the expensive shared fixtures would be built once per worker
        "dev": ["pytest>=8,<9.2", "pytest-timeout>=2.3", "pytest-xdist>=3.5,<4", "pettingzoo>=1.24,<2",
                "gymnasium>=1.0,<2",
                "pysc2-evolved==1.1.1",
                "hypothesis>=6.100", "pexpect>=4.8"],
        "ray": ["ray==2.60.0"],
        "bench": ["jaxmarl==0.2.0"],
        "sc2": ["pysc2-evolved==1.1.1"],
        "pettingzoo": ["pettingzoo>=1.24,<2", "gymnasium>=1.0,<2"],
    },
    entry_points={"console_scripts": ["ccoma=ccoma.cli:main"]},
)
