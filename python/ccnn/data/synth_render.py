"""Grayscale synthetic faces drawn with OpenCV, with FACS action units moving the facial parts.

Geometry lives in face units: the origin is the midpoint of the two eye centres, x points to the
image right, y down, and the inter-ocular distance (IOD) is 1; the eye centres are (-0.5, 0) and
(0.5, 0). A similarity transform (rotation, scale, translation) maps face units to pixels, with
pixel centres at integer coordinates (OpenCV's convention), so the eye centres of a frame are
exactly `eye_centres(pose, size)`.

Every AU moves the parts FACS says it moves, linearly in its intensity (0..5). `AU_MOTION` lists
the displacement at intensity 1 in IOD units (or the darkening in gray levels for creases): large
for the easy AUs (1, 2, 4, 6, 12, 25, 26, 43), small for the weak ones (5, 7, 9, 14, 15, 17, 20),
which are meant to be read mostly through the AUs they co-occur with.

Over 400 lines because `draw_face` is one pass over the facial parts in drawing order, each part
moved by the AUs of `AU_MOTION`; split across modules, the parts would hide that shared order.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

SHIFT = 4  # fixed-point bits of cv2 drawing coordinates (1/16 pixel)
ONE = 1 << SHIFT
IOD_FRACTION = 0.28  # inter-ocular distance of an unscaled face, as a fraction of the image side

# Displacement per intensity level, in IOD units (creases: gray levels darker per level).
AU_MOTION = {
    1: {"inner_brow_up": 0.065, "forehead_crease": 7.0},
    2: {"outer_brow_up": 0.065, "forehead_crease": 5.0},
    4: {"brow_down": 0.035, "brow_in": 0.02, "glabella_crease": 10.0},
    5: {"upper_lid_up": 0.011},
    6: {"cheek_up": 0.035, "lower_lid_up": 0.012, "crow_feet": 9.0, "cheek_light": 3.0},
    7: {"lower_lid_up": 0.014, "upper_lid_down": 0.005},
    9: {"nose_crease": 6.0, "nose_wing_up": 0.010},
    10: {"upper_lip_up": 0.028, "nose_wing_up": 0.008, "nasolabial": 4.0},
    12: {"corner_up": 0.05, "corner_out": 0.025, "nasolabial": 6.0},
    14: {"corner_in": 0.012, "dimple": 8.0},
    15: {"corner_down": 0.022},
    17: {"lower_lip_up": 0.015, "chin_crease": 7.0},
    20: {"corner_out": 0.02},
    25: {"lip_gap": 0.04},
    26: {"jaw_down": 0.06, "lip_gap": 0.024},
    43: {"lid_close": 0.2},  # fraction of the eye aperture closed per level
}
WEAK_AUS = (5, 7, 9, 14, 15, 17, 20)


@dataclass
class FaceLook:
    """Appearance and geometry of one subject (face units and gray levels)."""
    face_half_width: float
    head_top: float
    chin_y: float
    jaw_half_width: float
    eye_half_width: float
    eye_open: float
    eye_low: float
    iris_radius: float
    brow_y: float
    brow_thickness: float
    brow_inner_x: float
    brow_outer_x: float
    brow_arch: float
    nose_tip_y: float
    nose_half_width: float
    mouth_y: float
    mouth_half_width: float
    upper_lip: float
    lower_lip: float
    hairline_y: float
    hair_style: int
    skin: float
    hair: float
    lips: float
    sclera: float
    iris: float
    background: float
    expressiveness: float


def random_look(rng: np.random.Generator) -> FaceLook:
    u = rng.uniform
    skin = u(120, 195)
    hair = u(15, 85)
    background = u(20, 235)
    while abs(background - skin) < 45:
        background = u(20, 235)
    return FaceLook(
        face_half_width=u(0.98, 1.12), head_top=u(-1.30, -1.10), chin_y=u(1.55, 1.72),
        jaw_half_width=u(0.45, 0.62), eye_half_width=u(0.17, 0.21), eye_open=u(0.075, 0.095),
        eye_low=u(0.055, 0.070), iris_radius=u(0.080, 0.095), brow_y=u(-0.34, -0.28),
        brow_thickness=u(0.060, 0.090), brow_inner_x=u(0.10, 0.15), brow_outer_x=u(0.72, 0.80),
        brow_arch=u(0.03, 0.07), nose_tip_y=u(0.58, 0.70), nose_half_width=u(0.15, 0.21),
        mouth_y=u(1.00, 1.10), mouth_half_width=u(0.33, 0.40), upper_lip=u(0.045, 0.065),
        lower_lip=u(0.060, 0.085), hairline_y=u(-1.05, -0.82), hair_style=int(rng.choice(3, p=[0.45, 0.4, 0.15])),
        skin=skin, hair=hair, lips=skin - u(35, 55), sclera=u(200, 235), iris=u(30, 90),
        background=background, expressiveness=u(0.85, 1.15),
    )


def look_to_dict(look: FaceLook) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(look).items()}


# --- pose: similarity transform from face units to pixels -------------------------------------

def face_to_image_matrices(poses: np.ndarray, size: int) -> np.ndarray:
    """(N, 2, 3) matrices of poses (N, 4) = (angle_deg, scale, cx, cy), where cx, cy is the eye
    midpoint in fractions of the image side and scale multiplies IOD_FRACTION * size."""
    poses = np.asarray(poses, dtype=np.float64).reshape(-1, 4)
    s = IOD_FRACTION * size * poses[:, 1]
    a = np.radians(poses[:, 0])
    c, si = s * np.cos(a), s * np.sin(a)
    return np.stack([np.stack([c, -si, poses[:, 2] * size], 1),
                     np.stack([si, c, poses[:, 3] * size], 1)], 1)


def eye_centres(poses: np.ndarray, size: int) -> np.ndarray:
    """(N, 2, 2) [[x_left, y_left], [x_right, y_right]] pixel positions of the eye centres."""
    M = face_to_image_matrices(poses, size)
    eyes = np.array([[-0.5, 0.0], [0.5, 0.0]])
    return np.einsum("nij,kj->nki", M[:, :, :2], eyes) + M[:, None, :, 2]


# --- drawing helpers ---------------------------------------------------------------------------

_BEZIER_BASES: dict[int, np.ndarray] = {}
_UNIT_CIRCLES: dict[int, np.ndarray] = {}


def _bezier_basis(n: int) -> np.ndarray:
    if n not in _BEZIER_BASES:
        t = np.linspace(0.0, 1.0, n)
        _BEZIER_BASES[n] = np.stack([(1 - t) ** 2, 2 * (1 - t) * t, t ** 2], axis=1)
    return _BEZIER_BASES[n]


def through(p0, mid, p2, n: int = 9) -> np.ndarray:
    """Quadratic curve from p0 to p2 passing through `mid` at its middle."""
    (x0, y0), (xm, ym), (x2, y2) = p0, mid, p2
    control = (2.0 * xm - 0.5 * (x0 + x2), 2.0 * ym - 0.5 * (y0 + y2))
    return _bezier_basis(n) @ np.array([(x0, y0), control, (x2, y2)], dtype=np.float64)


def ellipse_points(cx, cy, ax, ay, n: int = 20) -> np.ndarray:
    if n not in _UNIT_CIRCLES:
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        _UNIT_CIRCLES[n] = np.stack([np.cos(t), np.sin(t)], axis=1)
    return _UNIT_CIRCLES[n] * (ax, ay) + (cx, cy)


class Canvas:
    """Collects polygons and polylines given in face units, then draws them in order onto a uint8
    image with one transform of all points (`flush`)."""

    def __init__(self, image: np.ndarray, M: np.ndarray):
        self.image = image
        self.M = M
        self.pixels_per_unit = float(np.hypot(M[0, 0], M[1, 0]))
        self.shapes = []  # (points, gray, width px or 0 for a filled polygon)

    def fill(self, points: np.ndarray, gray: float):
        self.shapes.append((points, gray, 0))

    def line(self, points: np.ndarray, gray: float, width: float = 0.0):
        """Polyline; width in face units (at least one pixel)."""
        self.shapes.append((points, gray, max(1, int(round(width * self.pixels_per_unit)))))

    def crease(self, points: np.ndarray, base: float, darkness: float):
        """A skin crease: a 1-pixel line `darkness` gray levels below `base` (skipped when faint)."""
        if darkness >= 2.0:
            self.line(points, base - darkness)

    def flush(self):
        points = np.concatenate([shape[0] for shape in self.shapes])
        fixed = np.round((points @ self.M[:, :2].T + self.M[:, 2]) * ONE).astype(np.int32)
        start = 0
        for pts, gray, width in self.shapes:
            part = fixed[start:start + len(pts)]
            start += len(pts)
            if width:
                cv2.polylines(self.image, [part], False, _gray(gray), width, cv2.LINE_AA, SHIFT)
            else:
                cv2.fillPoly(self.image, [part], _gray(gray), cv2.LINE_AA, SHIFT)
        self.shapes = []


def _gray(value: float) -> tuple:
    return (int(min(255.0, max(0.0, value))),)


# --- the face ------------------------------------------------------------------------------------

MOTION_KEYS = sorted({key for motion in AU_MOTION.values() for key in motion})
_MOTION_MATRIX = {au: np.array([AU_MOTION[au].get(k, 0.0) for k in MOTION_KEYS]) for au in AU_MOTION}


def motions(intensity: dict) -> dict:
    """{motion key: sum over AUs of intensity * AU_MOTION[au][key]}."""
    total = np.zeros(len(MOTION_KEYS))
    for au, level in intensity.items():
        if level:
            total += level * _MOTION_MATRIX[au]
    return dict(zip(MOTION_KEYS, total.tolist()))


_HALF_CIRCLE = np.stack([np.cos(np.linspace(np.pi, 2 * np.pi, 13)),
                         np.sin(np.linspace(np.pi, 2 * np.pi, 13))], axis=1)
_JAW_STEPS = np.linspace(0.0, 1.0, 12)[:, None]
_BROW_TAPER = np.linspace(1.0, 0.55, 9)[:, None]


def draw_face(image: np.ndarray, M: np.ndarray, look: FaceLook, intensity: dict) -> None:
    """Draw the face of `look` showing AU intensities {au: 0..5 (float)} with transform M."""
    c = Canvas(image, M)
    L = look
    m = motions(intensity).__getitem__
    lips_parted = intensity.get(25, 0.0) > 0  # AU26 alone drops the jaw with the lips together
    skin = L.skin

    jaw = m("jaw_down")
    # hair behind the head, neck, ears
    if L.hair_style == 1:
        c.fill(ellipse_points(0.0, 0.2, L.face_half_width + 0.22, 1.45, 16), L.hair)
    c.fill(np.array([[-0.42, 1.0], [0.42, 1.0], [0.55, 3.2], [-0.55, 3.2]]), skin - 18)
    for sgn in (-1, 1):
        c.fill(ellipse_points(sgn * (L.face_half_width - 0.02), 0.18, 0.12, 0.22, 12), skin - 12)

    # face outline: upper half ellipse, lower half narrowing to the jaw; the jaw drops with AU26
    upper = _HALF_CIRCLE * (L.face_half_width, 0.15 - L.head_top) + (0.0, 0.15)
    s = _JAW_STEPS
    lower_right = np.concatenate([
        (L.face_half_width * (1 - s) + L.jaw_half_width * s) * np.cos(s * np.pi / 2.4),
        0.15 + (L.chin_y - 0.15) * np.sin(s * np.pi / 2) + jaw * s], axis=1)
    lower = np.concatenate([lower_right, lower_right[::-1][1:] * [-1, 1]])
    c.fill(np.concatenate([upper[::-1], lower[::-1]]), skin)

    # hair on top of the head
    if L.hair_style != 2:
        temple_y = -0.30 if L.hair_style == 0 else 0.05
        crown = upper[upper[:, 1] < temple_y] * [1.04, 1.0] + [0.0, -0.04]
        hairline = through([crown[-1, 0] * 0.97, temple_y], [0.0, L.hairline_y],
                           [crown[0, 0] * 0.97, temple_y], 11)
        c.fill(np.concatenate([crown, hairline]), L.hair)

    # cheeks (AU6 raises them: brighter bulge, shadow line below)
    cheek_up = m("cheek_up")
    cy = 0.45 - cheek_up
    for sgn in (-1, 1):
        c.fill(ellipse_points(sgn * 0.58, cy, 0.22, 0.12, 14), skin + m("cheek_light"))
        if m("cheek_light") > 0:
            c.crease(through([sgn * 0.36, cy + 0.16], [sgn * 0.56, cy + 0.2], [sgn * 0.76, cy + 0.12], 7),
                     skin, 1.2 * m("cheek_light"))

    # forehead creases (AU1, AU2) and glabella furrows (AU4)
    for k in range(3 if m("forehead_crease") > 0 else 0):
        y = L.brow_y - 0.14 - 0.09 * k
        c.crease(through([-0.40, y + 0.03], [0.0, y - 0.02], [0.40, y + 0.03], 9), skin,
                 m("forehead_crease") * (1.0 - 0.2 * k))
    for sgn in ((-1, 1) if m("glabella_crease") > 0 else ()):
        c.crease(np.array([[sgn * 0.06, L.brow_y - 0.06], [sgn * 0.05, L.brow_y + 0.12]]), skin,
                 m("glabella_crease"))

    # nose: bridge, wings, nostrils, creases on the bridge (AU9)
    wing_up = m("nose_wing_up")
    tip = L.nose_tip_y - wing_up
    for sgn in (-1, 1):
        c.crease(through([sgn * 0.10, 0.08], [sgn * 0.12, 0.35], [sgn * 0.13, tip - 0.12], 6), skin, 12)
        c.line(through([sgn * 0.06, tip + 0.05], [sgn * (L.nose_half_width + 0.02), tip],
                       [sgn * (L.nose_half_width - 0.03), tip - 0.10], 7), skin - 28)
        c.fill(ellipse_points(sgn * 0.075, tip + 0.03, 0.045, 0.022, 10), skin - 75)
    for k in range(3 if m("nose_crease") > 0 else 0):
        y = 0.06 + 0.07 * k
        c.crease(np.array([[-0.09, y], [0.0, y - 0.015], [0.09, y]]), skin, m("nose_crease"))

    # mouth corners: AU12 up and out, AU15 down, AU20 out, AU14 in
    half_w = L.mouth_half_width + m("corner_out") - m("corner_in")
    corner_y = L.mouth_y - m("corner_up") + m("corner_down")
    lip_top_y = L.mouth_y - L.upper_lip - m("upper_lip_up")
    upper_inner_y = L.mouth_y - 0.35 * m("upper_lip_up")
    gap = m("lip_gap") if lips_parted else 0.0
    lower_inner_y = upper_inner_y + gap + 0.6 * jaw * lips_parted - 0.5 * m("lower_lip_up")
    lower_bottom_y = max(lower_inner_y, L.mouth_y + 0.02) + L.lower_lip - m("lower_lip_up")

    # nasolabial folds (AU12, AU10, AU6 deepen them)
    for sgn in (-1, 1):
        fold = through([sgn * (L.nose_half_width + 0.03), tip - 0.04],
                       [sgn * (half_w + 0.04), 0.5 * (tip + corner_y) + 0.02],
                       [sgn * (half_w + 0.10), corner_y + 0.10], 8)
        c.crease(fold, skin, 8 + m("nasolabial") + 0.6 * m("cheek_light"))
        if m("dimple") > 0:
            c.crease(through([sgn * (half_w + 0.03), corner_y - 0.04], [sgn * (half_w + 0.06), corner_y],
                             [sgn * (half_w + 0.03), corner_y + 0.05], 5), skin, m("dimple"))

    left, right = np.array([-half_w, corner_y]), np.array([half_w, corner_y])
    upper_top = np.concatenate([
        through(left, [-0.09, lip_top_y + 0.005], [-0.0, lip_top_y + 0.02], 6),
        through([0.0, lip_top_y + 0.02], [0.09, lip_top_y + 0.005], right, 6)[1:]])
    upper_inner = through(right, [0.0, upper_inner_y], left, 9)
    lower_inner = through(left, [0.0, lower_inner_y], right, 9)
    lower_bottom = through(right, [0.0, lower_bottom_y], left, 9)
    if gap > 0.004:
        c.fill(np.concatenate([upper_inner, lower_inner]), 28)
        if gap > 0.03:
            teeth = through(right, [0.0, upper_inner_y + min(0.05, 0.4 * gap)], left, 9)
            c.fill(np.concatenate([upper_inner[::-1], teeth[::-1]]), 205)
    c.fill(np.concatenate([upper_top, upper_inner]), L.lips)
    c.fill(np.concatenate([lower_inner, lower_bottom]), L.lips + 8)
    c.line(lower_inner if gap <= 0.004 else upper_inner, L.lips - 35)

    # chin raiser (AU17): mentolabial crease and chin boss
    if m("chin_crease") > 0:
        chin_top = lower_bottom_y + 0.10
        c.crease(through([-0.16, chin_top + 0.02], [0.0, chin_top - 0.03 - 0.4 * m("lower_lip_up")],
                         [0.16, chin_top + 0.02], 7), skin, m("chin_crease"))
        c.crease(ellipse_points(0.0, L.chin_y + jaw - 0.22, 0.14, 0.08, 12)[7:12], skin,
                 m("chin_crease"))

    # eyes: sclera, iris, pupil, then lids that cover them (AU5 raises, AU6/7 narrow, AU43 closes)
    lower_lid_up = m("lower_lid_up")
    for sgn in (-1, 1):
        ex = sgn * 0.5
        inner = np.array([ex - sgn * L.eye_half_width, 0.012])
        outer = np.array([ex + sgn * L.eye_half_width, -0.006])
        up = L.eye_open + m("upper_lid_up") - m("upper_lid_down")
        low = max(L.eye_low - lower_lid_up, 0.01)
        up -= (up + low) * min(1.0, m("lid_close"))
        upper_lid = through(inner, [ex, -up], outer, 9)
        lower_lid = through(outer, [ex, low], inner, 9)
        c.fill(np.concatenate([upper_lid, lower_lid]), L.sclera)
        c.fill(ellipse_points(ex, 0.0, L.iris_radius, L.iris_radius, 14), L.iris)
        c.fill(ellipse_points(ex, 0.0, 0.42 * L.iris_radius, 0.42 * L.iris_radius, 10), L.iris * 0.35)
        lid_skin = through(inner + [0, -0.02], [ex, -L.eye_open - 0.16], outer + [0, -0.02], 9)
        c.fill(np.concatenate([upper_lid, lid_skin[::-1]]), skin - 6)
        under = through(outer + [0, 0.03], [ex, L.eye_low + 0.12], inner + [0, 0.03], 9)
        c.fill(np.concatenate([lower_lid, under[::-1]]), skin)
        c.line(upper_lid, L.hair * 0.5 + 10, 0.03)
        c.crease(lower_lid, skin, 25)
        c.crease(through(inner + [0, -0.02], [ex, -L.eye_open - 0.07 - 0.4 * m("upper_lid_up")],
                         outer + [0, -0.02], 7), skin, 14)  # lid fold
        corner = outer + [sgn * 0.04, 0.0]
        for k in ((-1, 0, 1) if m("crow_feet") > 0 else ()):
            c.crease(np.array([corner, corner + [sgn * 0.13, 0.07 * k]]), skin, m("crow_feet"))

    # brows: AU1 lifts the inner end, AU2 the outer end, AU4 lowers them and pulls them together
    for sgn in (-1, 1):
        inner = np.array([sgn * (L.brow_inner_x - m("brow_in")),
                          L.brow_y - m("inner_brow_up") + 1.3 * m("brow_down")])
        outer = np.array([sgn * L.brow_outer_x, L.brow_y + 0.05 - m("outer_brow_up") + 0.6 * m("brow_down")])
        mid = np.array([sgn * 0.45, L.brow_y - L.brow_arch - 0.45 * m("inner_brow_up")
                        - 0.5 * m("outer_brow_up") + m("brow_down")])
        centre = through(inner, mid, outer, 9)
        half = 0.5 * L.brow_thickness * _BROW_TAPER
        top, bottom = centre - half * [0, 1], centre + half * [0, 1]
        c.fill(np.concatenate([top, bottom[::-1]]), min(L.hair + 15, skin - 60))
    c.flush()


_LIGHT_GRIDS: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _light_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    if size not in _LIGHT_GRIDS:
        r = np.linspace(-1.0, 1.0, size, dtype=np.float32)
        _LIGHT_GRIDS[size] = (r[None, :].repeat(size, 0), r[:, None].repeat(size, 1))
    return _LIGHT_GRIDS[size]


def render(look: FaceLook, intensity: dict, pose: np.ndarray, light: np.ndarray, size: int,
           noise_seed: int | None) -> np.ndarray:
    """One frame (size, size) uint8.

    intensity: {au: level 0..5}; pose: (angle_deg, scale, cx, cy); light: (gain, gradient_x,
    gradient_y, noise_sigma); noise_seed: seed of the Gaussian sensor noise (OpenCV's generator,
    reseeded per frame; None: no noise).
    """
    image = np.full((size, size), _gray(look.background)[0], dtype=np.uint8)
    shown = {au: level * look.expressiveness for au, level in intensity.items() if level}
    draw_face(image, face_to_image_matrices(pose, size)[0], look, shown)
    gain, gx, gy, sigma = (float(v) for v in light)
    X, Y = _light_grid(size)
    illumination = cv2.addWeighted(X, gain * gx, Y, gain * gy, gain)  # gain * (1 + gx X + gy Y)
    out = cv2.multiply(image, illumination, dtype=cv2.CV_32F)
    if noise_seed is not None and sigma > 0:
        noise = np.empty((size, size), np.float32)
        cv2.setRNGSeed(int(noise_seed))
        cv2.randn(noise, 0.0, sigma)
        out += noise
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8)


# fast PNG: one fixed filter and Huffman coding only (about 40% faster than zlib level 1's default,
# files about 4% larger)
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY]
if hasattr(cv2, "IMWRITE_PNG_FILTER"):  # OpenCV >= 4.10
    PNG_PARAMS += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB]


def render_and_write(task: dict) -> int:
    """Worker of generate_synthetic: render the frames of one chunk of a subject's video and write
    them as PNG (fast compression); returns the number written. This module imports only numpy
    and OpenCV, so spawned workers start quickly."""
    look = FaceLook(**task["look"])
    for levels, pose, light, noise_seed, path in zip(task["levels"], task["poses"], task["lights"],
                                                    task["noise_seeds"], task["paths"]):
        image = render(look, dict(zip(task["aus"], levels.tolist())), pose, light, task["size"], noise_seed)
        if not cv2.imwrite(path, image, PNG_PARAMS):
            raise OSError(f"could not write {path}")
    return len(task["paths"])
