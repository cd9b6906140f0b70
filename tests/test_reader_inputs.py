"""Inputs a reader may bring: image files of every PIL mode PNG, JPEG and TIFF carry,
arrays and tensors of the usual layouts and dtypes, and the errors for what cannot be
an image. Each kind goes through load_image / to_rgb, to_batch, the figures and one
explainer per family.
"""

import struct
import zlib

import matplotlib.pyplot as plt
import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from xaihelpers import actmatch, baselines, benchmark_models, causal, data, gfi, models, srd, viz

H, W = 16, 24  # not square, so that a swapped axis cannot go unnoticed
RNG = np.random.default_rng(0)
PIC = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)  # the picture every lossless kind holds
GRAY = RNG.integers(0, 256, (H, W), dtype=np.uint8)
GRAY[0, 0], GRAY[0, 1] = 255, 0  # the extremes: 65535 must become 255, 0 stay 0
WHITE = np.full(3, 255, dtype=np.uint8)

# Lossy kinds: flat 8x8 blocks survive JPEG with only their DC coefficient, which the
# quality-95 tables round to within a level or two (measured here: at most 1; the
# margin is for other libjpeg builds).
JPEG_LEVELS = 4
BLOCKS = np.kron(RNG.integers(0, 256, (H // 8, W // 8, 3)), np.ones((8, 8, 1))).astype(np.uint8)
# to_rgb_array and to_batch keep float32: one rounding of v / 255 or v / 65535.
F32 = 1e-6
# to_batch rounds each picture to the nearest of 256 levels, as a file would: half a level.
HALF_LEVEL = 0.5 / 255 + F32


def _gray3(g: np.ndarray) -> np.ndarray:
    return np.repeat(g[..., None], 3, axis=-1)


def _png16_rgb(path, rgb16: np.ndarray) -> None:
    """A 16-bit RGB PNG (PIL cannot write one): signature, IHDR, one IDAT, IEND."""
    h, w, _ = rgb16.shape

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = b"".join(b"\x00" + rgb16[r].astype(">u2").tobytes() for r in range(h))  # filter 0 per row
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


# --------------------------------------------------------------------------------------
# files: name -> writer(tmp_path) returning (path, expected 8-bit RGB, tolerance in levels)
# --------------------------------------------------------------------------------------

def _png_rgb(d):
    Image.fromarray(PIC).save(d / "a.png")
    return d / "a.png", PIC, 0


def _png_rgba(d):
    alpha = np.full((H, W, 1), 255, dtype=np.uint8)
    alpha[:, W // 2 :] = 0  # the right half transparent: white after compositing
    Image.fromarray(np.concatenate([PIC, alpha], -1)).save(d / "a.png")
    want = PIC.copy()
    want[:, W // 2 :] = WHITE
    return d / "a.png", want, 0


def _png_l(d):
    Image.fromarray(GRAY).save(d / "a.png")
    return d / "a.png", _gray3(GRAY), 0


def _png_la(d):
    alpha = np.where(np.arange(H)[:, None] < H // 2, 255, 0).astype(np.uint8) * np.ones((1, W), np.uint8)
    img = Image.fromarray(np.stack([GRAY, alpha], -1))
    assert img.mode == "LA"
    img.save(d / "a.png")
    want = _gray3(GRAY)
    want[H // 2 :] = WHITE
    return d / "a.png", want, 0


def _png_p_transparent(d):
    pal = Image.new("P", (W, H), 1)
    pal.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    pal.putpixel((0, 0), 0)
    pal.save(d / "a.png", transparency=0)
    want = np.tile(np.array([10, 200, 30], np.uint8), (H, W, 1))
    want[0, 0] = WHITE
    return d / "a.png", want, 0


def _png_bilevel(d):
    Image.fromarray(GRAY > 127).save(d / "a.png")
    assert Image.open(d / "a.png").mode == "1"
    return d / "a.png", _gray3(np.where(GRAY > 127, 255, 0).astype(np.uint8)), 0


def _png_gray16(d):
    Image.fromarray(GRAY.astype(np.uint16) * 257).save(d / "a.png")  # v * 257 / 65535 * 255 = v
    assert Image.open(d / "a.png").mode == "I;16"
    return d / "a.png", _gray3(GRAY), 0


def _png_rgb16(d):
    _png16_rgb(d / "a.png", PIC.astype(np.uint16) * 257)
    return d / "a.png", PIC, 0


def _tiff_gray16_big_endian(d):
    tifffile.imwrite(d / "a.tiff", GRAY.astype(np.uint16) * 257, byteorder=">")
    assert Image.open(d / "a.tiff").mode == "I;16B"
    return d / "a.tiff", _gray3(GRAY), 0


def _tiff_rgb16(d):
    tifffile.imwrite(d / "a.tiff", PIC.astype(np.uint16) * 257, photometric="rgb")
    return d / "a.tiff", PIC, 0


def _tiff_int32_16bit(d):
    Image.fromarray(GRAY.astype(np.int32) * 257).save(d / "a.tiff")  # mode "I" holding 16-bit levels
    assert Image.open(d / "a.tiff").mode == "I"
    return d / "a.tiff", _gray3(GRAY), 0


def _tiff_float_unit(d):
    tifffile.imwrite(d / "a.tiff", GRAY.astype(np.float32) / 255)
    assert Image.open(d / "a.tiff").mode == "F"
    return d / "a.tiff", _gray3(GRAY), 0


def _tiff_float_levels(d):
    tifffile.imwrite(d / "a.tiff", GRAY.astype(np.float32))  # 0..255 in a float image
    return d / "a.tiff", _gray3(GRAY), 0


# CMYK with ink either full or none: white, black, cyan, magenta, yellow, red
_INKS = np.array([[0, 0, 0, 0], [0, 0, 0, 255], [255, 0, 0, 0], [0, 255, 0, 0], [0, 0, 255, 0], [0, 255, 255, 0]],
                 np.uint8)
_INK_RGB = np.array([[255, 255, 255], [0, 0, 0], [0, 255, 255], [255, 0, 255], [255, 255, 0], [255, 0, 0]], np.uint8)
_INK_INDEX = np.kron(np.arange(6).reshape(2, 3), np.ones((8, 8), int))  # 16 x 24, one ink per 8x8 block


def _cmyk(d, suffix):
    img = Image.frombytes("CMYK", (W, H), _INKS[_INK_INDEX].tobytes())
    img.save(d / f"a.{suffix}", **({"quality": 95} if suffix == "jpg" else {}))
    assert Image.open(d / f"a.{suffix}").mode == "CMYK"
    return d / f"a.{suffix}", _INK_RGB[_INK_INDEX], JPEG_LEVELS if suffix == "jpg" else 0


def _jpeg_rgb(d):
    Image.fromarray(BLOCKS).save(d / "a.jpg", quality=95, subsampling=0)
    return d / "a.jpg", BLOCKS, JPEG_LEVELS


def _jpeg_gray(d):
    g = BLOCKS[..., 0]
    Image.fromarray(g).save(d / "a.jpg", quality=95)
    assert Image.open(d / "a.jpg").mode == "L"
    return d / "a.jpg", _gray3(g), JPEG_LEVELS


FILES = {
    "png_rgb": _png_rgb,
    "png_rgba": _png_rgba,
    "png_l": _png_l,
    "png_la": _png_la,
    "png_p_transparency": _png_p_transparent,
    "png_bilevel": _png_bilevel,
    "png_gray16": _png_gray16,
    "png_rgb16": _png_rgb16,
    "tiff_gray16_big_endian": _tiff_gray16_big_endian,
    "tiff_rgb16": _tiff_rgb16,
    "tiff_int32_16bit": _tiff_int32_16bit,
    "tiff_float_unit": _tiff_float_unit,
    "tiff_float_levels": _tiff_float_levels,
    "jpeg_cmyk": lambda d: _cmyk(d, "jpg"),
    "tiff_cmyk": lambda d: _cmyk(d, "tiff"),
    "jpeg_rgb": _jpeg_rgb,
    "jpeg_gray": _jpeg_gray,
}


def _to_tensor(img: Image.Image) -> torch.Tensor:
    """A preprocess that only scales: the batch is the picture itself, (3, H, W) in [0, 1]."""
    assert img.mode == "RGB"
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)


@pytest.mark.parametrize("kind", FILES)
def test_files_of_every_mode_load_as_the_picture_they_hold(tmp_path, kind):
    path, want, levels = FILES[kind](tmp_path)
    img = data.load_image(path)
    assert img.mode == "RGB" and img.size == (W, H)
    got = np.asarray(img).astype(int)
    assert np.abs(got - want).max() <= levels
    # the file as PIL opens it (16-bit, float, CMYK, ...) goes to the figures and the batch
    with Image.open(path) as raw:
        raw.load()
        pic = viz.to_image(raw)
        batch = data.to_batch(raw, _to_tensor)
        fig, ax = plt.subplots()
        viz.overlay(ax, raw, np.linspace(0, 1, 12).reshape(3, 4))
    assert pic.shape == (H, W, 3) and pic.dtype == np.float32
    assert np.abs(pic - want / 255).max() <= levels / 255 + HALF_LEVEL
    assert batch.shape == (1, 3, H, W)
    assert torch.allclose(batch, data.to_batch(str(path), _to_tensor), atol=F32)  # a path reads the same
    assert np.abs(batch[0].permute(1, 2, 0).numpy() - got / 255).max() <= F32
    assert np.abs(np.asarray(ax.images[0].get_array()) - pic).max() <= F32  # the picture drawn is to_image's
    plt.close(fig)


def test_the_extremes_of_deep_and_cmyk_files(tmp_path):
    """65535 is white in a 16-bit file, ink (0, 0, 0, 0) is white in a CMYK one."""
    Image.fromarray(np.array([[65535, 0]], np.uint16)).save(tmp_path / "deep.png")
    assert data.load_image(tmp_path / "deep.png").getpixel((0, 0)) == (255, 255, 255)
    assert np.allclose(viz.to_image(Image.open(tmp_path / "deep.png"))[0], [[1.0] * 3, [0.0] * 3], rtol=0, atol=F32)
    Image.new("CMYK", (8, 8), (0, 0, 0, 0)).save(tmp_path / "paper.tiff")
    assert data.load_image(tmp_path / "paper.tiff").getpixel((3, 3)) == (255, 255, 255)


# --------------------------------------------------------------------------------------
# arrays and tensors: name -> (the object, the picture it holds in [0, 1])
# --------------------------------------------------------------------------------------

_UNIT = PIC.astype(np.float32) / 255
_RGBA = np.concatenate([PIC, np.full((H, W, 1), 255, np.uint8)], -1)
_RGBA[:, :4, 3] = 0  # transparent columns: white
_RGBA_WANT = _UNIT.copy()
_RGBA_WANT[:, :4] = 1.0
ARRAYS = {
    "hwc_uint8": (PIC, _UNIT),
    "chw_uint8": (PIC.transpose(2, 0, 1), _UNIT),
    "hwc_float_unit": (_UNIT, _UNIT),
    "chw_float_unit": (_UNIT.transpose(2, 0, 1).copy(), _UNIT),
    "hwc_float64_levels": (PIC.astype(np.float64), _UNIT),
    "hwc_uint16": (PIC.astype(np.uint16) * 257, _UNIT),
    "chw_uint16": ((PIC.astype(np.uint16) * 257).transpose(2, 0, 1), _UNIT),
    "gray_uint8": (GRAY, _gray3(GRAY) / 255),
    "gray_uint16": (GRAY.astype(np.uint16) * 257, _gray3(GRAY) / 255),
    "gray_hw1": (GRAY[..., None], _gray3(GRAY) / 255),
    "mask_bool": (GRAY > 127, _gray3((GRAY > 127).astype(np.float32))),
    "hwc_rgba_uint8": (_RGBA, _RGBA_WANT),
    "tensor_chw_float": (torch.from_numpy(_UNIT).permute(2, 0, 1), _UNIT),
    "tensor_chw_uint8": (torch.from_numpy(PIC).permute(2, 0, 1), _UNIT),
    "tensor_hwc_float": (torch.from_numpy(_UNIT), _UNIT),
    "tensor_chw_float64_grad": (torch.from_numpy(_UNIT).permute(2, 0, 1).double().requires_grad_(), _UNIT),
}


@pytest.mark.parametrize("kind", ARRAYS)
def test_arrays_and_tensors_give_the_picture_they_hold(kind):
    obj, want = ARRAYS[kind]
    got = data.to_rgb_array(obj)
    assert got.shape == (H, W, 3) and got.dtype == np.float32
    assert np.abs(got - want).max() <= F32
    assert np.abs(viz.to_image(obj) - want).max() <= F32
    assert np.abs(np.asarray(data.to_rgb(obj), dtype=np.float32) / 255 - want).max() <= HALF_LEVEL
    batch = data.to_batch(obj, _to_tensor)  # one picture, no list around it
    assert batch.shape == (1, 3, H, W)
    assert np.abs(batch[0].permute(1, 2, 0).numpy() - want).max() <= HALF_LEVEL


def test_channel_first_and_last_give_the_same_batch():
    """One picture as HWC and CHW arrays (uint8, uint16, float) and tensors, alone, in a 4-D array or a tensor batch."""
    ref = data.to_batch([PIC], _to_tensor)
    kinds = [k for k in ARRAYS if k.startswith(("hwc_", "chw_", "tensor_")) and "rgba" not in k]
    batches = [data.to_batch(ARRAYS[k][0], _to_tensor) for k in kinds]
    batches.append(data.to_batch(np.stack([PIC, PIC]), _to_tensor)[1:])  # a 4-D array is a batch
    batches.append(data.to_batch(torch.from_numpy(_UNIT).permute(2, 0, 1)[None], _to_tensor))
    assert len(batches) >= 10
    for b in batches:
        assert b.shape == ref.shape and (b - ref).abs().max() <= 1 / 255  # the float kinds are rounded to 8 bits


def test_maps_from_arrays_tensors_and_files(tmp_path):
    Image.fromarray(GRAY.astype(np.uint16) * 257).save(tmp_path / "map16.png")
    m = viz.to_map(Image.open(tmp_path / "map16.png"))
    assert m.shape == (H, W) and m.max() == 65535 and m.min() == 0  # a map's values are kept, not rescaled
    assert viz.to_map(torch.rand(1, 4, 5, requires_grad=True)).shape == (4, 5)  # a batch of one map
    assert viz.to_map(np.ones((4, 5, 1), dtype=bool)).dtype == np.float32
    fig, ax = plt.subplots()
    viz.explanation(ax, PIC, GRAY > 127)
    plt.close(fig)


# --------------------------------------------------------------------------------------
# what cannot be an image: the error names what came
# --------------------------------------------------------------------------------------

def _wide_int_image():
    return Image.fromarray(np.full((4, 4), 70000, np.int32))


BAD = [
    ("load a 4-D array", lambda: data.load_image(np.zeros((2, 8, 8, 3))), TypeError, r"\(2, 8, 8, 3\)"),
    ("to_rgb a 4-D array", lambda: data.to_rgb(np.zeros((2, 8, 8, 3))), ValueError, r"\(2, 8, 8, 3\).*batch"),
    ("five channels", lambda: viz.to_image(np.zeros((8, 8, 5))), ValueError, r"\(8, 8, 5\)"),
    ("five channels in a batch", lambda: data.to_batch([PIC, np.zeros((8, 8, 5), np.uint8)], _to_tensor),
     ValueError, r"image 1: .*\(8, 8, 5\)"),
    ("a string to draw", lambda: viz.to_image("photo.png"), TypeError, "'photo.png'"),
    ("a missing path", lambda: data.to_batch("no/such/photo.png", _to_tensor), FileNotFoundError, "no/such/photo.png"),
    ("a normalised batch", lambda: data.to_batch(torch.linspace(-2, 2.6, 3 * 8 * 8).reshape(1, 3, 8, 8), _to_tensor),
     ValueError, r"from -2 to 2\.6.*normalis"),
    ("16-bit levels in floats", lambda: viz.to_image(np.full((4, 4), 1000.0)), ValueError, r"1000.*uint16"),
    ("NaN", lambda: viz.to_image(np.full((4, 4), np.nan)), ValueError, "NaN"),
    ("32-bit int image", lambda: data.to_rgb(_wide_int_image()), ValueError, r"mode 'I'.*70000"),
    ("unsupported mode", lambda: data.to_rgb(Image.new("LAB", (4, 4))), ValueError, "mode 'LAB'"),
    ("strings as pixels", lambda: viz.to_image(np.array([["a", "b"]])), TypeError, "dtype <U1"),
    ("RGB image as a map", lambda: viz.to_map(Image.fromarray(PIC)), ValueError, "mode 'RGB'"),
    ("a batch of maps", lambda: viz.to_map(np.zeros((2, 4, 4))), ValueError, r"\(2, 4, 4\)"),
    ("a string as a map", lambda: viz.to_map("map.png"), TypeError, "str"),
    ("a mask of another shape", lambda: viz.explanation(plt.figure().gca(), PIC, np.ones((4, 4))), ValueError,
     r"\(16, 24\).*\(4, 4\)"),
]


@pytest.mark.parametrize("call, error, message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_what_cannot_be_an_image_is_refused_with_what_came(call, error, message):
    with pytest.raises(error, match=message):
        call()
    plt.close("all")


# --------------------------------------------------------------------------------------
# the explainers: one per family, on pictures of several kinds turned into a batch
# --------------------------------------------------------------------------------------

SIDE = 32


@pytest.fixture(scope="module")
def tiny():
    """A small random CNN of the benchmark family and a 32-pixel preprocess."""
    torch.manual_seed(0)
    return benchmark_models.BenchmarkCNN("relu", width=4).eval(), models.Preprocess(SIDE, SIDE)


@pytest.fixture(scope="module")
def reader_batch(tiny, tmp_path_factory):
    """Four pictures as a reader may hold them: a 16-bit PNG, a CMYK JPEG, a float CHW array, a uint8 tensor."""
    d = tmp_path_factory.mktemp("reader")
    paths = []
    for kind in ("png_gray16", "jpeg_cmyk"):
        (d / kind).mkdir()
        paths.append(FILES[kind](d / kind)[0])
    pictures = paths + [_UNIT.transpose(2, 0, 1), torch.from_numpy(PIC)]
    x = data.to_batch(pictures, tiny[1])
    assert x.shape == (4, 3, SIDE, SIDE) and x.dtype == torch.float32
    return x


EXPLAINERS = {
    "baselines": lambda m, x: baselines.explain(m, x, method="saliency"),
    "gfi": lambda m, x: gfi.explain(m, x, iterations=2, stage1_iterations=1),
    "srd": lambda m, x: srd.explain(m, x),
    "causal": lambda m, x: causal.explain(m, x, how="zero", iters=1, step=0.1, verbose=False),
    "actmatch": lambda m, x: actmatch.train(m, x, steps=1, widths=(4, 8), bottleneck=8, verbose=False).masks,
}


@pytest.mark.parametrize("family", EXPLAINERS)
def test_explainers_take_the_batch_of_a_readers_pictures(tiny, reader_batch, family):
    maps = EXPLAINERS[family](tiny[0], reader_batch)
    assert maps.shape == (4, SIDE, SIDE) and torch.isfinite(torch.as_tensor(maps)).all()


@pytest.mark.parametrize("family", EXPLAINERS)
def test_explainers_refuse_pictures_that_are_not_a_batch(tiny, reader_batch, family):
    model, x = tiny[0], reader_batch
    explain = EXPLAINERS[family]
    bad = [
        (x[0], ValueError, r"\(3, 32, 32\).*single image.*unsqueeze"),
        (x[0].permute(1, 2, 0), ValueError, r"\(32, 32, 3\).*channel-last"),
        (x.permute(0, 2, 3, 1), ValueError, r"\(4, 32, 32, 3\).*channel-last"),
        (x.numpy(), TypeError, r"NumPy array of shape \(4, 3, 32, 32\)"),
        (torch.from_numpy(PIC).permute(2, 0, 1)[None], TypeError, r"torch\.uint8.*to_batch"),
        (Image.fromarray(PIC), TypeError, "PIL image of mode 'RGB'"),
        ("photo.png", TypeError, "'photo.png'"),
        (x[:, :1], ValueError, r"\(4, 1, 32, 32\).*one channel \(gray\)"),
    ]
    for value, error, message in bad:
        with pytest.raises(error, match=message):
            explain(model, value)
