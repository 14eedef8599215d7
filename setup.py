"""Install asha: the library from lib/, the executables from bin/."""

import glob

from setuptools import setup

setup(
    name="asha",
    version="0.1.0",
    description="High availability for an Asterisk PBX on two Linux nodes",
    license="GPL-2.0-or-later",
    python_requires=">=3.11",
    package_dir={"": "lib"},
    packages=["asha"],
    scripts=sorted(glob.glob("bin/asha-*")),
    install_requires=["pyserial", "pyusb", "psutil", "docopt-ng"],
)
