"""Pre-processing: alignment geometry, eye-centre error on synthetic frames, Haar eye detection,
the cached parallel pipeline and its handling of bad frames."""
import dataclasses
import json
import os

import cv2
import numpy as np
import pytest

import ccnn.preprocess as pp
from ccnn.data import AUDataset, generate_synthetic, load_dataset
from ccnn.data.synth_labels import sample_subject_labels
from ccnn.data.synth_render import eye_centres, render
from ccnn.data.synthetic import sample_nuisance, subject_look
from ccnn.face_alignment import REFERENCE_EYES, align_face, alignment_matrix, detect_eyes
from ccnn.preprocess import preprocess

ASTRONAUT_EYES = np.array([[204.0, 101.0], [246.0, 103.5]])  # hand-labelled iris centres


def _blob_image(shape, points, sigma=2.0):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    image = np.zeros(shape)
    for x, y in points:
        image += 200 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma ** 2))
    return np.clip(image + 20, 0, 255).astype(np.uint8)


def _centroid(image, guess, half=5):
    x0, y0 = int(round(guess[0])), int(round(guess[1]))
    win = image[y0 - half:y0 + half + 1, x0 - half:x0 + half + 1].astype(np.float64)
    win = np.clip(win - np.median(image), 0, None)
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1]
    return np.array([x0 + (win * xx).sum() / win.sum(), y0 + (win * yy).sum() / win.sum()])


def _reference_similarity(src, dst):
    """Least-squares similarity (float64, real arithmetic) mapping src (2, 2) onto dst (2, 2)."""
    A, b = [], []
    for (x, y), (u, v) in zip(src, dst):
        A += [[x, -y, 1, 0], [y, x, 0, 1]]
        b += [u, v]
    a, c, tx, ty = np.linalg.lstsq(np.array(A), np.array(b), rcond=None)[0]
    return np.array([[a, -c, tx], [c, a, ty]])


@pytest.mark.parametrize("case", range(4))
def test_alignment_moves_marked_points_where_the_similarity_says(case):
    rng = np.random.default_rng(case)
    iod = [40, 70, 150, 330][case]  # the last two shrink by more than 2x (area path)
    shape = (int(iod * 3), int(iod * 3.2))
    mid = np.array([shape[1] / 2, shape[0] / 2.4]) + rng.uniform(-5, 5, 2)
    angle = rng.uniform(-0.3, 0.3)
    half = 0.5 * iod * np.array([np.cos(angle), np.sin(angle)])
    eyes = np.stack([mid - half, mid + half])
    mouth = mid + iod * np.array([-np.sin(angle), np.cos(angle)]) * 1.1 + [3.0, 0.0]
    sigma = max(2.0, iod / 25)
    image = _blob_image(shape, [*eyes, mouth], sigma)
    out = align_face(image, eyes, size=96)
    assert out.shape == (96, 96) and out.dtype == np.float32
    assert abs(out.mean()) < 1e-4 and abs(out.std() - 1) < 1e-3
    M = _reference_similarity(eyes, np.array(REFERENCE_EYES) * 96)
    np.testing.assert_allclose(alignment_matrix(eyes, 96), M, atol=1e-9)
    for point in [*eyes, mouth]:
        expected = M[:, :2] @ point + M[:, 2]
        found = _centroid(out, expected)
        assert np.hypot(*(found - expected)) < 0.2, (point, found, expected)


def _dark_disk_centre(image, guess, radius, half=5):
    """Sub-pixel centre of the best-matching dark disk near guess (template matching)."""
    x0, y0 = int(round(guess[0])), int(round(guess[1]))
    r = int(np.ceil(radius)) + 1
    win = image[y0 - half - r:y0 + half + r + 1, x0 - half - r:x0 + half + r + 1].astype(np.float32)
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    disk = (np.hypot(xx, yy) <= radius).astype(np.float32)
    score = cv2.matchTemplate(win, disk.mean() - disk, cv2.TM_CCORR)
    iy, ix = np.unravel_index(np.argmax(score), score.shape)
    offset = [0.0, 0.0]
    for axis, (lo, mid, hi) in enumerate([score[iy, ix - 1:ix + 2], score[iy - 1:iy + 2, ix]]):
        if len([lo, mid, hi]) == 3 and 0 < (ix, iy)[axis] < score.shape[1 - axis] - 1:
            offset[axis] = 0.5 * (lo - hi) / (lo - 2 * mid + hi)
    return np.array([x0 - half + ix + offset[0], y0 - half + iy + offset[1]])


def _write_frames(folder, looks, size=96, frames=12, seed=0):
    """Frames of the generator's renderer with its poses, lights and noise; eye AUs kept at 0."""
    folder.mkdir(parents=True, exist_ok=True)
    paths, subjects, eyes, labels = [], [], [], []
    aus = [1, 2, 4, 9, 12, 15, 17, 20, 25, 26]
    for s, look in enumerate(looks):
        levels = sample_subject_labels("disfa", s, frames, seed)[:, [0, 1, 2, 5, 6, 7, 8, 9, 10, 11]]
        poses, lights = sample_nuisance("disfa", s, frames, seed)
        for f in range(frames):
            image = render(look, dict(zip(aus, levels[f].tolist())), poses[f], lights[f], size,
                           noise_seed=1000 * s + f)
            path = folder / f"s{s}_{f}.png"
            cv2.imwrite(str(path), image)
            paths.append(str(path))
            subjects.append(f"S{s}")
            labels.append(levels[f])
        eyes.append(eye_centres(poses, size))
    return AUDataset("eyes-test", aus, paths, np.array(subjects), np.array(labels),
                     eyes=np.concatenate(eyes).astype(np.float32))


def test_eye_centre_error_after_preprocessing_is_within_1_5_px(tmp_path):
    # Open-eyed variants of generator subjects (lids clear of the iris), so the iris can be found
    # without bias in the aligned 96x96 output; everything else is the generator's own code.
    looks = [dataclasses.replace(subject_look("disfa", s, 0), eye_open=0.17, eye_low=0.15)
             for s in range(6)]
    ds = _write_frames(tmp_path / "frames", looks)
    faces = preprocess(ds, size=96, cache_dir=tmp_path / "cache", workers=1, progress=False)
    reference = np.array(REFERENCE_EYES) * 96
    errors = []
    for i in range(len(faces)):
        iris = looks[i // 12].iris_radius * (reference[1, 0] - reference[0, 0])
        for k in range(2):
            errors.append(np.hypot(*(_dark_disk_centre(faces.images[i], reference[k], iris) - reference[k])))
    errors = np.array(errors)
    assert errors.max() <= 1.5 and np.median(errors) <= 0.6, (np.median(errors), errors.max())


def test_eye_centres_saved_with_generated_frames_match_the_drawn_irises(tmp_path):
    # On frames exactly as generated, the lids cover the top and bottom of the iris, so only its
    # horizontal position is unbiased: check x in the aligned faces of frames with eye AUs at 0.
    out = generate_synthetic(tmp_path / "syn", subjects=3, frames=40, seed=1, image_size=96, workers=1)
    ds = load_dataset(out)
    faces = preprocess(ds, size=96, cache_dir=tmp_path / "cache", workers=1, progress=False)
    open_eyes = (faces.labels[:, [ds.aus.index(5), ds.aus.index(6)]] == 0).all(1)
    reference = np.array(REFERENCE_EYES) * 96
    dx = [(_dark_disk_centre(faces.images[i], reference[k], 2.8) - reference[k])[0]
          for i in np.flatnonzero(open_eyes) for k in range(2)]
    assert len(dx) > 100 and np.max(np.abs(dx)) <= 1.5 and abs(np.median(dx)) < 0.3


def _astronaut():
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image provides the test photograph")
    return skimage_data.astronaut()  # RGB uint8, a frontal portrait


def test_detect_eyes_finds_both_eyes_on_a_frontal_photograph():
    rgb = _astronaut()
    for image in (cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY),
                  cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0):
        eyes = detect_eyes(image)
        assert eyes is not None
        assert np.abs(np.array(eyes) - ASTRONAUT_EYES).max() < 5.0, eyes


@pytest.mark.parametrize("angle, scale", [(8, 0.75), (-10, 1.2), (0, 0.5), (12, 0.6), (-5, 0.4)])
def test_detect_eyes_follows_a_known_similarity_transform(angle, scale):
    gray = cv2.cvtColor(_astronaut(), cv2.COLOR_RGB2GRAY)
    M = cv2.getRotationMatrix2D((256, 256), angle, scale)
    moved = cv2.warpAffine(gray, M, (512, 512), borderMode=cv2.BORDER_REPLICATE)
    eyes = detect_eyes(moved)
    assert eyes is not None
    truth = ASTRONAUT_EYES @ M[:, :2].T + M[:, 2]
    assert np.abs(np.array(eyes) - truth).max() < 5.0 * max(scale, 0.6), (eyes, truth)


def test_detect_eyes_orders_left_right_in_image_terms():
    gray = cv2.cvtColor(_astronaut(), cv2.COLOR_RGB2GRAY)
    (xl, _), (xr, _) = detect_eyes(np.ascontiguousarray(gray[:, ::-1]))
    assert xl < xr
    assert abs(xl - (511 - ASTRONAUT_EYES[1, 0])) < 5 and abs(xr - (511 - ASTRONAUT_EYES[0, 0])) < 5


def test_detect_eyes_returns_none_without_a_face():
    assert detect_eyes(np.zeros((60, 80), np.uint8)) is None
    assert detect_eyes(np.random.default_rng(0).integers(0, 256, (120, 120)).astype(np.uint8)) is None


@pytest.mark.parametrize("image, error", [(np.zeros((0, 5)), ValueError), (np.zeros((4, 4, 4, 4)), ValueError),
                                          (np.array([["a"]]), TypeError)])
def test_detect_eyes_rejects_bad_images(image, error):
    with pytest.raises(error):
        detect_eyes(image)


@pytest.mark.parametrize("eyes", [[[1, 2], [1, 2]], [[0, 0], [np.nan, 3]], [1, 2, 3, 4], [[0, 0, 0], [1, 1, 1]]])
def test_align_face_rejects_bad_eyes(eyes):
    with pytest.raises(ValueError, match="eye"):
        align_face(np.zeros((50, 50), np.uint8), eyes)


def test_align_face_refuses_sizes_outside_the_cli_range():
    for size in (4, 1025, 32.0):
        with pytest.raises(ValueError, match=r"size must be an int in \[8, 1024\]"):
            align_face(np.zeros((50, 50), np.uint8), [[15, 20], [35, 20]], size=size)


def test_align_face_handles_a_blank_image():
    out = align_face(np.full((50, 50), 7, np.uint8), [[10, 20], [30, 20]], size=32)
    assert np.all(out == 0)


# --- the pipeline --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return generate_synthetic(tmp_path_factory.mktemp("pre") / "syn", subjects=3, frames=20, seed=0,
                              image_size=64, workers=1)


def test_preprocess_aligns_every_frame_and_keeps_labels(synthetic, tmp_path):
    ds = load_dataset(synthetic)
    faces = preprocess(ds, size=48, cache_dir=tmp_path, workers=1, progress=False)
    assert faces.images.shape == (60, 48, 48) and faces.images.dtype == np.float32
    np.testing.assert_array_equal(faces.labels, ds.labels)
    np.testing.assert_array_equal(faces.subjects, ds.subjects)
    assert faces.aus == ds.aus and faces.dataset == "synth-disfa"
    assert faces.skipped == 0 and faces.unreadable == 0 and not faces.fallback.any()
    np.testing.assert_allclose(faces.images.mean(axis=(1, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(faces.images.std(axis=(1, 2)), 1, atol=1e-3)
    for i in (0, 33):  # each face is align_face of its frame
        direct = align_face(cv2.imread(ds.image_paths[i], cv2.IMREAD_GRAYSCALE), ds.eyes[i], 48)
        np.testing.assert_allclose(faces.images[i], direct, atol=1e-5)


def test_preprocess_cache_is_reused_and_invalidated(synthetic, tmp_path, monkeypatch):
    ds = load_dataset(synthetic)
    first = preprocess(ds, size=32, cache_dir=tmp_path, workers=2, progress=False)
    manifest = json.loads((tmp_path / os.path.basename(first.cache_path) / "manifest.json").read_text())
    assert manifest["faces"] == 60 and manifest["size"] == 32
    assert isinstance(first.images, np.memmap)

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(pp, "_build", no_rebuild)
    second = preprocess(ds, size=32, cache_dir=tmp_path, workers=2, progress=False)
    assert second.cache_path == first.cache_path
    np.testing.assert_array_equal(np.asarray(second.images), np.asarray(first.images))
    monkeypatch.undo()

    # a manifest edited into JSON that is not an object is a damaged entry: rebuilt, not a crash
    manifest_path = tmp_path / os.path.basename(first.cache_path) / "manifest.json"
    manifest_path.write_text("[]")
    rebuilt = preprocess(ds, size=32, cache_dir=tmp_path, workers=1, progress=False)
    np.testing.assert_array_equal(np.asarray(rebuilt.images), np.asarray(first.images))
    assert json.loads(manifest_path.read_text())["faces"] == 60

    single = preprocess(ds, size=32, cache_dir=False, workers=1, progress=False)
    assert single.cache_path is None
    np.testing.assert_array_equal(single.images, np.asarray(first.images))  # workers do not matter

    image = cv2.imread(ds.image_paths[5], cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(ds.image_paths[5], 255 - image)  # an input changed: a new entry is built
    third = preprocess(ds, size=32, cache_dir=tmp_path, workers=1, progress=False)
    assert third.cache_path != first.cache_path
    assert not np.allclose(third.images[5], first.images[5])
    cv2.imwrite(ds.image_paths[5], image)


def test_corrupt_and_missing_frames_are_counted_not_fatal(synthetic, tmp_path):
    ds = load_dataset(synthetic)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    paths = list(ds.image_paths)
    paths[3] = str(broken)
    paths[7] = str(tmp_path / "gone.png")
    bad = AUDataset(ds.name, ds.aus, paths, ds.subjects, ds.labels, eyes=ds.eyes)
    with pytest.warns(UserWarning, match="unreadable 2"):
        faces = preprocess(bad, size=32, cache_dir=tmp_path / "c", workers=2, progress=False)
    assert faces.unreadable == 2 and len(faces) == 58
    assert 3 not in faces.source_index and 7 not in faces.source_index
    np.testing.assert_array_equal(faces.labels, np.delete(ds.labels, [3, 7], axis=0))


def test_a_frame_too_small_to_hold_a_face_is_dropped_even_with_eyes_given(synthetic, tmp_path):
    """A 3x3 image (a truncated file, say) with the data set's eye coordinates was 'aligned' into a
    black face; it is dropped as without a face now, as ccnn predict treats it."""
    ds = load_dataset(synthetic)
    tiny = tmp_path / "tiny.png"
    cv2.imwrite(str(tiny), np.full((3, 3), 200, np.uint8))
    paths = list(ds.image_paths)
    paths[5] = str(tiny)
    bad = AUDataset(ds.name, ds.aus, paths, ds.subjects, ds.labels, eyes=ds.eyes)
    assert np.isfinite(ds.eyes[5]).all()
    with pytest.warns(UserWarning, match="no face 1"):
        faces = preprocess(bad, size=32, cache_dir=tmp_path / "c", workers=1, progress=False)
    assert faces.unreadable == 0 and len(faces) == len(ds) - 1 and 5 not in faces.source_index


def test_frames_without_eyes_use_detection_then_fallback_or_skip(tmp_path):
    rgb = _astronaut()
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    no_eyes = gray.copy()
    cv2.rectangle(no_eyes, (188, 92), (262, 112), 150, -1)  # face still found, eyes are not
    files = {"photo.png": gray, "painted.png": no_eyes, "blank.png": np.full((200, 200), 90, np.uint8)}
    for name, image in files.items():
        cv2.imwrite(str(tmp_path / name), image)
    ds = AUDataset("photos", [12], [str(tmp_path / n) for n in files], np.array(["a", "b", "c"]),
                   np.array([[3], [1], [0]]))
    with pytest.warns(UserWarning, match="face-box fallback 1"):
        faces = preprocess(ds, size=64, cache_dir=False, workers=1, progress=False)
    assert faces.skipped == 2 and len(faces) == 2  # one fallback kept, one dropped (no face)
    assert faces.fallback.tolist() == [False, True] and faces.source_index.tolist() == [0, 1]
    # the detected eyes land on the reference positions of the photo's face
    M = faces.transforms[0]
    mapped = ASTRONAUT_EYES @ M[:, :2].T + M[:, 2]
    assert np.abs(mapped - np.array(REFERENCE_EYES) * 64).max() < 2.0
    with pytest.warns(UserWarning, match="no face 2"):
        strict = preprocess(ds, size=64, cache_dir=False, workers=1, progress=False, on_missing="skip")
    assert len(strict) == 1 and strict.skipped == 2


def test_preprocess_float16_and_subset(synthetic, tmp_path):
    faces = preprocess(load_dataset(synthetic), size=32, cache_dir=tmp_path, workers=1, progress=False,
                       dtype="float16")
    assert faces.images.dtype == np.float16
    part = faces.subset(faces.subjects == "SN002")
    assert len(part) == 20 and set(part.subjects) == {"SN002"} and part.images.shape == (20, 32, 32)


@pytest.mark.parametrize("kwargs, error", [({"size": 4}, ValueError), ({"size": 32.0}, ValueError),
                                           ({"size": 100000}, ValueError),
                                           ({"on_missing": "guess"}, ValueError),
                                           ({"dtype": "int8"}, ValueError), ({"workers": 0}, ValueError)])
def test_preprocess_rejects_bad_arguments(synthetic, kwargs, error):
    with pytest.raises(error):
        preprocess(load_dataset(synthetic), cache_dir=False, progress=False, **kwargs)


def test_preprocess_rejects_a_non_dataset():
    with pytest.raises(TypeError, match="AUDataset"):
        preprocess("some/folder")


def test_nothing_alignable_is_a_clear_error(tmp_path):
    cv2.imwrite(str(tmp_path / "blank.png"), np.zeros((40, 40), np.uint8))
    ds = AUDataset("blank", [1], [str(tmp_path / "blank.png")], np.array(["s"]), np.array([[0]]))
    with pytest.raises(ValueError, match="no frame of blank could be aligned"):
        preprocess(ds, cache_dir=False, workers=1, progress=False)


def test_a_label_change_reuses_the_aligned_faces(synthetic, tmp_path, monkeypatch):
    """The cache key leaves the labels out: new labels read the same entry, with the new labels."""
    import ccnn.preprocess as pre
    ds = load_dataset(synthetic)
    faces = preprocess(ds, size=32, cache_dir=tmp_path, workers=1, progress=False)
    relabelled = AUDataset(ds.name, ds.aus, ds.image_paths, ds.subjects, np.where(ds.labels > 0, 0, 1),
                           eyes=ds.eyes)
    monkeypatch.setattr(pre, "_build", lambda *a, **k: pytest.fail("the faces were aligned again"))
    again = preprocess(relabelled, size=32, cache_dir=tmp_path, workers=1, progress=False)
    assert again.cache_path == faces.cache_path and len(list(tmp_path.iterdir())) == 1
    np.testing.assert_array_equal(again.labels, relabelled.labels)
    np.testing.assert_array_equal(np.asarray(again.images), np.asarray(faces.images))
    np.testing.assert_array_equal(preprocess(ds, size=32, cache_dir=tmp_path, progress=False).labels, ds.labels)
