"""Fixtures shared by the kernel tests."""
import pytest

from minitorch_conv import _kernels as K


@pytest.fixture(params=K.available_simd())
def simd(request):
    """Run the test on each SIMD path this CPU runs (test_kernels.py reports the ones it cannot)."""
    before = K.simd_path()
    assert K.set_simd(request.param) == request.param
    yield request.param
    K.set_simd(before)


@pytest.fixture
def restore_threads():
    before = K.get_num_threads()
    yield
    K.set_num_threads(before)
