"""The ImageNet validation loader (full-scale localisation path) on a tiny synthetic folder."""

import numpy as np
import pytest
from PIL import Image

from xaihelpers import folders

XML = """<annotation><filename>{stem}</filename>
<size><width>{w}</width><height>{h}</height><depth>3</depth></size>
{objects}</annotation>"""
OBJ = "<object><name>{wnid}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"


def _write(folder, stem, w, h, objects):
    Image.fromarray(np.full((h, w, 3), 120, np.uint8)).save(folder / f"{stem}.JPEG")
    objs = "".join(OBJ.format(wnid=o, x0=b[0], y0=b[1], x1=b[2], y1=b[3]) for o, b in objects)
    (folder / f"{stem}.xml").write_text(XML.format(stem=stem, w=w, h=h, objects=objs))


@pytest.fixture
def folder(tmp_path):
    val = tmp_path / "val"
    val.mkdir()
    (tmp_path / "LOC_synset_mapping.txt").write_text("n01440764 tench, Tinca tinca\nn01443537 goldfish\nn01484850 great white shark\n")
    _write(val, "ILSVRC2012_val_00000001", 200, 100, [("n01443537", (10, 20, 109, 59))])
    # two boxes of the class and one of another: the largest of the class is kept
    _write(val, "ILSVRC2012_val_00000002", 100, 100, [("n01484850", (0, 0, 9, 9)), ("n01440764", (0, 0, 99, 99)),
                                                      ("n01484850", (50, 50, 89, 79))])
    return val


def test_loader_reads_labels_and_scales_boxes(folder):
    ds = folders.imagenet_localisation(folder, size=50, verbose=False)
    assert len(ds) == 2 and ds.images.shape == (2, 3, 50, 50) and ds.names[0] == "ILSVRC2012_val_00000001"
    assert ds.labels.tolist() == [1, 2]
    # 200x100 -> 50x50: x scaled by 1/4, y by 1/2; xmax/ymax inclusive -> exclusive
    assert ds.boxes[0].tolist() == [round(10 / 4), 10, round(110 / 4), 30]
    assert ds.boxes[1].tolist() == [25, 25, 45, 40]
    assert float(ds.images.max()) <= 1 and float(ds.images.min()) >= 0
    assert len(folders.imagenet_localisation(folder, n=1, size=50, verbose=False)) == 1


def test_loader_errors(folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        folders.imagenet_localisation(tmp_path / "nope")
    with pytest.raises(ValueError, match="not in the class list"):
        folders.imagenet_localisation(folder, synsets=["n01440764"], verbose=False)
    (folder / "ILSVRC2012_val_00000002.xml").unlink()
    with pytest.raises(FileNotFoundError, match="missing annotation"):
        folders.imagenet_localisation(folder, verbose=False)
    (tmp_path / "LOC_synset_mapping.txt").unlink()
    with pytest.raises(FileNotFoundError, match="pass synsets="):
        folders.imagenet_localisation(folder, verbose=False)
    bad = tmp_path / "bad.xml"
    bad.write_text("<annotation><size><width>3</width></size></annotation>")
    with pytest.raises(ValueError, match="not a bounding-box annotation"):
        folders.read_voc_boxes(bad)
