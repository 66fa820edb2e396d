# All metadata is in pyproject.toml; setup.py only declares the cffi extension.
from setuptools import setup

setup(cffi_modules=["minitorch_conv/_build.py:ffibuilder"])
