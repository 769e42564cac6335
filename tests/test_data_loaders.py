"""Loaders on tiny fixture trees written in the exact on-disk formats of DISFA, FERA2015 (BP4D),
UNBC-McMaster and the generic CSV; splits; bad input."""
import warnings

import cv2
import numpy as np
import pytest
from scipy.io import savemat

from ccnn.data import (AUDataset, load_csv, load_dataset, load_disfa, load_fera2015, load_unbc, read_image,
                       split_subjects, subject_folds)
from ccnn.data.dataset import read_video_frames, video_frame_count
from ccnn.data.loaders import DISFA_AUS, FERA2015_AUS, UNBC_AUS, eyes_from_landmarks
from ccnn.preprocess import preprocess

W, H = 64, 48


def frame_image(k: int) -> np.ndarray:
    """A frame whose mean gray level encodes its index k (survives JPEG coding)."""
    image = np.full((H, W), 20 + 9 * (k % 25), np.uint8)
    cv2.circle(image, (W // 2, H // 2), 6, 255, -1)
    return image


def write_video(path, frames: int):
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (W, H), isColor=True)
    assert writer.isOpened()
    for k in range(frames):
        writer.write(cv2.cvtColor(frame_image(k), cv2.COLOR_GRAY2BGR))
    writer.release()


def landmarks_66(eyes):
    """66 points whose two eye contours (points 37-48, 1-based) are centred on `eyes`."""
    points = np.zeros((66, 2))
    ring = np.array([[-3, 0], [-1, -1.5], [1, -1.5], [3, 0], [1, 1.5], [-1, 1.5]])
    points[36:42] = eyes[0] + ring
    points[42:48] = eyes[1] + ring
    return points


def write_disfa(root, frames: dict, rng, video_frames: dict | None = None):
    """DISFA tree; returns {subject: (frames, 12) labels}."""
    truth = {}
    for subject, n in frames.items():
        labels = rng.integers(0, 6, size=(n, 12))
        truth[subject] = labels
        folder = root / "ActionUnit_Labels" / subject
        folder.mkdir(parents=True)
        for q, au in enumerate(DISFA_AUS):
            lines = [f"{f + 1},{labels[f, q]}" for f in range(n)]
            (folder / f"{subject}_au{au}.txt").write_text("\n".join(lines) + "\n")
        write_video(root / "Video_LeftCamera" / f"LeftVideo{subject}_comp.avi",
                    (video_frames or {}).get(subject, n))
    return truth


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# --- DISFA ------------------------------------------------------------------------------------------

def test_disfa_reads_labels_and_video_frames(tmp_path, rng):
    truth = write_disfa(tmp_path, {"SN001": 6, "SN003": 5}, rng)
    ds = load_disfa(tmp_path)
    assert ds.name == "disfa" and ds.aus == DISFA_AUS and len(ds) == 11 and ds.issues == []
    np.testing.assert_array_equal(ds.labels, np.concatenate([truth["SN001"], truth["SN003"]]))
    assert ds.subject_list() == ["SN001", "SN003"] and ds.eyes is None
    assert ds.image_paths[0].endswith("LeftVideoSN001_comp.avi#0")  # label frame 1 = video frame 0
    for i in (0, 4, 9):
        frame = read_image(ds.image_paths[i])
        assert frame.shape == (H, W)
        k = int(ds.image_paths[i].rsplit("#", 1)[1])
        assert abs(np.median(frame) - (20 + 9 * k)) < 4
    assert load_dataset(tmp_path).labels.shape == (11, 12)


def test_video_frames_are_read_in_order_and_counted(tmp_path):
    write_video(tmp_path / "v.avi", 9)
    assert video_frame_count(tmp_path / "v.avi") == 9
    got = dict(read_video_frames(str(tmp_path / "v.avi"), [7, 2, 2, 5, 30]))
    assert sorted(got) == [2, 5, 7]
    for k, image in got.items():
        assert abs(np.median(image) - (20 + 9 * k)) < 4
    with pytest.raises(ValueError, match="could not read frame 12"):
        read_image(f"{tmp_path / 'v.avi'}#12")


def test_disfa_bad_input_is_counted_and_reported(tmp_path, rng):
    write_disfa(tmp_path, {"SN001": 6, "SN002": 5, "SN004": 4, "SN005": 4}, rng,
                video_frames={"SN002": 3})  # SN002: labels for 5 frames, video has 3
    (tmp_path / "ActionUnit_Labels" / "SN001" / "SN001_au9.txt").unlink()   # missing label file
    # SN001 AU4: 7 is out of range, "#,", "3,junk" and "inf,2" are malformed, frame 9999 is beyond
    # the video; SN001 AU12: inf is out of range (both raised OverflowError before)
    au4 = tmp_path / "ActionUnit_Labels" / "SN001" / "SN001_au4.txt"
    au4.write_text(au4.read_text().replace("\n2,", "\n2,7\n#,").replace("\n3,", "\n3,junk\ninf,2\n9999,"))
    au12 = tmp_path / "ActionUnit_Labels" / "SN001" / "SN001_au12.txt"
    au12.write_text(au12.read_text().replace("\n4,", "\n4,inf\n4,"))
    (tmp_path / "Video_LeftCamera" / "LeftVideoSN004_comp.avi").write_bytes(b"RIFF garbage")  # corrupt
    (tmp_path / "Video_LeftCamera" / "LeftVideoSN005_comp.avi").unlink()                     # missing
    with pytest.warns(UserWarning):
        ds = load_disfa(tmp_path)
    assert ds.subject_list() == ["SN001", "SN002"] and len(ds) == 6 + 3
    first = ds.labels[ds.subjects == "SN001"]
    assert (first[:, DISFA_AUS.index(9)] == -1).all()
    assert first[1, DISFA_AUS.index(4)] == -1  # 7 is out of range
    text = "\n".join(ds.issues)
    for expected in ["1 AU label files missing", "labels outside 0..5", "malformed label lines",
                     "3 labelled frames beyond the end", "1 subjects skipped because their video cannot",
                     "1 subjects skipped because Video_LeftCamera"]:
        assert expected in text, (expected, text)


def test_disfa_without_anything_usable_is_an_error(tmp_path, rng):
    with pytest.raises(ValueError, match="ActionUnit_Labels"):
        load_disfa(tmp_path)
    write_disfa(tmp_path, {"SN001": 3}, rng)
    (tmp_path / "Video_LeftCamera" / "LeftVideoSN001_comp.avi").unlink()
    with pytest.raises(ValueError, match="no DISFA subject"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_disfa(tmp_path)


def test_disfa_landmarks_give_eyes_and_preprocessing_reads_the_video(tmp_path, rng):
    write_disfa(tmp_path, {"SN001": 5, "SN002": 4}, rng)
    folder = tmp_path / "Landmark_Points" / "SN001" / "tmp_frame_lm"
    folder.mkdir(parents=True)
    eyes = np.array([[22.0, 20.0], [42.0, 21.0]])
    for f in range(1, 6):
        savemat(folder / f"l{f:04d}_lm.mat", {"pts": landmarks_66(eyes + f)})
    ds = load_disfa(tmp_path)
    np.testing.assert_allclose(ds.eyes[2], eyes + 3, atol=1e-5)
    assert np.isnan(ds.eyes[ds.subjects == "SN002"]).all()
    with pytest.warns(UserWarning, match="no face 4"):
        faces = preprocess(ds, size=32, cache_dir=False, workers=2, progress=False)
    assert len(faces) == 5 and faces.skipped == 4 and faces.source_index.tolist() == [0, 1, 2, 3, 4]
    direct = preprocess(ds.subset([2, 2]), size=32, cache_dir=False, workers=1, progress=False)
    assert len(direct) == 2  # a frame listed twice is read once and aligned twice
    np.testing.assert_allclose(faces.images[2], direct.images[0], atol=1e-5)
    np.testing.assert_allclose(direct.images[1], direct.images[0])


def test_eyes_from_landmarks_orders_and_checks():
    pts = landmarks_66(np.array([[40.0, 10.0], [10.0, 12.0]]))  # given right-to-left
    np.testing.assert_allclose(eyes_from_landmarks(pts), [[10, 12], [40, 10]])
    np.testing.assert_allclose(eyes_from_landmarks(pts.T), [[10, 12], [40, 10]])
    with pytest.raises(ValueError, match="66"):
        eyes_from_landmarks(np.zeros((10, 2)))


# --- FERA2015 ---------------------------------------------------------------------------------------

def write_fera(root, rng, sequences=(("F001", "T1"), ("F002", "T1"), ("M001", "T2"), ("M002", "T1")),
               frames=range(40, 46)):
    truth = {}
    for subject, task in sequences:
        labels = rng.integers(0, 6, size=(len(frames), 5))
        labels[0, 2] = 9  # unlabelled
        truth[(subject, task)] = labels
        for q, au in enumerate(FERA2015_AUS):
            folder = root / "AU_INT" / f"AU{au:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            rows = [f"{f},{labels[k, q]}" for k, f in enumerate(frames)]
            (folder / f"{subject}_{task}_AU{au:02d}.csv").write_text("\n".join(rows) + "\n")
        images = root / "BP4D" / subject / task
        images.mkdir(parents=True)
        for f in frames:
            cv2.imwrite(str(images / (f"{f:04d}.jpg" if subject.startswith("F") else f"{f}.jpg")), frame_image(f))
    return truth


def test_fera_reads_intensities_images_and_official_split(tmp_path, rng):
    truth = write_fera(tmp_path, rng)
    ds = load_fera2015(tmp_path)
    assert ds.aus == FERA2015_AUS and len(ds) == 24 and ds.subject_list() == ["F001", "F002", "M001", "M002"]
    expected = np.concatenate([truth[k] for k in sorted(truth)])
    expected = np.where(expected == 9, -1, expected)
    np.testing.assert_array_equal(ds.labels, expected)
    assert abs(np.median(read_image(ds.image_paths[3])) - (20 + 9 * (43 % 25))) < 4
    train, devel = load_fera2015(tmp_path, split="train"), load_fera2015(tmp_path, split="devel")
    assert train.subject_list() == ["F001", "M001"] and devel.subject_list() == ["F002", "M002"]
    a, b = split_subjects(ds, "fera-official")
    assert a.subject_list() == train.subject_list() and b.subject_list() == devel.subject_list()
    assert load_dataset(tmp_path).name == "fera2015"


def test_fera_bad_input(tmp_path, rng):
    write_fera(tmp_path, rng)
    (tmp_path / "BP4D" / "M002" / "T1" / "42.jpg").unlink()            # labelled frame without image
    bad = tmp_path / "AU_INT" / "AU06" / "F001_T1_AU06.csv"
    bad.write_text(bad.read_text().replace("\n41,", "\n41,6\n#").replace("42,", "42,-3\n42,"))
    (tmp_path / "AU_INT" / "AU06" / "notes.csv").write_text("x")
    with pytest.warns(UserWarning):
        ds = load_fera2015(tmp_path)
    text = "\n".join(ds.issues)
    assert "1 labelled frames without an image" in text and "outside 0..5" in text and "ignored" in text
    assert len(ds) == 23
    with pytest.raises(ValueError, match="split"):
        load_fera2015(tmp_path, split="test")
    with pytest.raises(ValueError, match="intensity folders"):
        load_fera2015(tmp_path / "BP4D")


# --- UNBC-McMaster ------------------------------------------------------------------------------------

def facs_row(au, intensity):
    return f"   {au:.7e}   {intensity:.7e}   0.0000000e+00   0.0000000e+00"


def write_unbc(root):
    rows = {  # relative image path -> FACS rows (None = no label file)
        "042-ll042/ll042t1aaaff/ll042t1aaaff001": [],
        "042-ll042/ll042t1aaaff/ll042t1aaaff002": [facs_row(4, 2), facs_row(43, 0), facs_row(50, 3)],
        "042-ll042/ll042t1aaaff/ll042t1aaaff003": [facs_row(6, 3), facs_row(12, 7)],
        "043-jh043/jh043t2aeaff/jh043t2aeaff001": [facs_row(25, 1), facs_row(26, 4),  # and non-finite cells:
                                                   facs_row(float("inf"), 2), facs_row(9, float("inf"))],
        "043-jh043/jh043t2aeaff/jh043t2aeaff002": None,
    }
    for rel, lines in rows.items():
        image = root / "Images" / f"{rel}.png"
        image.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(image), frame_image(len(rel)))
        if lines is not None:
            label = root / "Frame_Labels" / "FACS" / f"{rel}_facs.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text("\n".join(lines) + ("\n" if lines else ""))
    aam = root / "AAM_landmarks" / "042-ll042" / "ll042t1aaaff" / "ll042t1aaaff002_aam.txt"
    aam.parent.mkdir(parents=True)
    np.savetxt(aam, landmarks_66(np.array([[20.0, 20.0], [44.0, 22.0]])))


def test_unbc_reads_facs_files(tmp_path):
    write_unbc(tmp_path)
    with pytest.warns(UserWarning):
        ds = load_unbc(tmp_path)
    assert ds.aus == UNBC_AUS and len(ds) == 4 and ds.subject_list() == ["042-ll042", "043-jh043"]
    col = {au: UNBC_AUS.index(au) for au in UNBC_AUS}
    np.testing.assert_array_equal(ds.labels[0], np.zeros(10))            # empty file = all zero
    assert ds.labels[1, col[4]] == 2 and ds.labels[1, col[43]] == 1      # AU43 coded without intensity
    assert ds.labels[2, col[6]] == 3 and ds.labels[2, col[12]] == -1     # 7 is out of range
    assert ds.labels[3, col[26]] == 4 and ds.labels[3, col[9]] == -1
    text = "\n".join(ds.issues)
    assert "1 images without a Frame_Labels" in text and "2 FACS intensities outside" in text
    assert "1 malformed" in text, text
    np.testing.assert_allclose(ds.eyes[1], [[20, 20], [44, 22]], atol=1e-5)
    assert np.isnan(ds.eyes[0]).all()
    with pytest.warns(UserWarning):
        assert load_dataset(tmp_path).name == "unbc"


def test_unbc_layout_errors(tmp_path):
    with pytest.raises(ValueError, match="Frame_Labels"):
        load_unbc(tmp_path)
    (tmp_path / "Images").mkdir()
    (tmp_path / "Frame_Labels" / "FACS").mkdir(parents=True)
    with pytest.raises(ValueError, match="no UNBC image"):
        load_unbc(tmp_path)


# --- generic CSV ----------------------------------------------------------------------------------------

def write_csv(path, rows, header="image,subject,dataset,AU1,AU012,eye_left_x,eye_left_y,eye_right_x,eye_right_y"):
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def test_generic_csv(tmp_path):
    (tmp_path / "img").mkdir()
    for k in range(4):
        cv2.imwrite(str(tmp_path / "img" / f"{k}.png"), frame_image(k))
    path = write_csv(tmp_path / "mine.csv", [
        "img/0.png,alice,mine,0,3,10,12,30,12",
        "img/1.png,alice,mine,,5,,,,",
        "img/2.png,bob,mine,2.5,9,10,12,30,12",
        "img/3.png,bob,mine,-1,1,10,12,30,12",
        "img/4.png,bob,mine,1,1,10,12,30,12",
    ])
    with pytest.warns(UserWarning):
        ds = load_csv(path)
    assert ds.name == "mine" and ds.aus == [1, 12] and len(ds) == 4
    np.testing.assert_array_equal(ds.labels, [[0, 3], [-1, 5], [-1, -1], [-1, 1]])
    assert np.isnan(ds.eyes[1]).all() and ds.eyes[0].tolist() == [[10, 12], [30, 12]]
    assert ds.image_paths[0] == str(tmp_path / "img" / "0.png")
    assert "1 labels outside 0..5" in ds.issues[0] and "1 rows skipped" in ds.issues[1]
    with pytest.warns(UserWarning):
        assert load_dataset(path).aus == [1, 12]


def test_non_finite_levels_are_invalid_not_a_crash(tmp_path):
    """inf, 1e400 and +nan cells (and predicted intensities) are invalid levels, counted and missing;
    they used to raise OverflowError (round(inf)) or a ValueError about converting NaN."""
    cv2.imwrite(str(tmp_path / "a.png"), frame_image(0))
    path = write_csv(tmp_path / "odd.csv", ["a.png,s,x,inf,2,10,12,30,12", "a.png,s,x,1e400,+nan,10,12,inf,12",
                                             "a.png,s,x,-inf,3,10,12,30,12"])
    with pytest.warns(UserWarning, match="4 labels outside 0..5"):
        ds = load_csv(path)
    np.testing.assert_array_equal(ds.labels, [[-1, 2], [-1, -1], [-1, 3]])
    assert np.isfinite(ds.eyes[[0, 2]]).all() and np.isnan(ds.eyes[1, 1, 0])  # an infinite eye coordinate: missing
    predicted = write_csv(tmp_path / "predicted.csv", ["1,0,0.0,0.9,1,a.png,inf,1.0", "1,0,0.0,0.9,1,a.png,2.2,1.0"],
                          header="frame,face_id,timestamp,confidence,success,file,AU12_r,AU12_c")
    with pytest.warns(UserWarning, match="1 labels outside 0..5"):
        assert load_csv(predicted).labels.tolist() == [[-1], [2]]


def test_generic_csv_with_several_datasets(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), frame_image(0))
    ds = load_csv(write_csv(tmp_path / "mix.csv", ["a.png,s1,one,1,2", "a.png,s2,two,0,0"],
                            header="path,Subject,Dataset,AU01,AU2"))
    assert ds.name == "mix" and ds.datasets.tolist() == ["one", "two"]


@pytest.mark.parametrize("header, message", [("subject,AU1", "image column"), ("image,AU1", "subject"),
                                             ("image,subject,mood", "AU columns"),
                                             ("image,subject,AU1,AU01", "repeat")])
def test_generic_csv_errors(tmp_path, header, message):
    with pytest.raises(ValueError, match=message):
        load_csv(write_csv(tmp_path / "bad.csv", ["x.png,s,1,1"], header=header))


def test_generic_csv_missing_or_empty(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_csv(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="empty"):
        load_csv(tmp_path / "empty.csv")
    with pytest.raises(ValueError, match="no usable rows"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_csv(write_csv(tmp_path / "gone.csv", ["missing.png,s,x,1,1,,,,"]))
    with pytest.raises(ValueError, match="unknown layout"):
        load_dataset(tmp_path)


# --- the record and the splits ------------------------------------------------------------------------------

def make_ds(subjects, q=2, rng=None):
    rng = rng or np.random.default_rng(0)
    n = len(subjects)
    return AUDataset("toy", [1, 2][:q], [f"{i}.png" for i in range(n)], np.array(subjects),
                     rng.integers(-1, 6, size=(n, q)))


def test_record_validation():
    with pytest.raises(ValueError, match="labels must have shape"):
        AUDataset("x", [1, 2], ["a"], np.array(["s"]), np.zeros((1, 3), int))
    with pytest.raises(ValueError, match="-1"):
        AUDataset("x", [1], ["a"], np.array(["s"]), np.array([[6]]))
    with pytest.raises(TypeError, match="integers"):
        AUDataset("x", [1], ["a"], np.array(["s"]), np.array([[1.5]]))
    with pytest.raises(ValueError, match="subjects"):
        AUDataset("x", [1], ["a", "b"], np.array(["s"]), np.zeros((2, 1), int))
    with pytest.raises(ValueError, match="eyes"):
        AUDataset("x", [1], ["a"], np.array(["s"]), np.zeros((1, 1), int), eyes=np.zeros((1, 2)))
    ds = make_ds(["a", "b", "a"])
    part = ds.subset(np.array([True, False, True]))
    assert part.image_paths == ["0.png", "2.png"] and ds.subset([2, 0]).image_paths == ["2.png", "0.png"]
    with pytest.raises(IndexError):
        ds.subset([3])


def test_disfa_18_9_and_3_fold():
    subjects = [f"SN{i:03d}" for i in (*range(1, 14), 16, 17, 18, 21, *range(23, 33))]
    ds = make_ds([s for s in subjects for _ in range(3)])
    train, test = split_subjects(ds, "disfa-18/9")
    assert train.subject_list() == subjects[:18] and test.subject_list() == subjects[18:]
    folds = [split_subjects(ds, ("disfa-3fold", k)) for k in range(3)]
    tests = [set(t.subject_list()) for _, t in folds]
    assert all(len(t) == 9 for t in tests) and set.union(*tests) == set(subjects)
    assert [set(t.subject_list()) for _, t in subject_folds(ds, 3)] == tests
    assert split_subjects(ds, "disfa-3fold-1")[1].subject_list() == folds[1][1].subject_list()
    for train, test in folds:
        assert not set(train.subject_list()) & set(test.subject_list())
        assert len(train) + len(test) == len(ds)


def test_fraction_split_is_subject_independent_and_seeded():
    ds = make_ds([f"s{i}" for i in range(10) for _ in range(4)])
    a1, b1 = split_subjects(ds, ("fraction", 0.7, 3))
    a2, _ = split_subjects(ds, ("fraction", 0.7, 3))
    assert len(a1.subject_list()) == 7 and a1.subject_list() == a2.subject_list()
    assert not set(a1.subject_list()) & set(b1.subject_list())
    assert split_subjects(ds, ("fraction", 0.7, 4))[0].subject_list() != a1.subject_list()


@pytest.mark.parametrize("scheme", ["disfa-20/7", ("fraction", 1.5, 0), ("disfa-3fold", 3), "fera-official"])
def test_bad_split_schemes(scheme):
    with pytest.raises(ValueError):
        split_subjects(make_ds(["a", "b", "c", "d"]), scheme)


def test_split_needs_two_subjects():
    with pytest.raises(ValueError, match="at least 2 subjects"):
        split_subjects(make_ds(["a", "a"]), "disfa-18/9")


@pytest.mark.parametrize("text", ["fraction:abc", "fraction:1.5", "fractionx", "fraction:"])
def test_split_option_errors_name_the_option(text):
    """'fraction:abc' raised float()'s own message and 'fractionx' passed as the default fraction."""
    from ccnn.experiment import parse_split
    if text == "fraction:":
        assert parse_split(text, 3) == ("fraction", 2 / 3, 3)
        return
    with pytest.raises(ValueError, match="split"):
        split_subjects(make_ds(["a", "b", "c", "d"]), parse_split(text, 0))


@pytest.mark.parametrize("meta, message", [("{", "is not valid JSON"), ("[]", "expected a JSON object"),
                                           ('{"name": 5}', "expected a JSON object"), ("null", "expected a JSON object")])
def test_meta_json_of_the_wrong_shape_is_a_named_error(tmp_path, meta, message):
    """Valid JSON that is not an object (or whose name is not a string) raised AttributeError or
    TypeError out of load_dataset, a traceback on the command line."""
    cv2.imwrite(str(tmp_path / "a.png"), frame_image(0))
    write_csv(tmp_path / "labels.csv", ["a.png,s1,x,1,2,10,12,30,12"])
    (tmp_path / "meta.json").write_text(meta)
    with pytest.raises(ValueError, match=message):
        load_dataset(tmp_path)
    (tmp_path / "meta.json").write_text('{"name": "mine", "other": [1]}')
    assert load_dataset(tmp_path).name == "mine"
