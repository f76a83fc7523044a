import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from sklearn_autodecoder.datasets import (
    load_cifar10,
    load_cifar10_batch,
    load_idx,
    load_mnist,
    load_stl10_binary,
)

# The shared data folder sits beside the repository root.
MNIST10K = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist10k"


def write_idx(path, array, compress=False):
    """Write an IDX file (big-endian header and data)."""
    codes = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}
    array = np.asarray(array)
    code = codes[array.dtype.str[1:]]
    header = struct.pack(">BBBB", 0, 0, code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


# ---------------------------------------------------------------- IDX / MNIST


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
def test_idx_round_trip(tmp_path, dtype, compress):
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((3, 4, 5)) * 100).astype(dtype)
    out = load_idx(write_idx(tmp_path / "a.idx", array, compress))
    assert out.shape == (3, 4, 5)
    assert out.dtype == np.dtype(dtype)
    assert out.dtype.isnative
    np.testing.assert_array_equal(out, array)


def test_idx_bad_magic(tmp_path):
    path = tmp_path / "bad.idx"
    path.write_bytes(b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00")  # no type 0x07
    with pytest.raises(ValueError, match="magic"):
        load_idx(path)
    path.write_bytes(b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(ValueError, match="magic"):
        load_idx(path)


def test_idx_truncated(tmp_path):
    path = write_idx(tmp_path / "a.idx", np.zeros((4, 3), np.uint8))
    data = path.read_bytes()
    path.write_bytes(data[:-1])
    with pytest.raises(ValueError, match="truncated"):
        load_idx(path)
    path.write_bytes(data[:6])  # inside the dimension list
    with pytest.raises(ValueError, match="truncated"):
        load_idx(path)
    path.write_bytes(data[:2])
    with pytest.raises(ValueError, match="truncated"):
        load_idx(path)
    path.write_bytes(data + b"\x00")
    with pytest.raises(ValueError, match="oversized"):
        load_idx(path)


def test_load_mnist_synthetic(tmp_path):
    images = np.arange(2 * 28 * 28, dtype=np.int64).reshape(2, 28, 28) % 256
    images = images.astype(np.uint8)
    labels = np.array([7, 0], np.uint8)
    X, y = load_mnist(
        write_idx(tmp_path / "img", images, compress=True), write_idx(tmp_path / "lab", labels)
    )
    assert X.shape == (2, 784) and X.dtype == np.float32
    np.testing.assert_array_equal(X * 255, images.reshape(2, -1))
    assert X[0, 255] == 1.0  # exactly 1, not 1 + ulp
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, [7, 0])
    X2, y2 = load_mnist(tmp_path / "img")
    assert y2 is None
    np.testing.assert_array_equal(X, X2)


def test_load_mnist_mismatches(tmp_path):
    img = write_idx(tmp_path / "img", np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="labels for 2 images"):
        load_mnist(img, write_idx(tmp_path / "lab", np.zeros(3, np.uint8)))
    with pytest.raises(ValueError, match="outside"):
        load_mnist(img, write_idx(tmp_path / "lab", np.array([0, 10], np.uint8)))
    with pytest.raises(ValueError, match="3-D uint8"):
        load_mnist(write_idx(tmp_path / "f", np.zeros((2, 4, 4), np.float32)))


def test_load_mnist10k():
    images = MNIST10K / "mnist10k-images-idx3-ubyte.gz"
    labels = MNIST10K / "mnist10k-labels-idx1-ubyte.gz"
    if not (images.exists() and labels.exists()):
        pytest.skip(f"MNIST 10k files not found in {MNIST10K}")
    X, y = load_mnist(images, labels)
    assert X.shape == (10000, 784) and X.dtype == np.float32
    assert X.min() == 0.0 and X.max() == 1.0
    assert 0.05 < X.mean() < 0.25  # mostly dark background
    assert y.shape == (10000,) and y.dtype == np.int64
    # The data's README says 980-1127 per digit; the file actually holds
    # 863 (digit 5) to 1127 (digit 1). Check the exact counts read.
    counts = np.bincount(y, minlength=10)
    np.testing.assert_array_equal(counts, [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978])
    # Images and labels line up: ones carry far less ink than zeros.
    assert X[y == 1].mean() < 0.6 * X[y == 0].mean()


# ------------------------------------------------------------------ CIFAR-10


def write_cifar_batch(path, data, labels, str_keys=False):
    key = (lambda k: k) if str_keys else (lambda k: k.encode())
    batch = {
        key("batch_label"): b"testing batch",
        key("labels"): list(labels),
        key("data"): data,
        key("filenames"): [b"x.png"] * len(data),
    }
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=2)
    return path


@pytest.mark.parametrize("str_keys", [False, True])
def test_cifar10_batch(tmp_path, str_keys):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, size=(4, 3072), dtype=np.uint8)
    X, y = load_cifar10_batch(write_cifar_batch(tmp_path / "b", data, [3, 1, 4, 1], str_keys))
    assert X.shape == (4, 3072) and X.dtype == np.float32
    np.testing.assert_array_equal(X * 255, data)
    np.testing.assert_array_equal(y, [3, 1, 4, 1])
    assert y.dtype == np.int64
    X8, _ = load_cifar10_batch(tmp_path / "b", dtype="uint8")
    assert X8.dtype == np.uint8
    np.testing.assert_array_equal(X8, data)
    with pytest.raises(ValueError, match="dtype must be"):
        load_cifar10_batch(tmp_path / "b", dtype="float64")


def test_cifar10_batch_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil"
    path.write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(ValueError, match="not a CIFAR-10 batch"):
        load_cifar10_batch(path)


def test_cifar10_batch_bad_content(tmp_path):
    path = tmp_path / "b"
    path.write_bytes(pickle.dumps({b"labels": [1]}))
    with pytest.raises(ValueError, match="no data"):
        load_cifar10_batch(path)
    write_cifar_batch(path, np.zeros((2, 100), np.uint8), [0, 1])
    with pytest.raises(ValueError, match="3072"):
        load_cifar10_batch(path)


def test_load_cifar10(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i in range(1, 6):
        write_cifar_batch(folder / f"data_batch_{i}", np.full((2, 3072), i, np.uint8), [i, i])
    write_cifar_batch(folder / "test_batch", np.full((3, 3072), 9, np.uint8), [9, 9, 9])
    for where in (folder, tmp_path):  # the batch folder or its parent
        X, y = load_cifar10(where)
        assert X.shape == (10, 3072)
        np.testing.assert_array_equal(y, np.repeat(np.arange(1, 6), 2))
        np.testing.assert_allclose(X[:, 0] * 255, np.repeat(np.arange(1, 6), 2))
        X, y = load_cifar10(where, train=False)
        assert X.shape == (3, 3072)
        np.testing.assert_array_equal(y, [9, 9, 9])
    (folder / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        load_cifar10(folder)


# -------------------------------------------------------------------- STL-10


def test_stl10_orientation(tmp_path):
    # Two images with distinct, known pixels; written column-major per
    # channel, as the STL-10 binary files store them.
    images = np.zeros((2, 3, 96, 96), np.uint8)  # (n, c, h, w)
    images[0, 0, 5, 70] = 255  # red, row 5, column 70
    images[0, 2, 90, 1] = 51  # blue, row 90, column 1
    images[1, 1, :, 3] = 102  # green vertical line at column 3
    on_disk = images.transpose(0, 1, 3, 2)  # (n, c, w, h): column-major per channel
    (tmp_path / "X.bin").write_bytes(on_disk.tobytes())
    (tmp_path / "y.bin").write_bytes(bytes([1, 10]))
    X, y = load_stl10_binary(tmp_path / "X.bin", tmp_path / "y.bin")
    assert X.shape == (2, 27648) and X.dtype == np.float32
    imgs = X.reshape(2, 3, 96, 96)
    assert imgs[0, 0, 5, 70] == 1.0 and imgs[0, 0, 70, 5] == 0.0
    assert imgs[0, 2, 90, 1] == pytest.approx(0.2)
    np.testing.assert_array_equal(X * 255, images.reshape(2, -1))
    assert np.all(imgs[1, 1, :, 3] == np.float32(0.4))
    assert imgs[1].sum() == pytest.approx(96 * 0.4)
    np.testing.assert_array_equal(y, [0, 9])
    assert y.dtype == np.int64
    X2, y2 = load_stl10_binary(tmp_path / "X.bin")
    assert y2 is None
    np.testing.assert_array_equal(X, X2)
    X8, _ = load_stl10_binary(tmp_path / "X.bin", dtype="uint8")
    assert X8.dtype == np.uint8
    np.testing.assert_array_equal(X8, images.reshape(2, -1))


def test_stl10_memmap_reads_the_file_in_place(tmp_path):
    images = np.random.RandomState(0).randint(0, 256, size=(3, 3, 96, 96)).astype(np.uint8)
    (tmp_path / "X.bin").write_bytes(images.transpose(0, 1, 3, 2).tobytes())
    X, _ = load_stl10_binary(tmp_path / "X.bin", mmap=True)
    assert isinstance(X, np.memmap) and X.dtype == np.uint8 and X.shape == (3, 27648)
    assert not X.flags.writeable
    # The file's own order: each channel transposed; the documented view is upright.
    np.testing.assert_array_equal(X.reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2), images)
    (tmp_path / "X.gz").write_bytes(gzip.compress(images.tobytes()))
    with pytest.raises(ValueError, match="gzip-compressed"):
        load_stl10_binary(tmp_path / "X.gz", mmap=True)


def test_stl10_bad_files(tmp_path):
    (tmp_path / "X.bin").write_bytes(b"\x00" * (27648 + 5))
    with pytest.raises(ValueError, match="whole number"):
        load_stl10_binary(tmp_path / "X.bin")
    (tmp_path / "X.bin").write_bytes(b"\x00" * 27648)
    (tmp_path / "y.bin").write_bytes(bytes([0]))  # labels start at 1
    with pytest.raises(ValueError, match="outside 1..10"):
        load_stl10_binary(tmp_path / "X.bin", tmp_path / "y.bin")
