"""Steady faces on footage like users': how far restored faces are from where they belong, and
how much they flicker, with temporal smoothing off and on.

    python benchmarks/benchmark.py --steadiness        # the table in the README

Clips are made from real faces (the Solvay photo, twice its size, seen through a 640x360
camera) with known camera motion: a tripod; hand-held (a slow drift of a few pixels and a
sub-pixel shake every frame); a pan of 2 px a frame; a slow zoom; a rotation swinging 3
degrees; and the still clip AnimateDiff makes (16 frames). Each frame gets sensor noise and
H.264 compression (CRF 23). The faces' points come with jitter shaped like a real detector's
(VIDEO.md in the shared folder): a bias of each point that stays with the face, error that is
correlated from frame to frame, and now and then a point several pixels off; the still clip
gets the white Gaussian jitter of 1.5 px that earlier measurements used.

"Ideal" restores each frame with the true points (the bias included: a constant bias is not
jitter). Error: mean |output - ideal| inside the faces; excess flicker: mean |(out_t -
out_t-1) - (ideal_t - ideal_t-1)| inside the faces, the change the footage itself does not
have; both in levels of 0..255. Where: mean distance of the five points the pipeline aligned
on from the ideal ones, and the lag, their mean offset along the camera's motion. The network
is a stand-in that paints the same detailed face into every crop, as a restorer's own detail
is painted in: what is measured is where faces are put. (GPEN with random weights cannot
stand in: it is chaotic, a crop shifted by a thousandth of a pixel comes out up to 8 levels
apart, which buries the effect of where the face is; trained weights are not.) The box mask;
the motion measurement is timed against the network at 512.
"""

import io
import json
import time

import cv2
import numpy as np

from common import SHARED, SOLVAY, release_network

WIDTH, HEIGHT, ZOOM_OF_PHOTO = 640, 360, 2.0
VIEW_CENTRE = (1880.0, 470.0)  # in the doubled photo: a row of faces and the one behind
# camera motions: name -> (a function of the frame index and count giving (dx, dy, scale,
# degrees) of the view, jitter kind)
CLIPS = ("tripod", "hand-held", "pan", "zoom", "rotation", "still, white jitter")


def base_photo():
    rgba = cv2.imread(str(SOLVAY), cv2.IMREAD_UNCHANGED)
    rgb = cv2.cvtColor(rgba, cv2.COLOR_BGRA2RGB)
    big = cv2.resize(rgb, None, fx=ZOOM_OF_PHOTO, fy=ZOOM_OF_PHOTO,
                     interpolation=cv2.INTER_CUBIC)
    landmarks = np.array(json.loads((SOLVAY.parent / "solvay_landmarks.json").read_text())[
        "landmarks"], float) * ZOOM_OF_PHOTO
    return big, landmarks


def camera(name, frames, rng):
    """Per frame, the view's (dx, dy, scale, degrees) from its start: the camera's motion."""
    t = np.arange(frames, dtype=float)
    zeros = np.zeros(frames)
    shake = rng.normal(0, 0.35, (frames, 2)) if name in ("hand-held", "zoom", "rotation") \
        else np.zeros((frames, 2))
    drift = np.cumsum(rng.normal(0, 0.25, (frames, 2)), axis=0) if name == "hand-held" \
        else np.zeros((frames, 2))
    dx, dy = (shake + drift).T
    scale, degrees = np.ones(frames), zeros.copy()
    if name == "pan":
        dx = dx + 2.0 * t
    if name == "zoom":
        scale = 1 + 0.12 * t / max(frames - 1, 1)
    if name == "rotation":
        degrees = 3.0 * np.sin(2 * np.pi * t / max(frames, 16))
    return np.stack([dx, dy, scale, degrees], axis=1)


def view_transform(dx, dy, scale, degrees):
    """2x3: the doubled photo's coordinates -> the frame's, for a camera so moved."""
    cx, cy = VIEW_CENTRE[0] + dx, VIEW_CENTRE[1] + dy
    to_frame = cv2.getRotationMatrix2D((cx, cy), degrees, scale)
    to_frame[:, 2] += [WIDTH / 2 - cx, HEIGHT / 2 - cy]
    return to_frame


# The jitter of a real landmark model on compressed footage (VIDEO.md): rms error per point
# and its frame-to-frame change were 0.27 and 0.22 px on a tripod, 0.99 and 0.93 hand-held:
# for error correlated from frame to frame as e_t = rho e_t-1 + fresh noise, the change is
# sqrt(2 (1 - rho)) times the error, so rho is about 0.67 and 0.56. One point in a clip was
# 6 or 7 px off once.
DETECTOR = {"tripod": (0.27, 0.67), "moving": (0.9, 0.56)}  # rms px, rho
OUTLIERS = 0.002  # of the points in a frame: about one a clip of 32 frames


def jitter(name, true, rng):
    """Detector-like points around `true` (frames, faces, 5, 2): a bias that stays with each
    point, error correlated from frame to frame, rare outliers; or white jitter. Returns them
    and the ideal points (the true ones with the bias: a constant bias is not jitter)."""
    frames = len(true)
    if name.startswith("still"):
        return true + rng.normal(0, 1.5, true.shape), true
    sigma, rho = DETECTOR["tripod" if name == "tripod" else "moving"]
    sigma /= np.sqrt(2)  # the rms is of the point's distance: sigma of each coordinate
    bias = rng.normal(0, 0.4, true.shape[1:])
    error = np.zeros(true.shape)
    error[0] = rng.normal(0, sigma, true.shape[1:])
    for index in range(1, frames):
        error[index] = rho * error[index - 1] + \
            rng.normal(0, sigma * np.sqrt(1 - rho ** 2), true.shape[1:])
    if name != "tripod":  # now and then a point 5 to 7 px off
        outliers = rng.random(true.shape[:3]) < OUTLIERS
        angles = rng.uniform(0, 2 * np.pi, outliers.sum())
        error[outliers] += rng.uniform(5, 7, outliers.sum())[:, None] * np.stack(
            [np.cos(angles), np.sin(angles)], axis=1)
    return true + bias + error, true + bias


def compress(frames):
    """Frames through H.264 (CRF 23) and back, as a phone or a browser would store them."""
    import av
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.codec_context.options = {"crf": "23", "preset": "veryfast"}
        for index, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    buffer.seek(0)
    with av.open(buffer) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def make_clip(name, frames, seed=0):
    """(frames, detector-like points, ideal points, camera motion) of one clip."""
    rng = np.random.default_rng(seed)
    photo, landmarks = base_photo()
    motion = camera(name, frames, rng)
    transforms = [view_transform(*step) for step in motion]
    inside = [face for face in range(len(landmarks)) if all(
        (0.08 * WIDTH < point[0] < 0.92 * WIDTH) and (0.08 * HEIGHT < point[1] < 0.92 * HEIGHT)
        for transform in transforms for point in landmarks[face] @ transform[:, :2].T +
        transform[:, 2])]
    true = np.stack([landmarks[inside] @ transform[:, :2].T + transform[:, 2]
                     for transform in transforms])
    pictures = []
    for transform in transforms:
        pixels = cv2.warpAffine(photo, transform, (WIDTH, HEIGHT), flags=cv2.INTER_CUBIC,
                                borderMode=cv2.BORDER_REFLECT)
        noisy = pixels.astype(np.float32) + rng.normal(0, 3.0, pixels.shape)
        pictures.append(np.clip(np.rint(noisy), 0, 255).astype(np.uint8))
    detected, ideal = jitter(name, true, rng)
    return compress(pictures), detected, ideal, motion


def face_region(points, shape, margin=0.6):
    """A mask of the faces: each face's square around its points, grown by `margin`."""
    mask = np.zeros(shape[:2], bool)
    for face in points:
        centre, side = face.mean(axis=0), np.ptp(face, axis=0).max() * (1 + 2 * margin)
        x0, y0 = np.maximum(np.floor(centre - side / 2).astype(int), 0)
        x1, y1 = np.ceil(centre + side / 2).astype(int)
        mask[y0:y1, x0:x1] = True
    return mask


def scores(outputs, ideals, ideal_points):
    """Per frame: error inside the faces, and excess flicker from the frame before."""
    errors, flickers = [], []
    for index, (out, ideal) in enumerate(zip(outputs, ideals)):
        inside = face_region(ideal_points[index], out.shape)
        errors.append(np.abs(out.astype(float) - ideal)[inside].mean())
        if index:
            inside |= face_region(ideal_points[index - 1], out.shape)
            change = (out.astype(float) - outputs[index - 1]) - \
                (ideal.astype(float) - ideals[index - 1])
            flickers.append(np.abs(change)[inside].mean())
    return np.array(errors), np.array(flickers)


def restore(restorer, frames, points, smoothing):
    from gpen_ext.options import RestoreOptions
    options = RestoreOptions(mask="box", temporal_smoothing=smoothing, keep_crops=False,
                             batch_size=8)
    results = restorer.restore_images(frames, options, [faces for faces in points])
    aligned = np.stack([np.stack([face.landmarks for face in sorted(
        result.faces, key=lambda face: face.box[0])]) for result in results])
    return [result.image for result in results], aligned


def clip_scores(restorer, name, frames, smoothing):
    """Off and on against ideal for one clip: errors, flickers, point distances, lag."""
    pictures, detected, ideal_points, motion = make_clip(name, frames)
    ideals, _ = restore(restorer, pictures, ideal_points, 0)
    order = np.argsort(ideal_points[0].mean(axis=1)[:, 0])
    ideal_points = ideal_points[:, order]
    found = {}
    for label, radius in (("off", 0), ("on", smoothing)):
        outputs, aligned = restore(restorer, pictures, detected, radius)
        errors, flickers = scores(outputs, ideals, ideal_points)
        offset = aligned - ideal_points
        # the faces' own motion in the frame; lag: how far behind it they are placed
        direction = np.diff(ideal_points, axis=0).mean(axis=(0, 1, 2))
        along = direction / np.linalg.norm(direction) if np.linalg.norm(direction) > 0.5 \
            else None
        found[label] = {"errors": errors, "flickers": flickers,
                        "where": float(np.linalg.norm(offset, axis=-1).mean()),
                        "lag": None if along is None else float(-(offset @ along).mean())}
    return found


def oracle_scores(restorer, name, frames):
    """Error and excess flicker of an oracle that knows how each face moved exactly and takes
    each point's median error over the whole clip: frames restored on the ideal points plus
    that (steady) offset. No steadying of these detector points can do better on average."""
    pictures, detected, ideal_points, _ = make_clip(name, frames)
    ideals, _ = restore(restorer, pictures, ideal_points, 0)
    ordered = ideal_points[:, np.argsort(ideal_points[0].mean(axis=1)[:, 0])]
    offset = np.median(detected - ideal_points, axis=0)
    errors, flickers = scores(restore(restorer, pictures, ideal_points + offset, 0)[0],
                              ideals, ordered)
    return errors.mean(), flickers.mean()


def painted_face(size=256):
    """A network that paints the same detailed face (the one-face image's, aligned) into
    every crop of `size`."""
    import torch
    from skimage import data
    from gpen_ext.alignment import align_face

    class PaintedFace(torch.nn.Module):
        def __init__(self):
            super().__init__()
            example = json.loads((SHARED / "reference" / "alignment.json").read_text())
            crop, _ = align_face(data.astronaut(), np.array(example["example"]["landmarks"]),
                                 size)
            self.size = size
            self.register_buffer("face", torch.from_numpy(crop).permute(2, 0, 1).float()[None]
                                 / 127.5 - 1)

        def forward(self, batch):
            return self.face.expand(len(batch), -1, -1, -1).clone()

    return PaintedFace()


def network_restorer(size, painted=True):
    from gpen_ext.arch.gpen.fast import FastGPEN
    from gpen_ext.face_models import FaceModels
    from gpen_ext.pipeline import FaceRestorer
    network = painted_face(size) if painted else FastGPEN(release_network(size))
    return FaceRestorer(network, FaceModels("/nonexistent", False),
                        precision="fp32" if painted else "auto")


def motion_cost():
    """Seconds of the motion measurement per face and frame, as the tracker does it (each
    frame placed against the face's first, from the placement before), against the
    network's at 512 (bf16 where auto picks it)."""
    import torch
    from gpen_ext import motion
    from gpen_ext.landmarks import face_from_landmarks
    pictures, detected, _, _ = make_clip("hand-held", 16)
    greys = [motion.grey_frame(picture) for picture in pictures]
    references = [motion.FaceReference(greys[0], face_from_landmarks(face, 512).box)
                  for face in detected[0]]
    placed = [motion.IDENTITY] * len(references)
    start = time.perf_counter()
    for grey in greys[1:]:
        placed = [reference.place(grey, guess) for reference, guess in zip(references, placed)]
    per_face = (time.perf_counter() - start) / (len(greys) - 1) / len(references)
    runner = network_restorer(512, painted=False).networks.runner(512)
    x = torch.rand(1, 3, 512, 512) * 2 - 1
    runner(x)
    start = time.perf_counter()
    runner(x)
    return per_face, time.perf_counter() - start, runner.precision


def table(smoothing=None):
    from gpen_ext.options import RestoreOptions
    smoothing = RestoreOptions().temporal_smoothing if smoothing is None else smoothing
    restorer = network_restorer(256)
    print(f"\nSteady faces on footage like users' (temporal smoothing {smoothing}, against 0): "
          f"real faces, camera motion, sensor noise, H.264; detector-like jitter (bias, "
          f"correlated, outliers) but for the still clip's white 1.5 px")
    print(f"{'':>22} {'frames':>6} {'error off':>10} {'on':>6} {'lower':>7} {'flicker off':>12}"
          f" {'on':>6} {'lower':>7} {'worst frame':>12} {'where off':>10} {'on':>6} "
          f"{'lag off':>8} {'on':>6}")
    for frames in (16, 100):
        for name in CLIPS:
            if name.startswith("still") and frames != 16:
                continue
            found = clip_scores(restorer, name, frames, smoothing)
            off, on = found["off"], found["on"]
            error = off["errors"].mean() / on["errors"].mean()
            flicker = off["flickers"].mean() / on["flickers"].mean()
            worst = (on["errors"] / off["errors"]).max()
            lag = "" if on["lag"] is None else f"{off['lag']:>8.2f} {on['lag']:>6.2f}"
            print(f"{name:>22} {frames:>6} {off['errors'].mean():>10.2f} "
                  f"{on['errors'].mean():>6.2f} {error:>6.1f}x {off['flickers'].mean():>12.2f} "
                  f"{on['flickers'].mean():>6.2f} {flicker:>6.1f}x {worst:>11.2f}x "
                  f"{off['where']:>10.2f} {on['where']:>6.2f} {lag}", flush=True)
    oracle = ", ".join(f"{name} {error:.2f} / {flicker:.2f}" for name, (error, flicker) in
                       ((name, oracle_scores(restorer, name, 16)) for name in CLIPS[1:5]))
    print(f"oracle, 16 frames (exact motion, each point's median error over the clip): "
          f"error / flicker {oracle}")
    per_face, network, precision = motion_cost()
    print(f"motion measurement: {1000 * per_face:.1f} ms a face a frame, {per_face / network:.1%}"
          f" of the network's {network:.2f} s a face at 512 ({precision})")
